import { test } from "node:test";
import assert from "node:assert/strict";
import { Rng } from "../scores/rng.ts";
import type { Routing, ScoreMatrix } from "../types.ts";
import {
  type GroupScore,
  routeCpu,
  routeOp,
  type RouteOptions,
} from "./route.ts";
import { routeWasm } from "./route_wasm.ts";
import { sharedScoreData } from "./route_threads.ts";
import { heapRowRouter } from "./_route_wasm_rows.ts";
import { sharedWasmHeap, wasmRuntime } from "../wasm/runtime.ts";

/**
 * The definition, by sorting: keys `s + b` (`s * b`) in float64, a group
 * scored by the sum of its top `perGroup` keys (descending, from 0), the
 * `topGroups` best groups kept (ties to the lowest group), the others'
 * keys set to -Infinity, then the top k by (key descending, index
 * ascending); weights from
 * the unbiased scores (-Infinity weighs 0), normalised then scaled.
 */
function bruteForce(s: ScoreMatrix, o: RouteOptions): Routing {
  const { tokens: N, experts: E } = s;
  const k = o.k, G = o.groups ?? 1, M = o.topGroups ?? G;
  const size = E / G;
  const P = Math.max(
    1,
    Math.min(
      size,
      o.groupScore === "v2"
        ? 1
        : o.groupScore === "v3"
        ? 2
        : Math.max(1, Math.floor(k / M)),
    ),
  );
  const experts = new Int32Array(N * k), weights = new Float32Array(N * k);
  const loads = new Int32Array(E);
  for (let i = 0; i < N; i++) {
    const key = (j: number) => {
      const x = s.data[i * E + j];
      const b = o.bias?.[j];
      return b === undefined ? x : o.biasMode === "multiply" ? x * b : x + b;
    };
    const score = (q: number) => {
      const ks = Array.from({ length: size }, (_, r) => key(q * size + r))
        .sort((a, b) => b - a);
      let sum = 0;
      for (let r = 0; r < P; r++) sum += ks[r];
      return sum;
    };
    const groups = Array.from({ length: G }, (_, q) => q);
    const scores = groups.map(score);
    const kept = new Set(
      groups.sort((a, b) =>
        scores[b] > scores[a] ? 1 : scores[b] < scores[a] ? -1 : a - b
      ).slice(0, M),
    );
    // Dropped groups' keys are -Infinity, like masked experts: the
    // lowest index first when fewer than k finite keys are kept.
    const masked = (j: number) =>
      kept.has(Math.floor(j / size)) ? key(j) : -Infinity;
    const order = Array.from({ length: E }, (_, j) => j).sort((a, b) =>
      masked(b) > masked(a) ? 1 : masked(b) < masked(a) ? -1 : a - b
    );
    let sum = 0;
    for (let r = 0; r < k; r++) {
      const j = order[r], x = s.data[i * E + j];
      experts[i * k + r] = j;
      weights[i * k + r] = x > -Infinity ? x : 0;
      sum += weights[i * k + r];
      loads[j]++;
    }
    const scale = o.scale ?? 1;
    for (let r = 0; r < k; r++) {
      const w = weights[i * k + r];
      weights[i * k + r] = o.normalize && sum > 0
        ? w * (scale / sum)
        : w * scale;
    }
  }
  return { experts, weights, loads, k };
}

/** Bit for bit (a byte comparison first: deepEqual is slow on long arrays). */
function same(got: Routing, want: Routing, what: string): void {
  for (const part of ["experts", "weights", "loads"] as const) {
    const a = got[part], b = want[part];
    const x = new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
    const y = new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
    if (x.length !== y.length || x.some((v, i) => v !== y[i])) {
      assert.deepEqual(a, b, `${what}: ${part}`);
    }
  }
}

/** The wasm kernel's routing of `s` under `o`. */
function onWasm(s: ScoreMatrix, o: RouteOptions): Routing {
  return routeWasm(routeOp.validate({ scores: s, options: o }));
}

/** The cpu kernel's routing of `s` under `o`. */
function onCpu(s: ScoreMatrix, o: RouteOptions): Routing {
  return routeCpu(routeOp.validate({ scores: s, options: o }));
}

