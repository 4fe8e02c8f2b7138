// The conformance cases of every op: inputs that stress each kernel (ties,
// -Infinity, groups, biases, sizes off the workgroup, batches large enough
// for the worker threads) and the comparison with the op's CPU kernel,
// with its tolerance written out. tests/kernels_conformance_test.ts runs
// them on every registered kernel. A new op adds its entry to CONFORMANCE.
import assert from "node:assert/strict";
import { type RouteArgs, routeCpu, routeOp } from "../lib/ops/route.ts";
import { requireKernel } from "../lib/ops/registry.ts";
import {
  type LossFreeUpdateArgs,
  lossFreeUpdateOp,
} from "../lib/ops/loss_free_update.ts";
import { type Precision, roundTo } from "../lib/numeric/precision.ts";
import { bipRoundOp, type BipRoundResult } from "../lib/ops/bip_round.ts";
import { quantileStepOp } from "../lib/ops/quantile_step.ts";
import { sinkhornOp, type SinkhornResult } from "../lib/ops/sinkhorn.ts";
import { expertChoiceOp } from "../lib/ops/expert_choice.ts";
import { capacityDropOp } from "../lib/ops/capacity_drop.ts";
import { batchMetricsOp } from "../lib/ops/batch_metrics.ts";
import {
  rowReselectOp,
  rowSelectCpu,
  type RowSelection,
  rowSelectOp,
} from "../lib/ops/row_select.ts";
import { type ScoreScan, scoreScanOp } from "../lib/ops/score_scan.ts";
import {
  type CertificateRows,
  certificateRowsOp,
} from "../lib/ops/certificate_rows.ts";
import { METRIC } from "../lib/metrics/batch_metrics.ts";
import { selectedScoreSum } from "../lib/metrics/load_metrics.ts";
import { capacityOf } from "../lib/select/capacity.ts";
import { Rng } from "../lib/scores/rng.ts";
import type { Routing, ScoreMatrix } from "../lib/types.ts";
import { TRAIN_CONFORMANCE } from "./_train_kernel_cases.ts";

/** float32's unit roundoff. */
export const U32 = 2 ** -24;

// ---------------------------------------------------------------- inputs

/**
 * Scores with ties (`levels` > 0 quantises them) and, for one token in
 * five, a masked quarter of the experts (-Infinity, as group-limited
 * routing leaves them). `maskAll` masks every expert of one column.
 */
export function scores(
  seed: number,
  N: number,
  E: number,
  levels = 0,
  maskColumn = -1,
): ScoreMatrix {
  const rng = new Rng(seed);
  const data = new Float32Array(N * E);
  const group = Math.max(1, E >> 2);
  for (let i = 0; i < N; i++) {
    for (let j = 0; j < E; j++) {
      const u = rng.uniform();
      data[i * E + j] = levels ? Math.floor(u * levels) / levels : u;
    }
    if (rng.uniform() < 0.2 && E >= 4) {
      const g = rng.int(4);
      data.fill(-Infinity, i * E + g * group, i * E + (g + 1) * group);
    }
    if (maskColumn >= 0) data[i * E + maskColumn] = -Infinity;
  }
  return { data, tokens: N, experts: E };
}

/** Dyadic values (exact in float32): `count` of `int(spread) / denom + base`. */
export function dyadic(
  seed: number,
  count: number,
  spread: number,
  denom: number,
  base = 0,
): Float64Array {
  const rng = new Rng(seed);
  return Float64Array.from(
    { length: count },
    () => base + rng.int(spread) / denom,
  );
}

function largest(xs: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < xs.length; i++) {
    const v = Math.abs(xs[i]);
    if (v < Infinity && v > m) m = v;
  }
  return m;
}

/** `|got - want| <= tol * max(1, |want|)` entry by entry. */
export function within(
  got: ArrayLike<number>,
  want: ArrayLike<number>,
  tol: number,
  what: string,
): void {
  assert.equal(got.length, want.length, `${what}: length`);
  for (let i = 0; i < want.length; i++) {
    const d = Math.abs(got[i] - want[i]);
    assert.ok(
      d <= tol * Math.max(1, Math.abs(want[i])) || got[i] === want[i],
      `${what}[${i}]: ${got[i]} vs ${want[i]} (tolerance ${tol})`,
    );
  }
}

// ------------------------------------------------------ cases per op

