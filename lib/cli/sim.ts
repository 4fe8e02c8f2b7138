import { readFileSync } from "node:fs";
import process from "node:process";
import { BALANCERS, createBalancer } from "../route/registry.ts";
import { prepareRun } from "../sim/prepare_run.ts";
import type { SimResult } from "../sim/run.ts";
import { runSimulationOn, SIM_BACKENDS } from "../sim/run_backend.ts";
import { runSimulationParallel } from "../sim/run_parallel.ts";
import { formatSummaryTable, simSummary } from "../sim/summary_table.ts";
import { SIM_OUTPUT_FILES, writeSimOutputs } from "../report/sim_outputs.ts";
import { checkOutDir } from "./_out.ts";
import { formatProfile } from "../sim/profile.ts";
import { checkChoice, withMessage } from "../validate.ts";
import { EP_DEFAULTS, EP_STRATEGIES } from "../sim/ep_config.ts";
import {
  asMethodsError,
  type FlagSpec,
  methodOptionNames,
  parseFlags,
  splitMethods,
  UsageError,
} from "./args.ts";

const FLAGS: FlagSpec = {
  preset: "string",
  experts: "integer",
  "top-k": "integer",
  tokens: "integer",
  layers: "integer",
  steps: "integer",
  methods: "string",
  seed: "integer",
  gate: "string",
  groups: "integer",
  "top-groups": "integer",
  drift: "number",
  scores: "string",
  out: "string",
  json: "boolean",
  quiet: "boolean",
  gpus: "integer",
  nodes: "integer",
  replicas: "integer",
  redundant: "integer",
  strategies: "string",
  hardware: "string",
  placement: "string",
  scheduler: "string",
  backend: "string",
  threads: "integer",
  profile: "boolean",
  help: "boolean",
};

/** The help text of `sim`. */
export const SIM_HELP =
  `moelab sim: simulate balancing methods side by side on the same scores

Usage: moelab sim [--preset FILE] [flags]

  --preset FILE     JSON preset (default: built-in defaults); flags override it
  --experts N       routed experts per layer
  --top-k K         experts per token
  --tokens N        tokens per batch
  --layers L        MoE layers
  --steps S         batches
  --methods LIST    comma-separated methods, options in parentheses, e.g.
                    greedy,loss-free(rate=1e-2,rule=proportional)
  --seed N          seed of the synthetic workload
  --gate G          sigmoid, softmax or sqrtsoftplus (moe_router_score_function)
  --groups G        routing groups, a divisor of --experts (default 1;
                    moe_router_num_groups)
  --top-groups L    groups a token keeps, its experts chosen within them
                    (default --groups, no limit; moe_router_group_topk); the
                    exact oracle is then bracketed, and the EP stage's
                    dispatch node-limited where a group sits on one node
  --drift X         speed of cluster-frequency drift (synthetic workload)
  --scores FILE     replay router logits from a float32 .npy file shaped
                    [steps, tokens, experts] or [steps, layers, tokens, experts];
                    its shape fixes the sizes (--steps, --layers, --tokens,
                    --experts and --drift are errors with it)
  --out DIR         where loads.parquet, metrics.parquet, biases.parquet,
                    gpu_loads.parquet, summary.json and report.html go (default
                    out/sim); the folder is replaced as a whole, so it must be
                    new, empty or an earlier run's
  --json            print summary.json instead of the table
  --quiet           no progress on stderr
  --gpus G          expert-parallel stage: GPUs (default 8)
  --nodes N         nodes the GPUs sit in, a divisor of the GPUs (default 1):
                    the step time splits the all-to-all into NVLink and
                    network bytes (the preset's ep.gpusPerNode)
  --replicas D      replicas per expert (default 2)
  --redundant R     redundant slots of EPLB and the asymmetric and hierarchical
                    placements: experts + R slots, a multiple of the GPUs
                    (default experts x (replicas - 1); DeepSeek-V3's
                    prefill: 32)
  --strategies LIST EP strategies compared with static EP, comma-separated:
                    eplb, symmetric-lp, asymmetric-lp, eplb-hierarchical,
                    hierarchical-lp (default eplb, symmetric-lp,
                    asymmetric-lp); static EP always comes first
  --hardware H      the step-time model's GPUs: h100 (default), h800 or h200
                    (docs/algorithms.md section 15)
  --placement P     symmetric placement: complete, ring, torus, bipartite, random
  --scheduler S     exact (MicroMoE LP) or equal (split evenly, no LP)
  --backend B       wasm (default: the CPU with WebAssembly SIMD kernels),
                    cpu (TypeScript only, the reference: the same numbers),
                    webgpu, or auto (WebGPU where an adapter exists, else
                    wasm): on WebGPU every method but exact runs on the GPU,
                    its state in float32
  --threads T       CPU backend: worker threads, each running a share of the
                    layers (default: one per core; 1: this thread only)
  --profile         print where the time went on stderr: seconds per method
                    (route, update) and per stage (scores, metrics, tables,
                    optimality gap, the wait for the GPU on webgpu, EP
                    stage, writing the outputs), and the process's CPU
                    seconds and peak memory
  --help            this text

Methods: ${
    Object.entries(BALANCERS).map(([n, e]) =>
      `\n  ${n.padEnd(16)}${e.description}`
    ).join("")
  }
`;