/** The wasm kernel's routing, the cpu kernel's bit for bit; returned. */
function sameAsCpu(s: ScoreMatrix, o: RouteOptions, what: string): Routing {
  const got = onWasm(s, o);
  same(got, onCpu(s, o), what);
  return got;
}

/**
 * Scores from a few values (ties), or uniform; some -Infinity entries and,
 * now and then, whole rows of -Infinity.
 */
function batch(rng: Rng, N: number, E: number, ties: boolean): ScoreMatrix {
  const data = new Float32Array(N * E);
  for (let i = 0; i < N; i++) {
    const masked = rng.uniform() < 0.02;
    for (let j = 0; j < E; j++) {
      data[i * E + j] = masked || rng.uniform() < 0.05
        ? -Infinity
        : ties
        ? rng.int(5) / 4
        : rng.uniform();
    }
  }
  return { data, tokens: N, experts: E };
}

const SHAPES: [number, number][] = [
  [1, 1],
  [3, 2],
  [7, 4],
  [33, 11],
  [64, 8],
  // Groups of 48 (2 groups): a group across two 64-bit words of bits.
  [96, 6],
  [257, 257],
  [256, 256],
];

function options(rng: Rng, E: number, k: number): RouteOptions[] {
  const out: RouteOptions[] = [];
  const half = Float64Array.from(
    { length: E },
    () => (rng.uniform() - 0.5) * 0.3,
  );
  const factor = Float64Array.from(
    { length: E },
    () => 0.5 + rng.uniform(),
  );
  for (const kk of new Set([1, k, E])) {
    out.push({ k: kk });
    out.push({ k: kk, bias: half, normalize: true, scale: 2.5 });
    out.push({ k: kk, bias: factor, biasMode: "multiply", scale: 0.5 });
  }
  // Groups: every divisor pair that keeps k experts, each scoring.
  for (const G of [2, 4, 8, 11]) {
    if (E % G !== 0 || G >= E) continue;
    for (const M of [1, Math.max(1, G >> 1), G - 1]) {
      const kk = Math.min(k, M * (E / G));
      for (const groupScore of ["megatron", "v3", "v2"] as GroupScore[]) {
        out.push({ k: kk, groups: G, topGroups: M, groupScore, bias: half });
        out.push({
          k: Math.min(kk, 3),
          groups: G,
          topGroups: M,
          groupScore,
          bias: factor,
          biasMode: "multiply",
          normalize: true,
        });
      }
    }
  }
  return out;
}

const wasm = wasmRuntime() !== undefined;
/** The tests' options: skipped where the engine has no WebAssembly SIMD. */
const needsWasm = { skip: !wasm && "no WebAssembly SIMD" };

test(
  "the wasm route kernel agrees with its definition and the cpu kernel",
  needsWasm,
  () => {
    const rng = new Rng(2026);
    let compared = 0;
    for (const [E, k] of SHAPES) {
      // Tokens across blocks of rows (64 KiB of scores per block).
      for (const N of [1, 5, 67, Math.ceil(70000 / E) + 3]) {
        for (const ties of [true, false]) {
          const s = batch(rng, N, E, ties);
          // Across blocks: the options with a small k (k = E costs E^2 a row).
          const all = options(rng, E, k);
          for (const o of N > 100 ? all.filter((o) => o.k <= 11) : all) {
            const what = `${N}x${E} ${
              JSON.stringify({ ...o, bias: !!o.bias })
            }${ties ? " ties" : ""}`;
            const got = sameAsCpu(s, o, `${what} vs cpu`);
            if (N * E <= 3000) {
              same(got, bruteForce(s, o), `${what} vs brute force`);
            }
            compared++;
          }
        }
      }
    }
    assert.ok(compared > 500, `${compared} batches`);
  },
);