/** A case: a label and a factory of fresh arguments (kernels write them). */
export interface Case<A> {
  label: string;
  make(): A;
}

/** What a comparison sees besides the two results. */
export interface Run<A> {
  /** An untouched copy of the inputs. */
  input: A;
  /** The arguments after the kernel under test and after the CPU kernel. */
  gotArgs: A;
  wantArgs: A;
}

/** How an op's kernels are compared. */
export interface Conformance<A, R> {
  cases(): Case<A>[];
  /**
   * Asserts that `got` (the kernel under test, on `backend`) agrees with
   * `want` (the CPU kernel).
   */
  compare(got: R, want: R, run: Run<A>, backend: string, what: string): void;
}

/** The tolerance of a float32 weight after a sum of `k` terms. */
function weightTol(k: number): number {
  return (k + 4) * U32;
}

export function sameRouting(
  got: Routing,
  want: Routing,
  exact: boolean,
  what: string,
): void {
  assert.deepEqual(got.experts, want.experts, `${what}: experts`);
  assert.deepEqual(got.loads, want.loads, `${what}: loads`);
  if (exact) assert.deepEqual(got.weights, want.weights, `${what}: weights`);
  else within(got.weights, want.weights, weightTol(got.k), `${what}: weights`);
}

export function routeArgs(
  s: ScoreMatrix,
  k: number,
  extra: Partial<Omit<RouteArgs, "scores" | "k" | "out">> = {},
): RouteArgs {
  return routeOp.validate({
    scores: s,
    options: {
      k,
      bias: extra.bias,
      biasMode: extra.multiply ? "multiply" : "add",
      normalize: extra.normalize,
      scale: extra.scale,
      groups: extra.groups,
      topGroups: extra.topGroups,
      groupScore: extra.groupScore,
    },
  });
}

const ROUTE: Conformance<RouteArgs, Routing> = {
  cases() {
    const out: Case<RouteArgs>[] = [];
    const sizes = [
      [1, 1, 1],
      [63, 7, 2],
      [65, 64, 6],
      [1000, 256, 8],
      [257, 37, 8],
      [130, 300, 12],
      [5000, 64, 6], // above routeParallel's threshold: worker threads run
    ];
    let seed = 10;
    for (const [N, E, k] of sizes) {
      for (const mode of ["none", "add", "multiply"] as const) {
        const levels = N % 2 ? 4 : 0;
        const s = seed++;
        out.push({
          label: `${N}x${E} k=${k} ${mode}${levels ? " ties" : ""}`,
          make: () =>
            routeArgs(scores(s, N, E, levels), k, {
              // Dyadic biases: the same values in float32 and float64.
              bias: mode === "none"
                ? undefined
                : mode === "add"
                ? dyadic(s, E, 5, 16, -2 / 16)
                : dyadic(s, E, 4, 4, 0.5),
              multiply: mode === "multiply",
              normalize: mode !== "add",
              scale: mode === "add" ? 1 : 2.5,
            }),
        });
      }
    }
    // Near ties: per token, experts 1 and 3 get the score that puts their
    // key within a float32 rounding of expert 0's and 2's, with biases that
    // are not dyadic, so float32 keys fround(s + b) would tie (and pick the
    // lower index) where the float64 keys differ. Both bias modes.
    for (const mode of ["add", "multiply"] as const) {
      const s = seed++;
      out.push({
        label: `700x40 k=5 ${mode} near ties`,
        make: () => {
          const m = scores(s, 700, 40);
          const rng = new Rng(s);
          const bias = Float64Array.from(
            { length: 40 },
            () =>
              Math.fround(
                mode === "add"
                  ? (rng.uniform() - 0.5) * 1e-3
                  : 0.9 + 0.2 * rng.uniform(),
              ),
          );
          const d = m.data;
          for (let i = 0; i < 700; i++) {
            for (const j of [0, 2]) {
              const x = d[i * 40 + j];
              if (!(x > -Infinity)) continue;
              d[i * 40 + j + 1] = mode === "add"
                ? x + bias[j] - bias[j + 1]
                : (x * bias[j]) / bias[j + 1];
            }
          }
          return routeArgs(m, 5, { bias, multiply: mode === "multiply" });
        },
      });
    }
    // Group-limited routing (DeepSeek-V3's shape, scaled down).
    for (
      const [N, E, k, G, M] of [[600, 64, 6, 8, 3], [301, 32, 4, 4, 2], [
        5000,
        64,
        8,
        8,
        4,
      ]]
    ) {
      const s = seed++;
      out.push({
        label: `${N}x${E} k=${k} groups ${M}/${G}`,
        make: () =>
          routeArgs(scores(s, N, E, 8), k, {
            bias: dyadic(s, E, 7, 32, -3 / 32),
            normalize: true,
            groups: G,
            topGroups: M,
          }),
      });
    }
    // DeepSeek-V3's group score (top 2 whatever k) and DeepSeek-V2's
    // (the group maximum), where they differ from Megatron-Core's top
    // floor(k / M): k = 6 of 3 groups kept sums the top 2 (V3 equals
    // Megatron's), k = 8 of 2 groups the top 4.
    for (
      const [N, E, k, G, M, how] of [
        [600, 64, 8, 8, 2, "v3"],
        [600, 64, 8, 8, 2, "v2"],
        [301, 48, 6, 6, 3, "v2"],
      ] as const
    ) {
      const s = seed++;
      out.push({
        label: `${N}x${E} k=${k} groups ${M}/${G} ${how}`,
        make: () =>
          routeArgs(scores(s, N, E, 8), k, {
            bias: dyadic(s, E, 7, 32, -3 / 32),
            normalize: true,
            groups: G,
            topGroups: M,
            groupScore: how,
          }),
      });
    }
    return out;
  },
  compare(got, want, _input, backend, what) {
    sameRouting(got, want, backend !== "webgpu", what);
  },
};

