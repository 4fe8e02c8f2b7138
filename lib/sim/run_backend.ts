// The simulator on a chosen backend. On WebGPU every method but the exact
// oracle runs as a device balancer (lib/route/device_balancer.ts): its
// biases or prices stay in GPU buffers from step to step, each batch's
// scores go up once for all methods, and one readback per step brings the
// loads, the biases that routed each batch and the per-batch metrics into
// the same tables as a CPU run. Methods the kernels do not take (the exact
// oracle; k above 32; more than 4096 experts) run on the CPU beside them.
import type { Gpu } from "../../kernels/device.ts";
import { uniformSet } from "../../kernels/program.ts";
import type { Balancer } from "../route/balancer.ts";
import { createBalancer } from "../route/registry.ts";
import { createRouting, routeInto } from "../route/route.ts";
import { type Backend, resolveBackend } from "../route/route_backend.ts";
import type { HostBackend } from "../ops/host.ts";
import { wasmUnavailableReason } from "../wasm/runtime.ts";
import {
  createDeviceBalancer,
  type DeviceBalancer,
  deviceRefuses,
} from "../route/device_balancer.ts";
import {
  checkBadWord,
  type DeviceBatch,
  readRecord,
  recordBytes,
  releaseBatch,
  uploadBatch,
} from "../route/device_batch.ts";
import { BATCH_METRICS, batchMetricsMany } from "../metrics/batch_metrics.ts";
import { requireKernel } from "../ops/registry.ts";
import { batchMetricsOp } from "../ops/batch_metrics.ts";
import type { Routing } from "../types.ts";
import { exactOptimum, gapPlan } from "./eval_window.ts";
import { type PreparedRun, prepareRun } from "./prepare_run.ts";
import {
  finishSimulation,
  type RunOptions,
  runSimulation,
  type SimResult,
} from "./run.ts";
import {
  balancerContext,
  gapOptimum,
  type LayerRun,
  startPrices,
} from "./_simulate.ts";
import { allocateTables } from "./tables.ts";
import { LOOP_STAGE, LOOP_STAGES, processCpuMs } from "./profile.ts";

/**
 * Where a simulation runs: `"wasm"` (the CPU, with the WebAssembly SIMD
 * kernels where the engine runs them), `"cpu"` (the CPU, TypeScript only:
 * the reference; the same numbers as `"wasm"`), `"webgpu"`, or `"auto"`
 * (WebGPU where an adapter exists, else `"wasm"`).
 */
export type SimBackend = Backend | HostBackend;

/** Every {@linkcode SimBackend}, the default first. */
export const SIM_BACKENDS: readonly SimBackend[] = [
  "wasm",
  "cpu",
  "webgpu",
  "auto",
];

/** Options of {@linkcode runSimulationOn}. */
export interface BackendRunOptions extends RunOptions {
  /**
   * Default `"wasm"`: the synchronous {@linkcode runSimulation} with the
   * WebAssembly SIMD kernels; `"cpu"`: the same, TypeScript only.
   */
  backend?: Backend | HostBackend;
}