test(
  "the wasm route kernel's float32 pre-filter is exact at float64 near-ties",
  needsWasm,
  () => {
    // Keys s + b within a float32 rounding of one another, biases not
    // representable in float32: a float32 key would tie or swap them.
    const rng = new Rng(7);
    const N = 3000, E = 40;
    const bias = Float64Array.from(
      { length: E },
      () => (rng.uniform() - 0.5) * 1e-3 + 1e-9 * rng.uniform(),
    );
    const data = new Float32Array(N * E);
    for (let i = 0; i < N; i++) {
      for (let j = 0; j < E; j += 2) {
        const x = Math.fround(0.5 + rng.uniform() * 0.01);
        data[i * E + j] = x;
        data[i * E + j + 1] = Math.fround(x + bias[j] - bias[j + 1]);
      }
    }
    const s = { data, tokens: N, experts: E };
    for (const o of [{ k: 5, bias }, { k: 6, bias, groups: 4, topGroups: 2 }]) {
      sameAsCpu(s, o, JSON.stringify({ ...o, bias: true }));
    }
  },
);

test(
  "the wasm and cpu route kernels name the same bad score",
  needsWasm,
  () => {
    const rng = new Rng(11);
    const message = (f: () => unknown) => {
      try {
        f();
      } catch (e) {
        assert.ok(e instanceof RangeError, String(e));
        return e.message;
      }
      assert.fail("no error");
    };
    for (const [E, k] of [[7, 2], [64, 8], [257, 4], [256, 8]]) {
      const N = Math.ceil(90000 / E);
      const base = batch(rng, N, E, false);
      // Early, in the first block, late (after the running threshold
      // settled), several in one row, a NaN after a +Infinity.
      for (const at of [[0], [N - 1], [Math.floor(N / 2), Math.floor(N / 2)]]) {
        for (
          const bad of [[NaN], [Infinity], [Infinity, NaN], [NaN, Infinity]]
        ) {
          const data = base.data.slice();
          const cells: number[] = [];
          for (let b = 0; b < bad.length; b++) {
            const i = at[Math.min(b, at.length - 1)];
            const j = Math.min(E - 1, rng.int(E) + b);
            data[i * E + j] = bad[b];
            cells.push(i * E + j);
          }
          const s = { data, tokens: N, experts: E };
          const first = Math.min(
            ...cells.filter((c) => !(data[c] < Infinity)),
          );
          for (
            const o of [
              { k },
              { k, bias: new Float64Array(E).fill(0.01) },
              { k, bias: new Float64Array(E).fill(2), biasMode: "multiply" },
              ...(E % 8 === 0 ? [{ k, groups: 8, topGroups: 3 }] : []),
            ] as RouteOptions[]
          ) {
            const want = message(() => onCpu(s, o));
            const got = message(() => onWasm(s, o));
            assert.equal(got, want);
            const token = Math.floor(first / E), expert = first % E;
            assert.match(
              got,
              new RegExp(`token ${token}, expert ${expert}\\b`),
            );
          }
        }
      }
    }
  },
);

test(
  "the wasm route kernel keeps DeepSeek-V3's groups as the cpu kernel, near-tied groups included",
  needsWasm,
  () => {
    // 256 experts in 8 groups of 32, 4 kept, k = 8; group pairs (0, 1) and
    // (2, 3) hold the same scores, their biases apart by 1e-12: scores
    // that float32 keys cannot tell apart.
    const rng = new Rng(5);
    const N = 3000, E = 256, size = 32;
    const bias = Float64Array.from(
      { length: E },
      (_, j) =>
        (rng.uniform() - 0.5) * 0.01 + (Math.floor(j / size) % 2) * 1e-12,
    );
    for (let j = size; j < 2 * size; j++) bias[j] = bias[j - size] + 1e-12;
    for (let j = 3 * size; j < 4 * size; j++) bias[j] = bias[j - size] - 1e-12;
    const data = new Float32Array(N * E);
    for (let i = 0; i < N; i++) {
      for (let j = 0; j < E; j++) data[i * E + j] = rng.uniform() ** 3;
      if (i % 2) {
        for (let j = 0; j < size; j++) {
          data[i * E + size + j] = data[i * E + j];
          data[i * E + 3 * size + j] = data[i * E + 2 * size + j];
        }
      }
    }
    const s = { data, tokens: N, experts: E };
    for (const groupScore of ["megatron", "v3", "v2"] as GroupScore[]) {
      for (const b of [bias, undefined]) {
        const o: RouteOptions = {
          k: 8,
          bias: b,
          groups: 8,
          topGroups: 4,
          groupScore,
          normalize: true,
          scale: 2.5,
        };
        sameAsCpu(s, o, `${groupScore} ${b ? "biased" : "unbiased"}`);
      }
    }
  },
);

