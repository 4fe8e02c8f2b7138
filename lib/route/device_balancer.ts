// Balancers on the device: the state of every balancing method but the
// exact oracle (biases, prices, column scales) lives in GPU buffers, one
// per layer, and each batch's route and update run as the registered
// WebGPU kernels of the ops (kernels/), recorded over the batch's scores,
// which go up once and serve every method. The host reads back only what a
// simulator records: loads, the bias that routed the batch, the per-batch
// metrics. Everything is float32 on the device, where the CPU balancers
// keep float64: the same selections given the same biases, values within
// float32 rounding (the kernels' docs state each bound).
import type { Gpu } from "../../kernels/device.ts";
import { GpuTimer, readBack, storage } from "../../kernels/program.ts";
import type { UniformMaker } from "../../kernels/resident_scores.ts";
import { uniformSet } from "../../kernels/program.ts";
import {
  type BiasMode,
  gpuRouteRefuses,
  recordRoute,
  type RouteSpec,
  routeTopKKernel,
} from "../../kernels/route_topk.ts";
import {
  lossFreeUpdateKernel,
  recordLossFreeUpdate,
} from "../../kernels/bias_update.ts";
import {
  bipRoundKernel,
  type DualBuffers,
  dualScratchOnGpu,
  quantileStepKernel,
  recordDualRounds,
  recordQuantileStep,
} from "../../kernels/dual_round.ts";
import {
  recordSinkhorn,
  releaseSinkhornScratch,
  sinkhornKernel,
  type SinkhornScratch,
  sinkhornScratchOnGpu,
} from "../../kernels/sinkhorn_scaling.ts";
import {
  expertChoiceKernel,
  expertChoiceRefuses,
  expertChoiceScratchOnGpu,
  recordExpertChoice,
} from "../../kernels/expert_choice.ts";
import {
  capacityDropKernel,
  capacityScratchOnGpu,
  recordCapacityDrop,
} from "../../kernels/capacity_drop.ts";
import {
  batchMetricsKernel,
  METRIC_WORDS,
  metricPartialBytes,
  recordBatchMetrics,
} from "../../kernels/batch_metrics.ts";
import type { Routing, ScoreMatrix } from "../types.ts";
import { checkSinkhornOptions } from "../ops/sinkhorn.ts";
import { capacityOf } from "../select/capacity.ts";
import { createRouting } from "../select/routing.ts";
import type { BalancerContext } from "./balancer.ts";
import { checkContext } from "./_context.ts";
import {
  type BiasKind,
  checkBadWord,
  type DeviceBatch,
  type DeviceStepFigures,
  readRecord,
  recordBytes,
  releaseBatch,
  type ReportSlot,
  uploadBatch,
} from "./device_batch.ts";
import { type BipOptions, bipSettings } from "./bip.ts";
import { type CapacityOptions, capacitySettings } from "./capacity.ts";
import {
  type ExpertChoiceOptions,
  expertChoiceSettings,
} from "./expert_choice.ts";
import { type LossFreeOptions, lossFreeSettings } from "./loss_free.ts";
import {
  BALANCERS,
  createBalancer,
  type MethodSpec,
  parseMethodSpec,
} from "./registry.ts";

/** A balancing method whose state and work live on the GPU. */
export interface DeviceBalancer {
  /** Method name, as the CPU balancer's. */
  readonly name: string;
  /** Whether a batch's routing depends only on earlier batches. */
  readonly causal: boolean;
  /** How the recorded bias reads from the state (`none`: zeros). */
  readonly biasKind: BiasKind;
  /** Times this balancer's passes (timestamp queries), where available. */
  readonly timer: GpuTimer | undefined;
  /**
   * Records the route of `batch` for `layer`, its metrics and the update
   * into `encoder`, and copies the figures into `slot` when given. A
   * greedy balancer records the batch's reference sum; any other needs it
   * recorded first (see {@linkcode DeviceBatch.reference}).
   */
  record(
    layer: number,
    batch: DeviceBatch,
    encoder: GPUCommandEncoder,
    uniform: UniformMaker,
    slot?: ReportSlot,
  ): void;
  /**
   * Routes and updates one batch on its own and reads back its figures
   * (score retention against greedy top-K on the same batch).
   */
  step(layer: number, scores: ScoreMatrix): Promise<DeviceStepFigures>;
  /** The last recorded routing, read back (for checks). */
  readRouting(): Promise<Routing>;
  /** A copy of the layer's current biases, read back. */
  biases(layer: number): Promise<Float64Array>;
  /** Gives every buffer back. */
  release(): void;
}