/**
 * Runs a simulation on the chosen backend. `"wasm"` (the default) and
 * `"cpu"` are {@linkcode runSimulation} with the WebAssembly SIMD kernels
 * or TypeScript alone: the same numbers, bit for bit. With WebGPU (`"webgpu"`, or
 * `"auto"` where an adapter exists) every method but the exact oracle runs
 * on the device: greedy, Loss-Free, BIP, Quantile, Sinkhorn, Expert Choice
 * and capacity keep their state in float32 GPU buffers and route and
 * update with the WebGPU kernels; the host reads back the loads, the bias
 * that routed each batch and the per-batch metrics once per step.
 * `exact`, and settings the kernels refuse (`k > 32`, more than 4096
 * experts, more than 64 groups), run on the CPU in the same run.
 *
 * The device's figures match the CPU run's within float32 rounding: the
 * same selection given the same biases, biases and prices within a few
 * float32 roundings per step. Where a method's selection depends on exact
 * ties of its prices (BIP's boundary tokens sit exactly at their price),
 * a token may go the other way. `summary.methods[].backend` says where
 * each method ran and `state` its precision; `result.backend` names the
 * adapter and the split. The wall times of device methods are their GPU
 * pass times (timestamp queries, where the adapter has them) plus the
 * host time that records their work.
 *
 * @param config A partial configuration (see `resolveSimConfig`), or a
 * `PreparedRun` (see `prepareRun`).
 * @param options {@linkcode RunOptions} and `backend`.
 * @returns The {@linkcode SimResult}.
 * @throws {TypeError | RangeError} If the configuration or backend is
 * invalid, or a score is NaN or `+Infinity`.
 * @throws {Error} If `"webgpu"` is asked for and there is no adapter.
 *
 * @example
 * ```ts
 * import { runSimulationOn } from "@moelab/balance";
 * import assert from "node:assert/strict";
 *
 * const r = await runSimulationOn({ steps: 4, layers: 1, tokens: 256, experts: 8, topK: 2 }, { backend: "auto" });
 * assert.ok(r.backend.startsWith("cpu") || r.backend.startsWith("webgpu"));
 * assert.equal(r.methods[0].backend, r.backend.startsWith("cpu") ? "cpu" : "webgpu");
 * ```
 */
export async function runSimulationOn(
  config: unknown,
  options: BackendRunOptions = {},
): Promise<SimResult> {
  const { backend = "wasm", workload: given, ...rest } = options;
  const run = prepareRun(config, { workload: given });
  if (backend === "cpu" || backend === "wasm") {
    const r = runSimulation(run, { ...rest, host: backend });
    return { ...r, backend: hostLabel(backend) };
  }
  const chosen = await resolveBackend(backend);
  if (!chosen.gpu) {
    const r = runSimulation(run, rest);
    const why = chosen.info.reason;
    return { ...r, backend: why ? `cpu (no WebGPU: ${why})` : "cpu" };
  }
  const { result, onDevice } = await simulateOnDevice(
    run,
    chosen.gpu,
    rest,
  );
  const where = (dev: boolean) =>
    run.specs.filter((_, m) => onDevice[m] === dev).map((s) => s.label)
      .join(", ") || "none";
  result.methods.forEach((s, m) => {
    s.backend = onDevice[m] ? "webgpu" : "cpu";
    s.state = onDevice[m] ? "float32" : "float64";
  });
  result.backend = `${chosen.info.description}; GPU: ${where(true)}; CPU: ${
    where(false)
  }; GPU state in float32`;
  return result;
}

/**
 * `result.backend` of a run on the CPU: `"cpu"`, `"wasm"`, or why the
 * WebAssembly kernels gave way to TypeScript.
 */
function hostLabel(host: HostBackend): string {
  if (host === "cpu") return "cpu";
  const why = wasmUnavailableReason();
  return why ? `cpu (no WebAssembly SIMD: ${why})` : "wasm";
}

/** A method of the run: on the device, or a CPU balancer. */
type Runner =
  | { device: DeviceBalancer; cpu?: undefined }
  | { device?: undefined; cpu: Balancer };

