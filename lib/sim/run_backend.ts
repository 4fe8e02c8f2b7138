import { lossFreeUpdateOnGpu } from "../../kernels/bias_update.ts";
import type { Gpu } from "../../kernels/device.ts";
import { readBack, storage } from "../../kernels/program.ts";
import { routeOnGpu } from "../../kernels/route_topk.ts";
import type { Routing, ScoreMatrix } from "../types.ts";
import type { Balancer } from "../route/balancer.ts";
import type { MethodSpec } from "../route/registry.ts";
import { createRouting } from "../route/route.ts";
import {
  type Backend,
  gpuCanRoute,
  resolveBackend,
} from "../route/route_backend.ts";
import type { Workload } from "../workload/workload.ts";
import type { SimConfig } from "./config.ts";
import { prepareRun } from "./prepare_run.ts";
import { type RunOptions, runSimulation, type SimResult } from "./run.ts";

/** Options of {@linkcode runSimulationOn}. */
export interface BackendRunOptions extends RunOptions {
  /** Default `"cpu"`: the synchronous {@linkcode runSimulation}. */
  backend?: Backend;
}

/** How a method runs on the GPU, when it can. */
type GpuMethod = { rate: number; rule: "sign" | "proportional" } | null;

/**
 * Runs a simulation on the chosen backend. `"cpu"` is
 * {@linkcode runSimulation}, unchanged. With WebGPU (`"webgpu"`, or
 * `"auto"` where an adapter exists) the methods whose routing and update
 * the GPU kernels implement (`greedy`; `loss-free` with the additive sign
 * or proportional rule, without `center`) are first run on the GPU, step by
 * step, biases kept on the device in float32; their selections are
 * recorded (2 bytes per slot: `steps x layers x tokens x topK` per method)
 * and replayed, with the other methods on the CPU, through the same
 * metrics as the CPU run. The wall times of the summary then cover the
 * replay, not the GPU work. `result.backend` names the adapter, whether it
 * is a software fallback, and which methods ran where.
 *
 * @param config A partial configuration (see `resolveSimConfig`), or a
 * `PreparedRun` (see `prepareRun`).
 * @param options {@linkcode RunOptions} and `backend`.
 * @returns The {@linkcode SimResult}.
 * @throws {TypeError | RangeError} If the configuration or backend is invalid.
 * @throws {Error} If `"webgpu"` is asked for and there is no adapter.
 *
 * @example
 * ```ts
 * import { runSimulationOn } from "@moelab/balance";
 * import assert from "node:assert/strict";
 *
 * const r = await runSimulationOn({ steps: 4, layers: 1, tokens: 256, experts: 8, topK: 2 }, { backend: "auto" });
 * assert.ok(r.backend.startsWith("cpu") || r.backend.startsWith("webgpu"));
 * ```
 */
export async function runSimulationOn(
  config: unknown,
  options: BackendRunOptions = {},
): Promise<SimResult> {
  const { backend = "cpu", workload: given, ...rest } = options;
  const run = prepareRun(config, { workload: given });
  const chosen = await resolveBackend(backend);
  if (!chosen.gpu) {
    const r = runSimulation(run, rest);
    const why = chosen.info.reason;
    return { ...r, backend: why ? `cpu (no WebGPU: ${why})` : "cpu" };
  }
  const { config: cfg, specs, workload } = run;
  const unsupported = gpuCanRoute(
    cfg.experts,
    cfg.topK,
    cfg.groups,
    cfg.topGroups,
  );
  const plan = specs.map((s) => unsupported ? undefined : gpuMethod(s));
  const onGpu = specs.filter((_, m) => plan[m] !== undefined).map((s) =>
    s.label
  );
  const onCpu = specs.filter((_, m) => plan[m] === undefined).map((s) =>
    s.label
  );
  const balancers = await gpuPhase(chosen.gpu, cfg, workload, plan);
  const r = runSimulation(run, { ...rest, balancers });
  const where = `GPU: ${onGpu.join(", ") || "none"}; CPU: ${
    onCpu.join(", ") || "none"
  }${unsupported ? ` (${unsupported})` : ""}`;
  return { ...r, backend: `${chosen.info.description}; ${where}` };
}

