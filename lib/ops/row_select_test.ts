// The row selection's WebAssembly kernel on scores in the shared heap
// (read in place, as the simulator's batches are), against the CPU
// kernel: the lists outgrow their first regions there, which moves them.
// The other cases (copied scores, ties, masks, rows taken whole) are in
// tests/_kernel_cases.ts.
import { test } from "node:test";
import assert from "node:assert/strict";
import { sharedScores } from "../route/route_parallel.ts";
import { Rng } from "../scores/rng.ts";
import { rowSelectCpu, rowSelectOp } from "./row_select.ts";
import { rowSelectWasm } from "./row_select_wasm.ts";

test("rowSelect on WebAssembly reads shared-heap scores in place, lists grown", () => {
  const N = 400, E = 256, k = 2;
  const s = sharedScores(N, E);
  const rng = new Rng(5);
  // Every other row a hundredth of the spread: the running guess sits far
  // below the small rows, which list nearly every expert (about 50 000
  // entries against a first region of N * 8 + E).
  for (let i = 0; i < N; i++) {
    for (let j = 0; j < E; j++) {
      s.data[i * E + j] = rng.uniform() * (i % 2 ? 0.01 : 1);
    }
  }
  const args = rowSelectOp.validate({
    scores: s,
    k,
    prices: Float64Array.from({ length: E }, () => rng.uniform() * 1e-3),
  });
  const want = rowSelectCpu(args);
  assert.ok(want.start[N] > 10 * (N * 8 + E), `lists ${want.start[N]}`);
  assert.deepEqual(rowSelectWasm(args), want);
});