test(
  "the wasm route kernel's float32 group scores never decide a group float32 ranks the wrong way",
  needsWasm,
  () => {
    // Groups 0, 1 and 4 are kept, 5 to 7 dropped; groups 2 and 3 compete
    // for the last place through one expert each (jA, jB). Per row, their
    // scores are chosen so that the float64 keys put group 2 ahead while
    // the float32 keys (x + fround(b)) put group 3 ahead.
    const rng = new Rng(9);
    const E = 256, size = 32, jA = 2 * size + 5, jB = 3 * size + 7;
    const bias = new Float64Array(E);
    // The float64 keys put A ahead by 2^-50; biases near 1.3 round to
    // float32 on a grid as coarse as the keys', so for some x the float32
    // sums swap them (a bias pair where 200 tries find one).
    const swapped = (xa: number) => {
      const xb = Math.fround(xa + 2 ** -24);
      return xa + bias[jA] > xb + bias[jB] &&
        Math.fround(xa + Math.fround(bias[jA])) <
          Math.fround(xb + Math.fround(bias[jB]));
    };
    const x = () => Math.fround(0.5 + 0.4 * rng.uniform());
    do {
      bias[jA] = 1 + rng.uniform();
      bias[jB] = bias[jA] - 2 ** -24 - 2 ** -50;
    } while (!Array.from({ length: 200 }, x).some(swapped));
    const rows: [number, number][] = [];
    while (rows.length < 400) {
      const xa = Math.fround(0.5 + 0.4 * rng.uniform());
      const xb = Math.fround(xa + 2 ** -24);
      const exactAhead = xa + bias[jA] > xb + bias[jB];
      const f32Behind = Math.fround(xa + Math.fround(bias[jA])) <
        Math.fround(xb + Math.fround(bias[jB]));
      if (exactAhead && f32Behind) rows.push([xa, xb]);
    }
    const N = rows.length;
    const data = new Float32Array(N * E);
    for (let i = 0; i < N; i++) {
      for (const q of [0, 1, 4]) {
        data[i * E + q * size] = 3 + rng.uniform() * 0.1;
        data[i * E + q * size + 1] = 3 + rng.uniform() * 0.1;
      }
      for (const q of [5, 6, 7]) data[i * E + q * size] = 0.1 * rng.uniform();
      data[i * E + jA] = rows[i][0];
      data[i * E + jB] = rows[i][1];
    }
    const s = { data, tokens: N, experts: E };
    for (const groupScore of ["megatron", "v2"] as GroupScore[]) {
      const o: RouteOptions = {
        k: 8,
        bias,
        groups: 8,
        topGroups: 4,
        groupScore,
      };
      const got = sameAsCpu(s, o, groupScore);
      // The definition: group 2 is kept, so expert jA is routed every time.
      assert.equal(got.loads[jA], N, groupScore);
      assert.equal(got.loads[jB], 0, groupScore);
    }
  },
);

/**
 * DeepSeek-V3's shape (256 experts, 8 groups of 32, 4 kept, k = 8) with
 * rows built to reach each way a group-limited row is decided: groups
 * exactly tied at the cut (float32 cannot separate them: the float64
 * scores and the tie rule decide), one hot group and seven equal ones,
 * a group whose one high key puts it next to the cut, a kept group with
 * a single finite key (fewer than k kept keys at either threshold: the
 * reference), among ordinary rows that keep the running threshold
 * settled. The bias repeats with the group size, so copied groups score
 * the same in float64.
 */