const LOSS_FREE = {
  cases() {
    const out = [];
    let seed = 40;
    for (const E of [1, 7, 256, 300]) {
      for (const rule of ["sign", "proportional"] as const) {
        for (const center of [false, true]) {
          const s = seed++;
          out.push({
            label: `E=${E} ${rule}${center ? " centred" : ""}`,
            make: () => {
              const rng = new Rng(s);
              const loads = Int32Array.from({ length: E }, () => rng.int(50));
              loads[0] = 10; // an expert exactly at the mean when E = 1
              return lossFreeUpdateOp.validate({
                bias: dyadic(s, E, 9, 1024, -4 / 1024),
                loads,
                rate: 1e-3,
                rule,
                center,
              });
            },
          });
        }
      }
    }
    // Emulated precisions and running counts (Megatron-Core's bf16 and
    // fp32 buffers): counts near DeepSeek-V3's global-batch sizes, where
    // bfloat16 spacing is 256 and the sign of mean - c can flip; token
    // adds past bfloat16's 256 and float32's 2^24; a micro-batch that only
    // accumulates (apply false).
    const settings: [
      number,
      Precision,
      Precision,
      "batch" | "token",
      boolean,
      "sign" | "proportional",
    ][] = [
      [7, "float32", "float32", "batch", true, "sign"],
      [256, "bfloat16", "bfloat16", "batch", true, "sign"],
      [256, "float32", "bfloat16", "batch", true, "sign"],
      [300, "bfloat16", "float32", "batch", true, "sign"],
      [256, "float32", "bfloat16", "token", true, "sign"],
      [64, "float32", "float32", "token", true, "sign"],
      [256, "bfloat16", "bfloat16", "batch", false, "sign"],
      [256, "float64", "bfloat16", "batch", true, "sign"],
      [256, "bfloat16", "float64", "batch", true, "sign"],
      [256, "float32", "float32", "batch", true, "proportional"],
    ];
    for (const [E, pb, pc, how, apply, rule] of settings) {
      const s = seed++;
      out.push({
        label: `E=${E} ${rule} ${pb} bias, ${pc} counts by ${how}${
          apply ? "" : ", accumulate only"
        }`,
        make: () => {
          const rng = new Rng(s);
          const big = how === "token" && pc === "float32";
          // Running counts of earlier micro-batches, values of `pc`.
          const counts = Float64Array.from(
            { length: E },
            () =>
              roundTo(
                big
                  ? 2 ** 24 - 300 + rng.int(600)
                  : how === "token"
                  ? 200 + rng.int(100)
                  : 38000 + rng.int(6000),
                pc,
              ),
          );
          const loads = Int32Array.from(
            { length: E },
            () => 560 + rng.int(120),
          );
          const bias = Float64Array.from(
            { length: E },
            () => roundTo((rng.uniform() - 0.5) * 1.5, pb),
          );
          return lossFreeUpdateOp.validate({
            bias,
            loads,
            rate: 1e-3,
            rule,
            center: false,
            biasPrecision: pb,
            countPrecision: pc,
            countAdd: how,
            counts,
            apply,
          });
        },
      });
    }
    return out;
  },
  compare(
    got: Float64Array,
    want: Float64Array,
    { input, gotArgs, wantArgs }: Run<LossFreeUpdateArgs>,
    backend: string,
    what: string,
  ) {
    if (wantArgs.counts) {
      assert.deepEqual(gotArgs.counts, wantArgs.counts, `${what}: counts`);
    }
    // Float32 and bfloat16 storage on both sides: the same roundings.
    const emulated = input.biasPrecision !== "float64" &&
      input.countPrecision !== "float64" && input.rule === "sign";
    if (backend !== "webgpu" || emulated) {
      return assert.deepEqual(got, want, what);
    }
    // float32 state: the bias, the rate and the step each round once.
    for (let j = 0; j < want.length; j++) {
      const scale = Math.abs(input.bias[j]) + Math.abs(want[j]) + input.rate;
      assert.ok(
        Math.abs(got[j] - want[j]) <= 4 * U32 * scale,
        `${what}[${j}]: ${got[j]} vs ${want[j]}`,
      );
    }
  },
} satisfies Conformance<LossFreeUpdateArgs, Float64Array>;