/** Runs `sim` with command-line arguments; returns the exit code. */
export function simCommand(args: string[]): number | Promise<number> {
  const flags = parseFlags(args, FLAGS);
  if (flags.help) {
    process.stdout.write(SIM_HELP);
    return 0;
  }
  const out = checkOutDir(
    "--out",
    typeof flags.out === "string" ? flags.out : "out/sim",
    SIM_OUTPUT_FILES,
  );
  let preset: Record<string, unknown> = {};
  if (typeof flags.preset === "string") {
    let text: string;
    try {
      text = readFileSync(flags.preset, "utf8");
    } catch (e) {
      throw new UsageError(
        `preset cannot be read: ${flags.preset} (${(e as Error).message})`,
      );
    }
    try {
      preset = JSON.parse(text);
    } catch (e) {
      throw new SyntaxError(
        `preset ${flags.preset} is not valid JSON: ${(e as Error).message}`,
      );
    }
    if (
      preset === null || typeof preset !== "object" || Array.isArray(preset)
    ) {
      throw new TypeError(`preset ${flags.preset} must hold a JSON object`);
    }
  }
  const overrides: Record<string, unknown> = {};
  const map: [string, string][] = [
    ["experts", "experts"],
    ["top-k", "topK"],
    ["tokens", "tokens"],
    ["layers", "layers"],
    ["steps", "steps"],
    ["seed", "seed"],
    ["gate", "gate"],
    ["groups", "groups"],
    ["top-groups", "topGroups"],
  ];
  for (const [flag, key] of map) {
    if (flags[flag] !== undefined) overrides[key] = flags[flag];
  }
  for (
    const key of [
      "experts",
      "top-k",
      "tokens",
      "layers",
      "steps",
      "groups",
      "top-groups",
      "gpus",
      "nodes",
    ]
  ) {
    const v = flags[key];
    if (v !== undefined && (v as number) < 1) {
      throw new RangeError(
        `--${key} must be a positive integer: current value is ${v}`,
      );
    }
  }
  if (typeof flags.methods === "string") {
    overrides.methods = splitMethods(flags.methods);
  }
  const workload = {
    ...((preset.workload as Record<string, unknown>) ?? { kind: "synthetic" }),
  };
  // A recording fixes the sizes (its shape) and has no synthetic drift: a
  // flag that would change them is an error, not silently ignored.
  const recording = typeof flags.scores === "string"
    ? "--scores"
    : workload.kind === "npy"
    ? `the preset's npy workload`
    : undefined;
  if (recording !== undefined) {
    for (const key of ["steps", "layers", "tokens", "experts", "drift"]) {
      if (flags[key] !== undefined) {
        throw new UsageError(
          `--${key} cannot be used with ${recording}: the recording fixes steps, layers, tokens and experts (its shape) and has no drift (current value ${
            flags[key]
          })`,
        );
      }
    }
  }
  if (typeof flags.scores === "string") {
    overrides.workload = { kind: "npy", path: flags.scores };
  } else if (flags.drift !== undefined) {
    overrides.workload = { ...workload, drift: flags.drift };
  }
  const ep: Record<string, unknown> = {};
  for (
    const key of [
      "gpus",
      "replicas",
      "redundant",
      "placement",
      "scheduler",
      "hardware",
    ]
  ) {
    if (flags[key] !== undefined) ep[key] = flags[key];
  }
  if (typeof flags.strategies === "string") {
    ep.strategies = parseStrategies(flags.strategies);
  }
  if (flags.nodes !== undefined) {
    // The GPUs the nodes share: the flag's, else the preset's, else the
    // default; a value that is no positive integer is left to the
    // configuration's own check (it names it).
    const nodes = flags.nodes as number;
    const gpus = ep.gpus ??
      (preset.ep as Record<string, unknown> | null | undefined)?.gpus ??
      EP_DEFAULTS.gpus;
    if (typeof gpus === "number" && Number.isInteger(gpus) && gpus >= 1) {
      if (gpus % nodes !== 0) {
        throw new RangeError(
          `--nodes must divide the number of GPUs (${gpus}): current value is ${nodes}`,
        );
      }
      ep.gpusPerNode = gpus / nodes;
    }
  }
  if (Object.keys(ep).length > 0) {
    overrides.ep = { ...(preset.ep as Record<string, unknown> ?? {}), ...ep };
  }
  const backend = checkChoice(
    "--backend",
    flags.backend ?? "wasm",
    SIM_BACKENDS,
  );
  if (flags.threads !== undefined && (flags.threads as number) < 1) {
    throw new RangeError(
      `--threads must be a positive integer: current value is ${flags.threads}`,
    );
  }
  // Resolve, check and load once, before any work: bad input fails fast,
  // and every runner below takes the prepared run as it is.
  let run;
  try {
    run = prepareRun({ ...preset, ...overrides });
    // Each method's options are checked when it is built: build one of
    // each now, so that a bad option fails here and names --methods.
    const c = run.config;
    for (const spec of run.specs) {
      createBalancer(spec, {
        layers: 1,
        experts: c.experts,
        k: c.topK,
        normalize: c.normalize,
        groups: c.groups,
        topGroups: c.topGroups,
      });
    }
  } catch (e) {
    const named = withFlagName(e, flags);
    if (named !== e || !Array.isArray(overrides.methods)) throw named;
    throw asMethodsError(
      e,
      (overrides.methods as string[]).map((text) => ({
        text,
        options: methodOptionNames(text),
      })),
    );
  }
  const quiet = flags.quiet === true;
  const t0 = performance.now();
  let lastReport = 0;
  const onProgress = quiet ? undefined : (done: number, steps: number) => {
    const now = performance.now();
    if (done === steps || now - lastReport > 2000) {
      lastReport = now;
      process.stderr.write(
        `sim: step ${done}/${steps} (${((now - t0) / 1000).toFixed(1)} s)\n`,
      );
    }
  };
  const cpu0 = process.cpuUsage();
  const finish = (result: SimResult): number => {
    const w0 = performance.now();
    const files = writeSimOutputs(result, out);
    const writeMs = performance.now() - w0;
    if (flags.profile === true) {
      const cpu = process.cpuUsage(cpu0);
      process.stderr.write(
        formatProfile(result.profile, [["writing outputs", writeMs]]) +
          `\ntotal: ${((performance.now() - t0) / 1000).toFixed(2)} s wall, ${
            ((cpu.user + cpu.system) / 1e6).toFixed(2)
          } s CPU (all threads), peak RSS ${peakRssMiB()} MiB\n`,
      );
    }
    if (flags.json) {
      process.stdout.write(JSON.stringify(simSummary(result), null, 2) + "\n");
    } else {
      process.stdout.write(formatSummaryTable(result) + "\n");
    }
    if (!quiet) process.stderr.write(`sim: wrote ${files.join(", ")}\n`);
    return 0;
  };
  if (backend !== "cpu" && backend !== "wasm") {
    return runSimulationOn(run, { backend, onProgress }).then(finish);
  }
  return runSimulationParallel(run, {
    threads: flags.threads as number | undefined,
    onProgress,
    host: backend,
  }).then(finish);
}