function v3Rows(rng: Rng, N: number, bias: Float64Array): ScoreMatrix {
  const E = 256, size = 32;
  const data = new Float32Array(N * E);
  for (let i = 0; i < N; i++) {
    const row = data.subarray(i * E, (i + 1) * E);
    for (let j = 0; j < E; j++) row[j] = rng.uniform() ** 3;
    const q = rng.int(8), p = (q + 1 + rng.int(7)) % 8;
    switch (i % 8) {
      case 1: // groups q and p equal, both at the cut
        for (let j = 0; j < size; j++) row[p * size + j] = row[q * size + j];
        break;
      case 2: // one hot group, the seven others equal
        for (let j = 0; j < E; j++) row[j] = row[j % size] * 0.1;
        for (let j = 0; j < size; j++) row[q * size + j] = 0.5 + row[j];
        break;
      case 3: { // group q: one key near the others' top, the rest low
        for (let j = 0; j < size; j++) row[q * size + j] = 0.01 * row[j];
        let top = 0;
        for (let j = 0; j < E; j++) top = Math.max(top, row[j] + bias[j]);
        row[q * size + rng.int(size)] = Math.fround(top - bias[0]);
        break;
      }
      case 4: // a hot group with a single finite key
        row.fill(-Infinity, q * size, (q + 1) * size);
        row[q * size + rng.int(size)] = 5;
        break;
    }
  }
  return { data, tokens: N, experts: E };
}

test(
  "the wasm route kernel's group-limited rows: ties at the cut, one hot group, a lone key, a bias float32 cannot carry",
  needsWasm,
  () => {
    const rng = new Rng(13);
    const size = 32, N = 2400;
    const periodic = (f: (r: number) => number) =>
      Float64Array.from({ length: 256 }, (_, j) => f(j % size));
    const small = Array.from(
      { length: size },
      () => (rng.uniform() - 0.5) / 50,
    );
    const biases: [string, Float64Array | undefined][] = [
      ["unbiased", undefined],
      ["small bias", periodic((r) => small[r])],
      // 2^101 + r: no float32 group tops (the float64 scores decide).
      ["bias 2^101", periodic((r) => 2 ** 101 + r * 2 ** 49)],
    ];
    for (const [what, bias] of biases) {
      const s = v3Rows(rng, N, bias ?? new Float64Array(256));
      for (const groupScore of ["megatron", "v3", "v2"] as GroupScore[]) {
        for (const k of [8, 128]) {
          if (k === 128 && groupScore === "v2") continue;
          const o: RouteOptions = {
            k,
            bias,
            groups: 8,
            topGroups: 4,
            groupScore,
            normalize: true,
          };
          const label = `${what} ${groupScore} k=${k}`;
          const got = sameAsCpu(s, o, label);
          // The definition on the first rows (every kind of row).
          const head = { ...s, tokens: 64, data: s.data.subarray(0, 64 * 256) };
          const want = bruteForce(head, o);
          assert.deepEqual(
            got.experts.subarray(0, 64 * k),
            want.experts,
            label,
          );
        }
      }
    }
  },
);

test(
  "the wasm route kernel names a row's lowest bad score when it lies in a dropped group",
  needsWasm,
  () => {
    const rng = new Rng(17);
    const N = 1500, E = 256, size = 32;
    const bias = Float64Array.from({ length: E }, () => rng.uniform() / 100);
    const base = v3Rows(rng, N, bias);
    const i = 1200; // after the running threshold settled
    // Group 1 low (dropped), group 6 high (kept).
    const lowRow = () => {
      for (let j = size; j < 2 * size; j++) base.data[i * E + j] = 0.001;
      for (let j = 6 * size; j < 7 * size; j++) base.data[i * E + j] = 0.9;
    };
    for (
      const cells of [
        [[size + 3, NaN]],
        [[size + 3, NaN], [6 * size + 1, Infinity]],
        [[size + 9, Infinity], [6 * size, NaN]],
      ]
    ) {
      lowRow();
      const data = base.data.slice();
      for (const [j, v] of cells) data[i * E + j] = v;
      const s = { data, tokens: N, experts: E };
      const o: RouteOptions = { k: 8, bias, groups: 8, topGroups: 4 };
      const expert = Math.min(...cells.map(([j]) => j));
      assert.throws(
        () => onWasm(s, o),
        new RegExp(`token ${i}, expert ${expert}\\b`),
      );
      assert.throws(
        () => onCpu(s, o),
        new RegExp(`token ${i}, expert ${expert}\\b`),
      );
    }
  },
);