/** Prices of a float32 kernel: each round moves them by float32 rounding of |s| + |q| + |p|. */
function pricesTol(
  s: ScoreMatrix,
  rounds: number,
  ...prices: ArrayLike<number>[]
) {
  let m = largest(s.data);
  for (const p of prices) m += largest(p);
  return 8 * Math.max(1, rounds) * U32 * m;
}

const BIP = {
  cases() {
    const out = [];
    let seed = 60;
    for (
      const [N, E, k, cf, rounds, clip] of [
        [1001, 37, 3, 1, 2, true],
        [130, 64, 8, 1.5, 1, true],
        [65, 8, 8, 1, 1, true], // k = E: p = 0
        [50, 16, 2, 9, 2, true], // C >= N: q = 0
        [600, 64, 6, 1, 3, true],
        [600, 64, 6, 1, 2, "experts"],
        [40, 8, 2, 1, 0, true],
      ] as const
    ) {
      const s = seed++;
      out.push({
        label: `${N}x${E} k=${k} cf=${cf} T=${rounds} clip=${clip}`,
        make: () => {
          const sc = scores(s, N, E, N % 2 ? 16 : 0);
          const args = bipRoundOp.validate({
            scores: sc,
            options: {
              k,
              capacity: capacityOf(N, k, E, cf),
              T: rounds,
              expertPrices: dyadic(s, E, 4, 64),
              clipTokenPrices: clip === true,
            },
          });
          return args;
        },
      });
    }
    return out;
  },
  compare(
    got: BipRoundResult,
    want: BipRoundResult,
    { input }: Run<ReturnType<typeof bipRoundOp.validate>>,
    backend: string,
    what: string,
  ) {
    if (backend !== "webgpu") {
      assert.deepEqual(got.prices, want.prices, `${what}: q`);
      assert.deepEqual(got.tokenPrices, want.tokenPrices, `${what}: p`);
      return;
    }
    const tol = pricesTol(
      input.scores,
      input.rounds,
      input.prices,
      want.prices,
      want.tokenPrices,
    );
    within(got.prices, want.prices, tol, `${what}: q`);
    within(got.tokenPrices, want.tokenPrices, tol, `${what}: p`);
  },
} satisfies Conformance<
  ReturnType<typeof bipRoundOp.validate>,
  BipRoundResult
>;