/**
 * Why a method cannot run on the device with this context, or
 * `undefined` when it can: the exact oracle stays on the CPU, and the
 * kernels bound `k`, the experts and the groups.
 */
export function deviceRefuses(
  spec: string | MethodSpec,
  context: BalancerContext,
): string | undefined {
  const m = typeof spec === "string" ? parseMethodSpec(spec) : spec;
  if (!BALANCERS[m.name]) return `no method ${m.name}`;
  if (m.name === "exact") return "the exact oracle runs on the CPU";
  const ctx = checkContext(context);
  if (m.name === "expert-choice") return expertChoiceRefuses(ctx.experts);
  if (m.name === "loss-free") {
    const o = m.options as LossFreeOptions;
    if (
      (o.microBatches ?? 1) !== 1 ||
      (o.schedule ?? "constant") !== "constant" ||
      (o.biasPrecision ?? "float64") !== "float64" ||
      (o.countPrecision ?? "float64") !== "float64" ||
      (o.countAdd ?? "batch") !== "batch"
    ) {
      return "micro-batches, rate schedules and emulated precisions of loss-free run on the CPU";
    }
  }
  return gpuRouteRefuses(ctx.experts, ctx.k, ctx.groups, ctx.topGroups);
}

/** Per-shape buffers of one balancer (reallocated when the batch size changes). */
interface Shape {
  tokens: number;
  slots: number;
  experts: GPUBuffer;
  weights: GPUBuffer;
  loads: GPUBuffer;
  metrics: GPUBuffer;
  partial: GPUBuffer;
  dual?: Omit<DualBuffers, "scores" | "q">;
  column?: ReturnType<typeof expertChoiceScratchOnGpu>;
  sinkhorn?: SinkhornScratch;
}

/**
 * Builds the device form of a balancing method: same options, same
 * rules, state (per layer) in float32 GPU buffers.
 *
 * @param spec A method spec (`"loss-free(rate=1e-2)"`), as `createBalancer` takes.
 * @param context Layers, experts, `k` and routing settings.
 * @param gpu The device (kernels/device.ts's `acquireGpu`).
 * @returns A {@linkcode DeviceBalancer}.
 * @throws {RangeError | TypeError} As `createBalancer` for a bad spec or
 * context; RangeError when the method cannot run on the device
 * ({@linkcode deviceRefuses}).
 */