test(
  "the wasm route kernel's float32 keys never drop a kept group's candidate at the threshold",
  needsWasm,
  () => {
    // Four hot groups (kept every time), their 128 keys within 2e-6 of one
    // another, the biases near 1 (float32 rounds them by up to 6e-8): the
    // running thresholds land among keys whose float32 keys x + (float)b
    // sit below them while the float64 keys x + b do not.
    const rng = new Rng(19);
    const N = 3000, E = 256, size = 32;
    const bias = Float64Array.from(
      { length: E },
      () => 1 + 1e-6 * rng.uniform(),
    );
    const data = new Float32Array(N * E);
    for (let i = 0; i < N; i++) {
      for (let q = 0; q < 8; q++) {
        for (let j = q * size; j < (q + 1) * size; j++) {
          data[i * E + j] = q % 2 === 0
            ? Math.fround(0.5 + 2e-6 * rng.uniform())
            : Math.fround(0.1 * rng.uniform());
        }
      }
    }
    const s = { data, tokens: N, experts: E };
    for (const groupScore of ["megatron", "v2"] as GroupScore[]) {
      const o: RouteOptions = {
        k: 8,
        bias,
        groups: 8,
        topGroups: 4,
        groupScore,
      };
      sameAsCpu(s, o, groupScore);
    }
  },
);

test(
  "the wasm route kernel reads scores in the shared heap in place: the cpu kernel's answers, bad scores named alike, its regions freed",
  needsWasm,
  () => {
    const heap = sharedWasmHeap();
    assert.ok(heap, "Deno and Bun have shared WebAssembly memory");
    const rng = new Rng(37);
    let compared = 0;
    for (
      const [N, E, k] of [[1, 3, 2], [67, 64, 6], [2101, 256, 8], [700, 37, 5]]
    ) {
      const plain = batch(rng, N, E, N === 67);
      const data = sharedScoreData(N * E);
      data.set(plain.data);
      const s = { data, tokens: N, experts: E };
      const settings = {
        bias: undefined,
        multiply: false,
        normalize: false,
        scale: 1,
      };
      // The in-place router takes these scores, not a plain copy of them.
      const make = (d: Float32Array) =>
        heapRowRouter(
          d,
          E,
          k,
          settings,
          new Int32Array(N * k),
          new Float32Array(N * k),
          new Int32Array(E),
        );
      assert.ok(make(data) !== undefined, "in the heap: routed in place");
      assert.equal(make(plain.data), undefined, "a plain array: copied");
      const used = heap.used();
      for (const o of options(rng, E, k).filter((o) => o.k <= 11)) {
        const what = `${N}x${E} ${JSON.stringify({ ...o, bias: !!o.bias })}`;
        same(
          onWasm(s, o),
          onCpu(plain, o),
          `${what} in place vs cpu`,
        );
        compared++;
      }
      assert.equal(heap.used(), used, "each call's region is freed");
      // The lowest bad index of the first bad row, as the cpu kernel names it.
      if (N > 2) {
        data[(N - 2) * E + E - 1] = NaN;
        data[(N - 2) * E + 1] = Infinity;
        data[(N - 1) * E] = NaN;
        const o = { k, bias: new Float64Array(E).fill(0.01) };
        const message = (f: () => unknown) => {
          try {
            f();
          } catch (e) {
            return (e as Error).message;
          }
          return "no error";
        };
        const want = message(() => onCpu(s, o));
        assert.match(want, new RegExp(`token ${N - 2}, expert 1 `));
        assert.equal(
          message(() => onWasm(s, o)),
          want,
        );
        assert.equal(heap.used(), used, "freed after a bad score too");
      }
    }
    assert.ok(compared > 40, `${compared} batches`);
  },
);