const QUANTILE = {
  cases() {
    const out = [];
    let seed = 80;
    for (
      const [N, E, k, masked] of [
        [1000, 32, 4, -1],
        [257, 37, 3, -1],
        [600, 64, 6, 5], // expert 5 unreachable: keeps its price
        [64, 8, 8, -1], // k = E: nothing moves
        [10, 8, 6, -1], // C >= N: nothing moves
      ]
    ) {
      const s = seed++;
      out.push({
        label: `${N}x${E} k=${k}${masked >= 0 ? " masked column" : ""}`,
        make: () =>
          quantileStepOp.validate({
            scores: scores(s, N, E, N % 2 ? 8 : 0, masked),
            k,
            prices: dyadic(s, E, 8, 64, -4 / 64),
          }),
      });
    }
    return out;
  },
  compare(
    got: Float64Array,
    want: Float64Array,
    { input }: Run<ReturnType<typeof quantileStepOp.validate>>,
    backend: string,
    what: string,
  ) {
    if (backend !== "webgpu") return assert.deepEqual(got, want, what);
    // One round, then the mean: twice a round's rounding.
    within(got, want, 2 * pricesTol(input.scores, 1, input.prices, want), what);
  },
} satisfies Conformance<
  ReturnType<typeof quantileStepOp.validate>,
  Float64Array
>;

const SINKHORN = {
  cases() {
    const out = [];
    let seed = 100;
    for (
      const [N, E, tau, maxIterations, warm] of [
        [300, 64, 1, 100, false],
        [1000, 16, 0.1, 100, true],
        [257, 37, 0.05, 3, false], // the cap: a fixed number of steps
        [1, 3, 1, 100, false],
      ] as const
    ) {
      const s = seed++;
      out.push({
        label: `${N}x${E} tau=${tau} cap=${maxIterations}${
          warm ? " warm" : ""
        }`,
        make: () =>
          sinkhornOp.validate({
            scores: scores(s, N, E),
            options: { temperature: tau, maxIterations },
            logScale: warm ? dyadic(s, E, 5, 64, -2 / 64) : undefined,
          }),
      });
    }
    return out;
  },
  compare(
    got: SinkhornResult,
    want: SinkhornResult,
    { input, gotArgs, wantArgs }: Run<ReturnType<typeof sinkhornOp.validate>>,
    backend: string,
    what: string,
  ) {
    if (backend !== "webgpu") {
      assert.deepEqual(got, want, what);
      assert.deepEqual(gotArgs.logScale, wantArgs.logScale, what);
      return;
    }
    // float32 sums, and a stop that may come one step apart where the
    // error sits within rounding of the tolerance: one step then changes
    // the scale by about the tolerance.
    assert.ok(
      Math.abs(got.iterations - want.iterations) <= 1,
      `${what}: iterations ${got.iterations} vs ${want.iterations}`,
    );
    const steps = got.iterations === want.iterations ? 0 : 1;
    const tol = (1e-5 + 2 * steps * input.tolerance) * input.temperature;
    within(gotArgs.logScale, wantArgs.logScale, tol, `${what}: log scale`);
    if (steps === 0) {
      assert.ok(
        Math.abs(got.error - want.error) <= 1e-5 + 1e-3 * want.error,
        `${what}: error ${got.error} vs ${want.error}`,
      );
    }
  },
} satisfies Conformance<
  ReturnType<typeof sinkhornOp.validate>,
  SinkhornResult
>;

const EXPERT_CHOICE = {
  cases() {
    const out = [];
    let seed = 120;
    for (
      const [N, E, k, cf, normalize] of [
        [300, 16, 2, 1, false],
        [1000, 64, 6, 1, true],
        [257, 37, 3, 1.5, true],
        [65, 8, 2, 100, false], // C = N: every pair
        [20, 4, 1, 0.01, false],
      ] as const
    ) {
      const s = seed++;
      out.push({
        label: `${N}x${E} k=${k} cf=${cf}`,
        make: () =>
          expertChoiceOp.validate({
            scores: scores(s, N, E, N % 2 ? 8 : 0),
            capacity: Math.min(N, capacityOf(N, k, E, cf)),
            normalize,
          }),
      });
    }
    return out;
  },
  compare(
    got: Routing,
    want: Routing,
    _i: unknown,
    backend: string,
    what: string,
  ) {
    sameRouting(got, want, backend !== "webgpu", what);
  },
} satisfies Conformance<
  ReturnType<typeof expertChoiceOp.validate>,
  Routing
>;

