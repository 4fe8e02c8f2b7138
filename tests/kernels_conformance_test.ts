// Every registered kernel against the CPU kernel of its op, found by
// enumerating the registry after importing every module of lib/ops and
// kernels/: a kernel that is registered is compared. Each op has cases in
// _kernel_cases.ts (ties, -Infinity, groups, biases, sizes off the
// workgroup, batches large enough for the worker threads) and a comparison
// whose tolerance is written out: selections identical, values exact on
// the CPU backends and within float32 rounding on WebGPU. A WebGPU
// kernel runs each case twice: whole, and with a small binding limit that
// forces the scores into chunks. Each registered kernel must also be
// reached from a public path (REACH below), which its call count shows.
//
// Without an adapter the WebGPU kernels are skipped with the reason, unless
// MOELAB_REQUIRE_GPU=1 (set by .ci/run): then they fail. Bun has no
// WebGPU, so under Bun they are skipped even then.
import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import process from "node:process";
import { readdirSync } from "node:fs";
import { acquireGpu, type Gpu, releaseGpu } from "../kernels/device.ts";
import {
  type AnyOp,
  definedOps,
  type KernelEnv,
  type KernelRecord,
  registeredKernels,
  requireKernel,
} from "../lib/ops/registry.ts";
import { routeCpu, routeOp } from "../lib/ops/route.ts";
import { bipRoundOp, dualScratch } from "../lib/ops/bip_round.ts";
import { routeKeepingNext } from "../lib/ops/quantile_step.ts";
import { BATCH_METRICS, METRIC } from "../lib/metrics/batch_metrics.ts";
import { createRouting } from "../lib/select/routing.ts";
import { route } from "../lib/route/route.ts";
import { routeParallel, sharedScores } from "../lib/route/route_parallel.ts";
import { routeAsync } from "../lib/route/route_backend.ts";
import { bipPrices } from "../lib/route/bip.ts";
import { sinkhornScaling } from "../lib/route/sinkhorn.ts";
import { createBalancer } from "../lib/route/registry.ts";
import { solveBalancedAssignmentSync } from "../lib/solve/solve_balanced_assignment_sync.ts";
import { runSimulation } from "../lib/sim/run.ts";
import { runSimulationOn } from "../lib/sim/run_backend.ts";
import type { ScoreMatrix } from "../lib/types.ts";
import { Rng } from "../lib/scores/rng.ts";
import {
  CONFORMANCE,
  dyadic,
  routeArgs,
  sameRouting,
  scores,
} from "./_kernel_cases.ts";
import { TRAIN_LEAST_BINDING, TRAIN_REACH } from "./_train_kernel_cases.ts";

// Every module that may register a kernel, so the registry is complete.
for (const dir of ["lib/ops", "kernels"]) {
  const folder = new URL(`../${dir}/`, import.meta.url);
  for (const name of readdirSync(folder).sort()) {
    if (name.endsWith(".ts") && !name.endsWith("_test.ts")) {
      await import(new URL(name, folder).href);
    }
  }
}

const { gpu, reason } = await acquireGpu();
// The device is destroyed once this module's tests are done.
after(releaseGpu);
const isBun = "Bun" in globalThis;
const required = process.env.MOELAB_REQUIRE_GPU === "1" && !isBun;
if (!gpu) {
  console.log(
    `WebGPU kernels skipped: ${reason}${
      isBun && process.env.MOELAB_REQUIRE_GPU === "1"
        ? " (MOELAB_REQUIRE_GPU=1 does not apply under Bun)"
        : ""
    }`,
  );
}

// ------------------------------------------------ reachability

const tiny = (): ScoreMatrix => scores(7, 64, 8, 4);

async function simulateOn(methods: string[], backend: "cpu" | "webgpu") {
  await runSimulationOn(
    { steps: 3, layers: 1, tokens: 256, experts: 8, topK: 2, methods },
    { backend },
  );
}

/**
 * An exact solve started near the optimum of the same scores: its price
 * steps select the rows again from the lists (the rowReselect op).
 */
function warmSolve(host: "cpu" | "wasm"): void {
  const s = scores(31, 4096, 64);
  const a = solveBalancedAssignmentSync(s, { k: 6, host });
  const rng = new Rng(5);
  const start = Array.from(
    a.expertPrices,
    (v) => v + (rng.uniform() - 0.5) * 0.05,
  );
  solveBalancedAssignmentSync(s, { k: 6, host, expertPrices: start });
}

function balance(method: string, host: "cpu" | "wasm" = "cpu"): void {
  const b = createBalancer(method, { layers: 1, experts: 8, k: 2, host });
  const s = tiny();
  b.update(0, s, b.route(0, s));
}