/** The GPU form of a method spec, or undefined when it runs on the CPU. */
function gpuMethod(s: MethodSpec): GpuMethod | undefined {
  if (s.name === "greedy") return null;
  if (s.name !== "loss-free") return undefined;
  const o = s.options;
  if (o.multiplicative === true || o.center === true) return undefined;
  const rule = (o.rule ?? "sign") as "sign" | "proportional";
  return { rate: (o.rate as number | undefined) ?? 1e-3, rule };
}

/** Runs the GPU methods over the whole workload; returns replay balancers. */
async function gpuPhase(
  gpu: Gpu,
  cfg: SimConfig,
  workload: Workload,
  plan: (GpuMethod | undefined)[],
): Promise<(Balancer | undefined)[]> {
  const { steps, layers, tokens: N, experts: E, topK: k } = cfg;
  const slots = N * k;
  const picks = plan.map((p) =>
    p === undefined ? undefined : new Uint16Array(steps * layers * slots)
  );
  const used = plan.map((p) =>
    p ? new Float32Array(steps * layers * E) : undefined
  );
  const bias = plan.map((p) =>
    p
      ? Array.from(
        { length: layers },
        () => storage(gpu, "sim bias", 4 * E, new Float32Array(E)),
      )
      : undefined
  );
  for (let step = 0; step < steps; step++) {
    for (let layer = 0; layer < layers; layer++) {
      const scores = workload.scores(step, layer);
      for (let m = 0; m < plan.length; m++) {
        const p = plan[m];
        if (p === undefined) continue;
        const b = bias[m]?.[layer];
        const at = step * layers + layer;
        if (p && b) {
          used[m]!.set(new Float32Array(await readBack(gpu, b, 4 * E)), at * E);
        }
        const r = await routeOnGpu(gpu, scores, k, {
          bias: b,
          normalize: cfg.normalize,
        });
        picks[m]!.set(r.experts, at * slots);
        if (p && b) lossFreeUpdateOnGpu(gpu, b, r.loads, p.rate, p.rule);
      }
    }
  }
  for (const list of bias) if (list) gpu.pool.release(...list);
  return plan.map((p, m) =>
    p === undefined
      ? undefined
      : replay(cfg, picks[m]!, used[m], p === null ? "greedy" : "loss-free")
  );
}

/** A balancer that hands back recorded selections, step after step. */
function replay(
  cfg: SimConfig,
  picks: Uint16Array,
  used: Float32Array | undefined,
  name: string,
): Balancer {
  const { layers, tokens: N, experts: E, topK: k } = cfg;
  const step = new Int32Array(layers);
  let out: Routing = createRouting(N, k, E);
  return {
    name,
    causal: true,
    route(layer: number, scores: ScoreMatrix): Routing {
      if (out.experts.length !== scores.tokens * k) {
        out = createRouting(scores.tokens, k, E);
      }
      const from = (step[layer] * layers + layer) * N * k;
      out.loads.fill(0);
      for (let i = 0; i < N; i++) {
        let sum = 0;
        for (let r = 0; r < k; r++) {
          const j = picks[from + i * k + r];
          const x = scores.data[i * E + j];
          out.experts[i * k + r] = j;
          out.weights[i * k + r] = x > -Infinity ? x : 0;
          sum += out.weights[i * k + r];
          out.loads[j]++;
        }
        if (cfg.normalize && sum > 0) {
          for (let r = 0; r < k; r++) out.weights[i * k + r] /= sum;
        }
      }
      return out;
    },
    update(layer: number): void {
      step[layer]++;
    },
    biases(layer: number): Float64Array {
      const at = (step[layer] * layers + layer) * E;
      return used
        ? Float64Array.from(used.subarray(at, at + E))
        : new Float64Array(E);
    },
  };
}