const CAPACITY = {
  cases() {
    const out = [];
    let seed = 140;
    // "probs" ranks the routing's weights (normalised and scaled gates in
    // the `normalize` cases), which order an expert's tokens differently
    // from their raw scores.
    for (
      const [N, E, k, cf, drop, normalize] of [
        [300, 16, 2, 1, "probs", false],
        [300, 16, 2, 1, "position", false],
        [1000, 64, 6, 1.25, "probs", false],
        [257, 37, 3, 0.5, "probs", false],
        [257, 37, 3, 0.5, "position", false],
        [300, 16, 2, 1, "probs", true],
        [1000, 64, 6, 0.8, "probs", true],
        [257, 37, 3, 0.5, "probs", true],
      ] as const
    ) {
      const s = seed++;
      out.push({
        label: `${N}x${E} k=${k} cf=${cf} ${drop}${
          normalize ? " normalised x2.5" : ""
        }`,
        make: () => {
          const sc = scores(s, N, E, N % 2 ? 8 : 0);
          const gates = normalize ? { normalize, scale: 2.5 } : {};
          return capacityDropOp.validate({
            scores: sc,
            routing: routeCpu(routeArgs(sc, k, gates)),
            capacity: capacityOf(N, k, E, cf),
            drop,
          });
        },
      });
    }
    return out;
  },
  compare(got: Routing, want: Routing, _i: unknown, _b: string, what: string) {
    // Dropping copies weights and compares scores: exact on every backend.
    sameRouting(got, want, true, what);
  },
} satisfies Conformance<
  ReturnType<typeof capacityDropOp.validate>,
  Routing
>;

const METRICS = {
  cases() {
    const out = [];
    let seed = 160;
    for (const [N, E, k] of [[300, 16, 2], [1000, 64, 6], [257, 37, 3]]) {
      for (const kind of ["greedy", "dropped", "expert-choice"] as const) {
        const s = seed++;
        out.push({
          label: `${N}x${E} k=${k} ${kind}`,
          make: () => {
            const sc = scores(s, N, E, N % 2 ? 8 : 0);
            const greedy = routeCpu(routeArgs(sc, k));
            const referenceSum = selectedScoreSum(sc, greedy);
            const routing = kind === "greedy"
              ? greedy
              : kind === "dropped"
              ? requireKernel(capacityDropOp, "cpu").run(
                capacityDropOp.validate({
                  scores: sc,
                  routing: routeCpu(routeArgs(sc, k)),
                  capacity: capacityOf(N, k, E, 0.8),
                  drop: "probs",
                }),
                {},
              )
              : requireKernel(expertChoiceOp, "cpu").run(
                expertChoiceOp.validate({
                  scores: sc,
                  capacity: capacityOf(N, k, E, 1),
                }),
                {},
              );
            return batchMetricsOp.validate({
              scores: sc,
              routing,
              topK: k,
              referenceSum,
            });
          },
        });
      }
    }
    return out;
  },
  compare(
    got: Float64Array,
    want: Float64Array,
    _i: unknown,
    backend: string,
    what: string,
  ) {
    if (backend !== "webgpu") return assert.deepEqual(got, want, what);
    for (const m of ["zeroExperts", "tokensWithoutExpert"] as const) {
      assert.equal(got[METRIC[m]], want[METRIC[m]], `${what}: ${m}`);
    }
    // Ratios of float32 sums over up to tokens x k terms.
    within(got, want, 1e-5, what);
  },
} satisfies Conformance<
  ReturnType<typeof batchMetricsOp.validate>,
  Float64Array
>;

/**
 * The exact solver's row selection: continuous scores, ties (quantised
 * scores and prices), masks, rows taken whole (k = E, and alternating
 * spreads that leave the running guess far below every row of the other
 * kind, which also grows the lists past their first size), sizes off the
 * vector width, prices from zero to beyond the scores.
 */
const ROW_SELECT = {
  cases() {
    const out = [];
    let seed = 200;
    for (
      const [N, E, k, levels, kind] of [
        [500, 64, 6, 0, "plain"],
        [300, 256, 8, 0, "plain"],
        [400, 37, 3, 8, "ties"],
        [200, 8, 8, 0, "plain"], // k = E: no list, free -Infinity
        [257, 19, 1, 4, "ties"],
        [300, 256, 2, 0, "alternate"],
        [1, 5, 2, 0, "plain"],
        [129, 16, 15, 0, "plain"],
      ] as const
    ) {
      const s = seed++;
      out.push({
        label: `${N}x${E} k=${k} ${kind}`,
        make() {
          const m = scores(s, N, E, levels);
          if (kind === "alternate") {
            // Every other row a hundredth of the spread.
            for (let i = 1; i < N; i += 2) {
              for (let j = i * E; j < (i + 1) * E; j++) m.data[j] *= 0.01;
            }
          }
          const prices = kind === "ties"
            ? dyadic(s, E, 4, 16)
            : dyadic(s, E, 64, 256, -0.05);
          return rowSelectOp.validate({ scores: m, k, prices });
        },
      });
    }
    return out;
  },
  compare(got: RowSelection, want: RowSelection, _run, _backend, what) {
    // Bit for bit on every backend that has the op (the CPU ones): the
    // same tops, values, floors and lists in the same order.
    assert.deepEqual(got, want, what);
  },
} satisfies Conformance<ReturnType<typeof rowSelectOp.validate>, RowSelection>;