/**
 * A public path per registered kernel (`op/backend`): calling it must run
 * the kernel.
 */
const REACH: Record<string, () => Promise<void> | void> = {
  "route/cpu": () => void route(tiny(), { k: 2, host: "cpu" }),
  "route/wasm": () => void route(tiny(), { k: 2 }),
  "route/cpu-threads": () => {
    const s = sharedScores(40000, 8);
    s.data.set(scores(8, 40000, 8).data);
    routeParallel(s, { k: 2, threads: 2 });
  },
  "route/webgpu": async () =>
    void await routeAsync(tiny(), { k: 2, backend: "webgpu" }),
  "lossFreeUpdate/cpu": () => balance("loss-free"),
  "lossFreeUpdate/webgpu": () => simulateOn(["loss-free"], "webgpu"),
  "bipRound/cpu": () => balance("bip"),
  "bipRound/webgpu": () => simulateOn(["bip"], "webgpu"),
  "quantileStep/webgpu": () => simulateOn(["quantile"], "webgpu"),
  "sinkhorn/webgpu": () => simulateOn(["sinkhorn"], "webgpu"),
  "expertChoice/webgpu": () => simulateOn(["expert-choice"], "webgpu"),
  "capacityDrop/webgpu": () => simulateOn(["capacity"], "webgpu"),
  "batchMetrics/webgpu": () => simulateOn(["greedy"], "webgpu"),
  "quantileStep/cpu": () => balance("quantile"),
  "bipRound/wasm": () => void bipPrices(tiny(), { k: 2 }),
  "quantileStep/wasm": () => balance("quantile", "wasm"),
  "sinkhorn/cpu": () => balance("sinkhorn"),
  "rowSelect/cpu": () =>
    void solveBalancedAssignmentSync(tiny(), { k: 2, host: "cpu" }),
  "rowSelect/wasm": () => void solveBalancedAssignmentSync(tiny(), { k: 2 }),
  "rowReselect/cpu": () => warmSolve("cpu"),
  "rowReselect/wasm": () => warmSolve("wasm"),
  "scoreScan/cpu": () =>
    void solveBalancedAssignmentSync(tiny(), { k: 2, host: "cpu" }),
  "scoreScan/wasm": () => void solveBalancedAssignmentSync(tiny(), { k: 2 }),
  "certificateRows/cpu": () =>
    void solveBalancedAssignmentSync(tiny(), { k: 2, host: "cpu" }),
  "certificateRows/wasm": () =>
    void solveBalancedAssignmentSync(tiny(), { k: 2 }),
  "sinkhorn/wasm": () => void sinkhornScaling(tiny()),
  "expertChoice/cpu": () => balance("expert-choice"),
  "capacityDrop/cpu": () => balance("capacity"),
  "batchMetrics/cpu": () =>
    void runSimulation({
      steps: 2,
      layers: 1,
      tokens: 64,
      experts: 8,
      topK: 2,
      methods: ["greedy"],
    }),
  // The training ops (matmul, attention, ...): _train_kernel_cases.ts.
  ...TRAIN_REACH,
};

// ------------------------------------------------------------ suite

const key = (k: KernelRecord) => `${k.op.name}/${k.backend}`;

/** The device with a small binding limit, so inputs go in several chunks. */
function chunked(g: Gpu, bytes: number): Gpu {
  return { ...g, maxBinding: bytes };
}

/** Environments to run a kernel in: threads, the device whole and chunked. */
function environments(
  k: KernelRecord,
  E: number,
  input?: unknown,
): [string, KernelEnv][] {
  if (k.backend === "cpu-threads") return [["2 threads", { threads: 2 }]];
  // The training ops: the smallest binding each kernel works with.
  const least = input === undefined
    ? undefined
    : TRAIN_LEAST_BINDING[k.op.name]?.(input);
  if (k.backend === "webgpu") {
    return [["whole", { gpu }], ["chunked", {
      gpu: chunked(gpu!, least ?? 4 * 256 * E),
    }]];
  }
  return [["", {}]];
}

function needsGpu(k: KernelRecord): boolean {
  return k.backend === "webgpu";
}

function skipOf(k: KernelRecord): string | false {
  if (!needsGpu(k) || gpu) return false;
  return required ? false : `no WebGPU adapter: ${reason}`;
}

function expectGpu(): void {
  if (!gpu) {
    throw new Error(`MOELAB_REQUIRE_GPU=1 but there is no adapter: ${reason}`);
  }
}

/** Scores of an op's arguments, for the chunk size. */
function expertsOf(
  args: { scores?: ScoreMatrix; bias?: Float64Array },
): number {
  return args.scores?.experts ?? args.bias?.length ?? 1;
}