/**
 * The strategies of `--strategies`: static EP (the baseline of the gains)
 * first, then the listed ones in their order, each checked by name.
 */
function parseStrategies(text: string): string[] {
  const names = text.split(",").map((s) => s.trim());
  for (const s of names) checkChoice("--strategies", s, EP_STRATEGIES);
  if (new Set(names).size !== names.length) {
    throw new RangeError(
      `--strategies must not repeat a strategy: current value is ${text}`,
    );
  }
  return ["static", ...names.filter((s) => s !== "static")];
}

/**
 * The process's peak resident memory in MiB (`VmHWM` of /proc/self/status
 * on Linux, else the current resident size), as text.
 */
function peakRssMiB(): string {
  try {
    const status = readFileSync("/proc/self/status", "utf8");
    const kb = /^VmHWM:\s+(\d+) kB/m.exec(status)?.[1];
    if (kb !== undefined) return (Number(kb) / 1024).toFixed(0);
  } catch { /* not Linux */ }
  return `${(process.memoryUsage().rss / 2 ** 20).toFixed(0)} (current)`;
}

/** Configuration keys as the flags that set them, in error messages. */
const KEY_FLAGS: [RegExp, string][] = [
  [/^topK\b/, "top-k"],
  [/^experts\b/, "experts"],
  [/^tokens\b/, "tokens"],
  [/^layers\b/, "layers"],
  [/^steps\b/, "steps"],
  [/^seed\b/, "seed"],
  [/^gate\b/, "gate"],
  [/^groups\b/, "groups"],
  [/^topGroups\b/, "top-groups"],
  [/^(?:workload\.)?drift\b/, "drift"],
  [/^workload\.path\b/, "scores"],
  [/^scores\b/, "scores"],
  [/^(?:ep\.)?gpus\b/, "gpus"],
  [/^(?:ep\.)?replicas\b/, "replicas"],
  [/^(?:ep\.)?placement\b/, "placement"],
  [/^(?:ep\.)?scheduler\b/, "scheduler"],
  [/^(?:ep\.)?redundant\b/, "redundant"],
  [/^(?:ep\.)?hardware\b/, "hardware"],
];