/**
 * The row selection again under new prices, from the selection under the
 * old ones: small moves (the held experts still lead), moves on the score
 * grid (ties), cuts large enough to lift many unlisted experts (rows with
 * more than 24 candidates, lists grown past their first size), masks.
 */
const ROW_RESELECT = {
  cases() {
    const out = [];
    let seed = 240;
    for (
      const [N, E, k, levels, move] of [
        [500, 64, 6, 0, 0.01],
        [300, 256, 8, 0, 0.003],
        [400, 37, 3, 8, 0.25],
        [257, 19, 1, 4, 0.5],
        [300, 64, 8, 0, 0.6],
        [129, 16, 15, 0, 0.05],
      ] as const
    ) {
      const s = seed++;
      out.push({
        label: `${N}x${E} k=${k} move ${move}${levels ? " ties" : ""}`,
        make() {
          const m = scores(s, N, E, levels);
          const old = levels ? dyadic(s, E, 4, 16) : dyadic(s, E, 64, 256);
          const prev = rowSelectCpu(
            rowSelectOp.validate({ scores: m, k, prices: old }),
          );
          // Dyadic moves of up to `move` either way (on the grid: ties).
          const steps = Math.max(1, Math.round(move * 64));
          const prices = Float64Array.from(
            dyadic(s + 1, E, 2 * steps + 1, 64, -steps / 64),
            (d, j) => old[j] + d,
          );
          return rowReselectOp.validate({ scores: m, k, prev, old, prices });
        },
      });
    }
    return out;
  },
  compare(got: RowSelection, want: RowSelection, _run, _backend, what) {
    assert.deepEqual(got, want, what);
  },
} satisfies Conformance<
  ReturnType<typeof rowReselectOp.validate>,
  RowSelection
>;

/**
 * The solver's check of its input: masks, scores of either sign and of
 * large magnitude, NaN and +Infinity (the first in memory order, with
 * more after it), -0, rows off the vector width, no tokens.
 */
const SCORE_SCAN = {
  cases() {
    const out = [];
    let seed = 220;
    for (
      const [N, E, kind] of [
        [300, 64, "masked"],
        [257, 37, "signed"],
        [129, 19, "nan"],
        [65, 256, "infinity"],
        [40, 3, "large"],
        [0, 8, "masked"],
        [9, 5, "all masked"],
      ] as const
    ) {
      const s = seed++;
      out.push({
        label: `${N}x${E} ${kind}`,
        make() {
          const m = scores(s, N, E);
          const d = m.data;
          const rng = new Rng(s);
          for (let x = 0; x < d.length; x++) {
            if (kind === "signed") d[x] = (d[x] - 0.5) * 6;
            if (kind === "large") d[x] = (d[x] - 0.5) * 3e37;
            if (kind === "all masked") d[x] = -Infinity;
          }
          if (kind === "nan" && d.length > 0) {
            d[rng.int(d.length >> 1) + (d.length >> 1)] = NaN;
            d[d.length - 1] = Infinity;
            d[3] = -0;
          }
          if (kind === "infinity") d[rng.int(d.length)] = Infinity;
          return scoreScanOp.validate({ scores: m });
        },
      });
    }
    return out;
  },
  compare(got: ScoreScan, want: ScoreScan, _run, _backend, what) {
    assert.deepEqual(got, want, what);
  },
} satisfies Conformance<ReturnType<typeof scoreScanOp.validate>, ScoreScan>;