describe("the registry", () => {
  test("every op has a CPU kernel and a conformance entry", () => {
    const ops: readonly AnyOp[] = definedOps();
    assert.ok(ops.length >= 8, `ops: ${ops.map((o) => o.name)}`);
    for (const op of ops) {
      assert.ok(
        registeredKernels(op).some((k) => k.backend === "cpu"),
        `${op.name} has no cpu kernel`,
      );
      assert.ok(CONFORMANCE[op.name], `${op.name} has no conformance cases`);
    }
  });

  test("every registered kernel has a public path in REACH", () => {
    for (const k of registeredKernels()) {
      assert.ok(
        REACH[key(k)],
        `${key(k)} is registered but no path reaches it`,
      );
    }
    assert.equal(BATCH_METRICS.length, Object.keys(METRIC).length);
  });
});

describe("every kernel against its op's CPU kernel", () => {
  for (const k of registeredKernels()) {
    if (k.backend === "cpu") continue;
    const conformance = CONFORMANCE[k.op.name];
    test(
      `${key(k)} agrees with ${k.op.name}/cpu`,
      { skip: skipOf(k) },
      async () => {
        if (needsGpu(k)) expectGpu();
        const cpu = requireKernel(k.op, "cpu");
        let compared = 0;
        for (const c of conformance.cases()) {
          const input = c.make();
          if (k.refuses?.(input)) continue;
          const wantArgs = c.make();
          const want = cpu.run(wantArgs, {});
          for (const [where, env] of environments(k, expertsOf(input), input)) {
            const gotArgs = c.make();
            const got = await k.run(gotArgs, env);
            conformance.compare(
              got,
              want,
              { input, gotArgs, wantArgs },
              k.backend,
              `${key(k)} ${c.label} ${where}`,
            );
          }
          compared++;
        }
        assert.ok(compared > 0, `${key(k)} refused every case`);
      },
    );
  }
});

describe("every route kernel reports a bad score as the CPU does", () => {
  for (const k of registeredKernels(routeOp)) {
    test(`${key(k)}`, { skip: skipOf(k) }, async () => {
      if (needsGpu(k)) expectGpu();
      for (const bad of [NaN, Infinity]) {
        const s = scores(5, 300, 16);
        s.data[123 * 16 + 5] = bad;
        for (const [where, env] of environments(k, 16)) {
          await assert.rejects(
            async () => await k.run(routeArgs(s, 3), env),
            (e: Error) =>
              e instanceof RangeError && /token 123, expert 5/.test(e.message),
            `${key(k)} ${where}: ${bad}`,
          );
        }
      }
    });
  }
});

describe("every kernel is reached from a public path", () => {
  for (const k of registeredKernels()) {
    const path = REACH[key(k)];
    if (path === undefined) continue; // reported by the registry test
    test(
      `${key(k)}: ${k.callers.join("; ")}`,
      { skip: skipOf(k) },
      async () => {
        if (needsGpu(k)) expectGpu();
        const before = k.calls;
        await path();
        assert.ok(k.calls > before, `${key(k)} was not called`);
      },
    );
  }
});

describe("the CPU kernels' fused and public forms", () => {
  test("route(), routeParallel() and routeCpu agree on one batch", () => {
    const s = sharedScores(30000, 12);
    s.data.set(scores(3, 30000, 12, 8).data);
    const bias = dyadic(3, 12, 5, 16);
    const a = route(s, { k: 3, bias });
    const b = routeParallel(s, { k: 3, bias, threads: 3 });
    const c = routeCpu(routeArgs(s, 3, { bias }));
    sameRouting(b, a, true, "routeParallel");
    sameRouting(c, a, true, "routeCpu");
  });

  test("the Quantile step's fused route is the route op's CPU selection", () => {
    for (const [N, E, k] of [[1000, 32, 4], [257, 37, 3]]) {
      const s = scores(N, N, E, N % 2 ? 8 : 0);
      const q = dyadic(N, E, 8, 64, -4 / 64);
      const scratch = dualScratch(N, E, k);
      const fused = createRouting(N, k, E);
      routeKeepingNext(s, k, q, fused, scratch, true);
      const bias = Float64Array.from(q, (v) => -v);
      const plain = routeCpu(routeArgs(s, k, { bias, normalize: true }));
      sameRouting(fused, plain, true, `${N}x${E}`);
      // a[i]: the (k+1)-th of s - q, which the step would compute itself.
      const p = bipRoundOp.validate({
        scores: s,
        options: { k, T: 1, expertPrices: q, clipTokenPrices: false },
      });
      const tokenPrices = requireKernel(bipRoundOp, "cpu").run(p, {})
        .tokenPrices;
      assert.deepEqual(scratch.p, tokenPrices);
    }
  });
});