/**
 * An error about a configuration key set by a flag, speaking of the flag
 * as the user typed it (`--top-k`, not `topK`; `--gpus`, not `ep.gpus`).
 */
function withFlagName(e: unknown, flags: Record<string, unknown>): unknown {
  // The key the message starts with becomes its flag where the flag was
  // given, or where the value is the default (the flag is how to set it);
  // the ep keys named further on become their flags where given, or where
  // no preset is (the flags and defaults are the whole configuration).
  const rename = (given: string): string => {
    let message = given;
    for (const [key, flag] of KEY_FLAGS) {
      if (
        key.test(message) &&
        (flags[flag] !== undefined || / \(the default\)$/.test(message))
      ) {
        message = message.replace(key, `--${flag}`);
        break;
      }
    }
    for (const flag of ["gpus", "replicas"]) {
      if (flags[flag] !== undefined || flags.preset === undefined) {
        message = message.replaceAll(`ep.${flag} (`, `--${flag} (`);
      }
    }
    // The group limit named inside a message (expert-choice's refusal).
    if (flags["top-groups"] !== undefined) {
      message = message.replace(/\btopGroups (\d+)/, "--top-groups $1");
    }
    if (flags.groups !== undefined) {
      message = message.replace(/\bof groups (\d+)/, "of --groups $1");
    }
    return message;
  };
  if (!(e instanceof Error) || rename(e.message) === e.message) return e;
  return withMessage(e, rename);
}