/**
 * The certificate's rows: prices near an optimum (few positive terms) and
 * far from one, ties, masks, scores of either sign and of large, huge
 * (token prices past 2^120: those rows in float64) and tiny magnitude,
 * NaN scores, expert prices past 2^120 (the whole call in float64), a
 * token holding a masked pair, rows off the vector width, no tokens.
 */
const CERTIFICATE_ROWS = {
  cases() {
    const out = [];
    let seed = 240;
    for (
      const [N, E, k, kind] of [
        [300, 64, 8, "near"],
        [257, 37, 3, "ties"],
        [129, 130, 5, "large"],
        [70, 48, 4, "huge scores"],
        [65, 256, 8, "huge prices"],
        [50, 48, 4, "nan"],
        [60, 21, 3, "tiny"],
        [40, 19, 2, "masked held"],
        [0, 8, 2, "near"],
      ] as const
    ) {
      const s = seed++;
      out.push({
        label: `${N}x${E} k=${k} ${kind}`,
        make() {
          const m = scores(s, N, E, kind === "ties" ? 8 : 0);
          const d = m.data, rng = new Rng(s);
          const mag = kind === "large"
            ? 1e30
            : kind === "huge scores"
            ? 1e37
            : kind === "tiny"
            ? 1e-38
            : 1;
          for (let x = 0; x < d.length; x++) {
            if (d[x] !== -Infinity) d[x] = (d[x] - 0.25) * mag;
          }
          if (kind === "nan") {
            for (let t = 0; t < 20; t++) d[rng.int(d.length)] = NaN;
          }
          const qMag = kind === "huge prices" ? 1e200 : mag;
          const q = Float64Array.from(
            { length: E },
            () =>
              kind === "ties" ? 0 : (rng.uniform() - 0.3) * qMag *
                (kind === "near" ? 0.01 : 0.5),
          );
          const slots = new Int32Array(N * k);
          for (let i = 0; i < N; i++) {
            const open = [...Array(E).keys()].filter((j) =>
              d[i * E + j] !== -Infinity && !Number.isNaN(d[i * E + j])
            );
            // Near: the token's top k of s - q (ties to the lower expert).
            if (kind === "near") {
              open.sort((a, b) =>
                d[i * E + b] - q[b] - (d[i * E + a] - q[a]) || a - b
              );
            }
            for (let r = 0; r < k; r++) {
              slots[i * k + r] = kind === "near"
                ? open[k - 1 - r]
                : open.splice(rng.int(open.length), 1)[0];
            }
          }
          if (kind === "masked held") {
            for (const i of [7, 23]) {
              d[i * E + slots[i * k + 1]] = -Infinity;
            }
          }
          return certificateRowsOp.validate({
            scores: m,
            k,
            slots,
            expertPrices: q,
          });
        },
      });
    }
    return out;
  },
  compare(
    got: CertificateRows,
    want: CertificateRows,
    _run,
    _backend,
    what,
  ) {
    assert.equal(got.masked, want.masked, `${what}: masked`);
    if (want.masked >= 0) return;
    assert.deepEqual(got.experts, want.experts, `${what}: experts`);
    assert.deepEqual(got.loads, want.loads, `${what}: loads`);
    assert.ok(Object.is(got.objective, want.objective), `${what}: objective`);
    for (const name of ["tokenPrices", "terms"] as const) {
      for (let i = 0; i < want[name].length; i++) {
        assert.ok(
          Object.is(got[name][i], want[name][i]),
          `${what}: ${name}[${i}]: ${got[name][i]} against ${want[name][i]}`,
        );
      }
    }
  },
} satisfies Conformance<
  ReturnType<typeof certificateRowsOp.validate>,
  CertificateRows
>;

/** The conformance of every op, by op name. */
// deno-lint-ignore no-explicit-any
export const CONFORMANCE: Record<string, Conformance<any, any>> = {
  route: ROUTE,
  lossFreeUpdate: LOSS_FREE,
  bipRound: BIP,
  quantileStep: QUANTILE,
  sinkhorn: SINKHORN,
  expertChoice: EXPERT_CHOICE,
  capacityDrop: CAPACITY,
  batchMetrics: METRICS,
  rowSelect: ROW_SELECT,
  rowReselect: ROW_RESELECT,
  scoreScan: SCORE_SCAN,
  certificateRows: CERTIFICATE_ROWS,
  // The training ops (matmul, attention, ...): _train_kernel_cases.ts.
  ...TRAIN_CONFORMANCE,
};