/** Runs every step with the device methods on `gpu`; the others on the CPU. */
async function simulateOnDevice(
  run: PreparedRun,
  gpu: Gpu,
  options: RunOptions,
): Promise<{ result: SimResult; onDevice: boolean[] }> {
  const { config: cfg, specs, workload } = run;
  const { steps, layers, tokens, experts: E, topK: k } = cfg;
  const ctx = balancerContext(cfg, options.host);
  const M = specs.length;
  const Q = BATCH_METRICS.length;
  const runners: Runner[] = specs.map((s, m) => {
    const given = options.balancers?.[m];
    if (given) return { cpu: given };
    return deviceRefuses(s, ctx) === undefined
      ? { device: createDeviceBalancer(s, ctx, gpu) }
      : { cpu: createBalancer(s, ctx) };
  });
  const onDevice = runners.map((r) => r.device !== undefined);
  const causal = runners.map((r) => (r.device ?? r.cpu!).causal);
  const deviceIndex = specs.map((_, m) => m).filter((m) => onDevice[m]);
  const cpuIndex = specs.map((_, m) => m).filter((m) => !onDevice[m]);
  // The retention reference: a device greedy method records it first for
  // the device methods; without one, a private device greedy does.
  const greedyDevice = deviceIndex.find((m) => specs[m].name === "greedy");
  const reference = greedyDevice === undefined && deviceIndex.length > 0
    ? createDeviceBalancer("greedy", ctx, gpu)
    : undefined;
  const order = greedyDevice === undefined
    ? deviceIndex
    : [greedyDevice, ...deviceIndex.filter((m) => m !== greedyDevice)];
  const greedyCpu = cpuIndex.find((m) => specs[m].name === "greedy");

  const tables = allocateTables(steps, layers, M, E);
  const wallMs = new Float64Array(M), routeMs = new Float64Array(M);
  const stageMs = new Float64Array(LOOP_STAGES.length);
  const { scores: SCORES, reference: REFERENCE, metrics: METRICS } = LOOP_STAGE;
  const { record: RECORD, gap: GAP, device: DEVICE } = LOOP_STAGE;
  const loopStart = performance.now(), cpu0 = processCpuMs();
  const cpuReference = createRouting(tokens, k, E);
  // The batchMetrics op's CPU kernel, whose code batchMetricsMany runs for
  // every CPU method at once: noted once per method and batch.
  const metricsKernel = requireKernel(batchMetricsOp, "cpu");
  const { exactIndex, steps: gapStepList, at: gapAt } = gapPlan(cfg, specs);
  const gaps = new Float64Array(steps * layers * M).fill(NaN);
  const sums = new Float64Array(M);

  // One report per step: per layer, the batch's bad-score word (padded to
  // 16 bytes) and one record per device method.
  const Md = order.length;
  const layerBytes = 16 + Md * recordBytes(E);
  const reportBytes = layers * layerBytes;

  /** Writes one (step, layer, method) row group of the tables. */
  const write = (
    step: number,
    layer: number,
    m: number,
    loads: ArrayLike<number>,
    bias: ArrayLike<number>,
    metrics: ArrayLike<number>,
  ) => {
    const t = performance.now();
    const cell = step * layers + layer;
    tables.loads.load.set(loads, (cell * M + m) * E);
    tables.biases.bias.set(bias, (cell * M + m) * E);
    tables.metrics.value.set(metrics, (cell * M + m) * Q);
    stageMs[RECORD] += performance.now() - t;
  };

  try {
    for (let step = 0; step < steps; step++) {
      const params = uniformSet(gpu, "sim step");
      const report = gpu.pool.acquire(
        reportBytes,
        GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
        "sim step report",
      );
      const encoder = gpu.device.createCommandEncoder({ label: "sim step" });
      const batches: DeviceBatch[] = [];
      const cpuSums: Float64Array[] = [];
      for (let layer = 0; layer < layers; layer++) {
        let t = performance.now();
        const scores = workload.scores(step, layer);
        stageMs[SCORES] += performance.now() - t;
        // Device methods: recorded now, figures read after the step.
        if (Md > 0) {
          const batch = uploadBatch(gpu, scores);
          batches.push(batch);
          reference?.record(layer, batch, encoder, params.make);
          const at = layer * layerBytes;
          order.forEach((m, d) => {
            const t0 = performance.now();
            runners[m].device!.record(layer, batch, encoder, params.make, {
              buffer: report,
              offset: at + 16 + d * recordBytes(E),
            });
            const ms = performance.now() - t0;
            wallMs[m] += ms;
            routeMs[m] += ms;
          });
          encoder.copyBufferToBuffer(batch.bad, 0, report, at, 4);
        }
        // CPU methods: as runSimulation runs them.
        const layerSums = new Float64Array(M);
        cpuSums.push(layerSums);
        if (cpuIndex.length > 0 && greedyCpu === undefined) {
          t = performance.now();
          routeInto(scores, k, cpuReference, ctx);
          stageMs[REFERENCE] += performance.now() - t;
        }
        const order2 = greedyCpu === undefined
          ? cpuIndex
          : [greedyCpu, ...cpuIndex.filter((m) => m !== greedyCpu)];
        const cpuRoutings: Routing[] = [], cpuBiases: Float64Array[] = [];
        for (const m of order2) {
          const b = runners[m].cpu!;
          const t0 = performance.now();
          const routing = b.route(layer, scores);
          const t1 = performance.now();
          routeMs[m] += t1 - t0;
          // Kept as it is until the balancer's next route: the metrics are
          // taken after the last method's.
          cpuRoutings.push(routing);
          cpuBiases.push(b.biases(layer));
          const t2 = performance.now();
          b.update(layer, scores, routing);
          wallMs[m] += t1 - t0 + (performance.now() - t2);
        }
        if (order2.length > 0) {
          // Every CPU method's metrics and sum in one pass over the scores;
          // the reference is greedy (first in order2) or the private one.
          if (greedyCpu === undefined) cpuRoutings.push(cpuReference);
          t = performance.now();
          const { values, sums } = batchMetricsMany(scores, cpuRoutings, {
            topK: k,
            referenceIndex: greedyCpu === undefined ? order2.length : 0,
          });
          stageMs[METRICS] += performance.now() - t;
          order2.forEach((m, r) => {
            write(
              step,
              layer,
              m,
              cpuRoutings[r].loads,
              cpuBiases[r],
              values[r],
            );
            layerSums[m] = sums[r];
            metricsKernel.note();
          });
        }
      }
      if (Md > 0) {
        const t = performance.now();
        gpu.device.queue.submit([encoder.finish()]);
        await report.mapAsync(GPUMapMode.READ, 0, reportBytes);
        const words = report.getMappedRange(0, reportBytes).slice(0);
        report.unmap();
        stageMs[DEVICE] += performance.now() - t;
        for (let layer = 0; layer < layers; layer++) {
          const at = layer * layerBytes;
          const bad = new Uint32Array(words, at, 1)[0];
          // The workload reuses its score buffer: draw the batch again.
          if (bad !== 0) checkBadWord(bad, workload.scores(step, layer));
          order.forEach((m, d) => {
            const f = readRecord(
              words,
              at + 16 + d * recordBytes(E),
              E,
              runners[m].device!.biasKind,
            );
            write(step, layer, m, f.loads, f.bias, f.metrics);
            cpuSums[layer][m] = f.scoreSum;
          });
        }
        for (const m of order) {
          const ms = await runners[m].device!.timer?.readMs();
          if (ms !== undefined && ms === ms) {
            wallMs[m] += ms;
            routeMs[m] += ms;
          }
        }
      }
      gpu.pool.release(report, ...params.buffers);
      if (gapAt[step]) {
        const t = performance.now();
        for (let layer = 0; layer < layers; layer++) {
          sums.set(cpuSums[layer]);
          const optimum = exactIndex >= 0
            ? exactOptimum(
              runners[exactIndex].cpu,
              layer,
              sums[exactIndex],
            )
            : gapOptimum(
              workload.scores(step, layer),
              cfg,
              startPrices(
                causal,
                tables.biases.bias,
                (step * layers + layer) * M * E,
                E,
              ),
            );
          const row = (step * layers + layer) * M;
          for (let m = 0; m < M; m++) {
            gaps[row + m] = optimum === 0 ? 0 : 1 - sums[m] / optimum;
          }
        }
        stageMs[GAP] += performance.now() - t;
      }
      for (const b of batches) releaseBatch(gpu, b);
      options.onProgress?.(step + 1, steps);
    }
  } finally {
    for (const r of runners) r.device?.release();
    reference?.release();
  }
  const layerRun: LayerRun = {
    layers: Array.from({ length: layers }, (_, l) => l),
    tables,
    wallMs,
    routeMs,
    stageMs,
    gaps,
    optimumSteps: gapStepList,
  };
  return {
    result: finishSimulation(run, causal, layerRun, {
      threads: 1,
      loopMs: performance.now() - loopStart,
      loopCpuMs: processCpuMs() - cpu0,
    }),
    onDevice,
  };
}