export function createDeviceBalancer(
  spec: string | MethodSpec,
  context: BalancerContext,
  gpu: Gpu,
): DeviceBalancer {
  const m = typeof spec === "string" ? parseMethodSpec(spec) : spec;
  // The CPU balancer checks the options exactly as a CPU run would.
  const cpu = createBalancer(m, context);
  const refused = deviceRefuses(m, context);
  if (refused) {
    throw new RangeError(`${m.name} cannot run on the device: ${refused}`);
  }
  const ctx = checkContext(context);
  const { layers, experts: E, k } = ctx;
  const o = m.options;
  const routeSpec = (bias: BiasMode): RouteSpec => ({
    experts: E,
    k,
    bias,
    normalize: ctx.normalize,
    groups: ctx.groups,
    topGroups: ctx.topGroups,
  });
  // The options as the CPU balancers read them (createBalancer checked them).
  const lossFree = lossFreeSettings(o as LossFreeOptions);
  const bipOptions = bipSettings(o as BipOptions);
  const bip = { ...bipOptions, clipP: bipOptions.clipTokenPrices };
  const sinkhorn = checkSinkhornOptions(o);
  const ec = expertChoiceSettings(o as ExpertChoiceOptions);
  const cap = capacitySettings(o as CapacityOptions);

  const stateful = m.name === "loss-free" || m.name === "bip" ||
    m.name === "quantile" || m.name === "sinkhorn";
  const start = m.name === "loss-free" && lossFree.multiplicative ? 1 : 0;
  const state: GPUBuffer[] = stateful
    ? Array.from(
      { length: layers },
      (_, l) =>
        storage(
          gpu,
          `${m.name} state ${l}`,
          4 * E,
          new Float32Array(E).fill(start),
        ),
    )
    : [];
  const biasKind: BiasKind = !stateful
    ? "none"
    : m.name === "bip" || m.name === "quantile"
    ? "negated"
    : "bias";
  const slotsOf = m.name === "expert-choice" ? E : k;
  const timer = gpu.timestamps ? new GpuTimer(gpu, 2048) : undefined;
  let shape: Shape | undefined;

  function shapeFor(N: number): Shape {
    if (shape && shape.tokens === N) return shape;
    if (shape) releaseShape(shape);
    const S = slotsOf;
    const s: Shape = {
      tokens: N,
      slots: S,
      experts: storage(gpu, `${m.name} experts`, 4 * Math.max(1, N * S)),
      weights: storage(gpu, `${m.name} weights`, 4 * Math.max(1, N * S)),
      loads: storage(gpu, `${m.name} loads`, 4 * E),
      metrics: storage(gpu, `${m.name} metrics`, 4 * METRIC_WORDS),
      partial: storage(gpu, `${m.name} metric partials`, metricPartialBytes(N)),
    };
    if (m.name === "bip" || m.name === "quantile") {
      s.dual = dualScratchOnGpu(gpu, N, E);
    }
    if (m.name === "expert-choice") {
      s.column = expertChoiceScratchOnGpu(gpu, N, E);
    }
    if (m.name === "capacity") s.column = capacityScratchOnGpu(gpu, N, E);
    shape = s;
    return s;
  }

  function releaseShape(s: Shape): void {
    gpu.pool.release(s.experts, s.weights, s.loads, s.metrics, s.partial);
    if (s.dual) gpu.pool.release(...Object.values(s.dual));
    if (s.column) gpu.pool.release(...Object.values(s.column));
    if (s.sinkhorn) releaseSinkhornScratch(gpu, s.sinkhorn);
  }

  function route(
    enc: GPUCommandEncoder,
    s: Shape,
    batch: DeviceBatch,
    bias: BiasMode,
    biasBuffer: GPUBuffer | undefined,
    uniform: UniformMaker,
  ): void {
    routeTopKKernel.note();
    recordRoute(
      gpu,
      enc,
      routeSpec(bias),
      {
        scores: batch.resident,
        bias: biasBuffer,
        experts: s.experts,
        weights: s.weights,
        loads: s.loads,
        bad: batch.bad,
      },
      1,
      uniform,
      timer,
    );
  }

  function record(
    layer: number,
    batch: DeviceBatch,
    enc: GPUCommandEncoder,
    uniform: UniformMaker,
    slot?: ReportSlot,
  ): void {
    const { resident } = batch;
    const N = resident.tokens;
    const s = shapeFor(N);
    const q = state[layer];
    // Route, and (for the methods that set their bias from the batch)
    // find the bias first.
    switch (m.name) {
      case "greedy":
        route(enc, s, batch, "none", undefined, uniform);
        break;
      case "loss-free":
        route(
          enc,
          s,
          batch,
          lossFree.multiplicative ? "multiply" : "add",
          q,
          uniform,
        );
        break;
      case "bip": {
        bipRoundKernel.note();
        const b = { scores: resident, q, ...s.dual! };
        recordDualRounds(
          gpu,
          enc,
          {
            k,
            capacity: capacityOf(N, k, E, bip.capacityFactor),
            clipP: bip.clipP,
            clipQ: true,
          },
          b,
          bip.T,
          uniform,
          timer,
        );
        route(enc, s, batch, "subtract", q, uniform);
        break;
      }
      case "quantile":
        route(enc, s, batch, "subtract", q, uniform);
        break;
      case "sinkhorn":
        sinkhornKernel.note();
        s.sinkhorn ??= sinkhornScratchOnGpu(gpu, resident);
        recordSinkhorn(
          gpu,
          enc,
          sinkhorn,
          resident,
          q,
          s.sinkhorn,
          uniform,
          timer,
        );
        route(enc, s, batch, "add", q, uniform);
        break;
      case "expert-choice":
        expertChoiceKernel.note();
        recordExpertChoice(
          gpu,
          enc,
          Math.min(N, capacityOf(N, k, E, ec.capacityFactor)),
          ctx.normalize,
          {
            scores: resident,
            experts: s.experts,
            weights: s.weights,
            loads: s.loads,
            ...s.column!,
          },
          uniform,
          timer,
        );
        break;
      case "capacity":
        route(enc, s, batch, "none", undefined, uniform);
        capacityDropKernel.note();
        recordCapacityDrop(
          gpu,
          enc,
          k,
          Math.max(cap.minCapacity, capacityOf(N, k, E, cap.capacityFactor)),
          cap.drop,
          {
            scores: resident,
            experts: s.experts,
            weights: s.weights,
            loads: s.loads,
            ...s.column!,
          },
          uniform,
          timer,
        );
        break;
    }
    // Metrics, against the batch's greedy reference (this one's own for greedy).
    const self = m.name === "greedy" && batch.reference === undefined;
    if (!self && batch.reference === undefined) {
      throw new Error(
        "a device balancer needs the batch's greedy reference recorded first",
      );
    }
    batchMetricsKernel.note();
    recordBatchMetrics(
      gpu,
      enc,
      s.slots,
      k,
      {
        scores: resident,
        experts: s.experts,
        loads: s.loads,
        reference: self ? undefined : batch.reference!.buffer,
        referenceWord: self ? undefined : batch.reference!.word,
        metrics: s.metrics,
        partial: s.partial,
      },
      uniform,
      timer,
    );
    if (self) batch.reference = { buffer: s.metrics, word: 0 };
    if (slot) {
      enc.copyBufferToBuffer(s.loads, 0, slot.buffer, slot.offset, 4 * E);
      if (stateful) {
        enc.copyBufferToBuffer(q, 0, slot.buffer, slot.offset + 4 * E, 4 * E);
      }
      enc.copyBufferToBuffer(
        s.metrics,
        0,
        slot.buffer,
        slot.offset + 8 * E,
        4 * METRIC_WORDS,
      );
    }
    // Updates after the batch (the causal methods').
    if (m.name === "loss-free") {
      lossFreeUpdateKernel.note();
      recordLossFreeUpdate(
        gpu,
        enc,
        q,
        s.loads,
        E,
        {
          rate: lossFree.rate,
          rule: lossFree.rule,
          center: lossFree.center && !lossFree.multiplicative,
        },
        uniform,
        timer,
      );
    } else if (m.name === "quantile") {
      quantileStepKernel.note();
      recordQuantileStep(
        gpu,
        enc,
        k,
        { scores: resident, q, ...s.dual! },
        uniform,
        timer,
      );
    }
  }

  // A private greedy reference for step(), built on first use.
  let reference: DeviceBalancer | undefined;

  const balancer: DeviceBalancer = {
    name: m.name,
    causal: cpu.causal,
    biasKind,
    timer,
    record,
    async step(layer: number, scores: ScoreMatrix): Promise<DeviceStepFigures> {
      const batch = uploadBatch(gpu, scores);
      const params = uniformSet(gpu, `${m.name} step`);
      const report = gpu.pool.acquire(
        recordBytes(E) + 16,
        GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
        `${m.name} report`,
      );
      const enc = gpu.device.createCommandEncoder({ label: `${m.name} step` });
      if (m.name !== "greedy") {
        reference ??= createDeviceBalancer("greedy", context, gpu);
        reference.record(layer, batch, enc, params.make);
      }
      record(layer, batch, enc, params.make, { buffer: report, offset: 0 });
      enc.copyBufferToBuffer(batch.bad, 0, report, recordBytes(E), 4);
      gpu.device.queue.submit([enc.finish()]);
      const bytes = recordBytes(E) + 4;
      await report.mapAsync(GPUMapMode.READ, 0, bytes);
      const words = report.getMappedRange(0, bytes).slice(0);
      report.unmap();
      gpu.pool.release(report, ...params.buffers);
      releaseBatch(gpu, batch);
      checkBadWord(new Uint32Array(words, recordBytes(E), 1)[0], scores);
      return readRecord(words, 0, E, biasKind);
    },
    async readRouting(): Promise<Routing> {
      if (!shape) throw new Error("nothing recorded yet");
      const { tokens: N, slots: S } = shape;
      const out = createRouting(N, S, E);
      const [e, w, l] = await Promise.all([
        readBack(gpu, shape.experts, 4 * N * S),
        readBack(gpu, shape.weights, 4 * N * S),
        readBack(gpu, shape.loads, 4 * E),
      ]);
      out.experts.set(new Int32Array(e));
      out.weights.set(new Float32Array(w));
      out.loads.set(new Int32Array(l));
      return out;
    },
    async biases(layer: number): Promise<Float64Array> {
      if (!stateful) return new Float64Array(E);
      const raw = new Float32Array(await readBack(gpu, state[layer], 4 * E));
      return Float64Array.from(raw, (v) => biasKind === "negated" ? -v : v);
    },
    release(): void {
      if (shape) releaseShape(shape);
      shape = undefined;
      gpu.pool.release(...state);
      state.length = 0;
      timer?.destroy();
      reference?.release();
    },
  };
  return balancer;
}
