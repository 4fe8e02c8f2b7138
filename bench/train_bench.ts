// Training throughput of the MoE transformer on the CPU (tokens per second
// of forward, backward and Adam), against the same model trained by PyTorch
// on the CPU with the same thread count, in one run (bench/train_torch.py).
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { trainTransformer } from "../lib/train/transformer/train.ts";
import type { LmBackend } from "../lib/train/transformer/model.ts";
import { printTable } from "./_timing.ts";

/** The model of data/presets/train-transformer-quick.json. */
const QUICK = {
  vocab: 512,
  seqLen: 64,
  dim: 64,
  heads: 4,
  layers: 2,
  experts: 8,
  topK: 2,
  hidden: 64,
  batchSeqs: 8,
};
/** The model of data/presets/train-transformer.json. */
const FULL = {
  vocab: 512,
  seqLen: 128,
  dim: 96,
  heads: 4,
  layers: 3,
  experts: 16,
  topK: 2,
  hidden: 96,
  batchSeqs: 16,
};

/** PyTorch's tokens/s and version, or the reason they are missing. */
function torchRate(
  config: typeof QUICK,
  threads: number,
  steps: number,
): { torch: string; tokensPerSecond: number } | string {
  const script = fileURLToPath(new URL("./train_torch.py", import.meta.url));
  let why = "python3 not found";
  // The Debian python3-torch lives in the system interpreter, which a
  // pyenv or venv python3 on PATH may hide.
  for (const python of ["/usr/bin/python3", "python3"]) {
    const r = spawnSync(python, [
      script,
      JSON.stringify(config),
      `${threads}`,
      `${steps}`,
    ], { encoding: "utf8" });
    if (r.status === 0) {
      return JSON.parse(r.stdout.trim().split("\n").pop()!);
    }
    if (r.stderr) why = r.stderr.trim().split("\n").pop()!;
  }
  return why;
}

/** Our tokens/s: median over steps after two warm-up steps. */
async function ourRate(
  config: typeof QUICK,
  backend: LmBackend,
  steps: number,
): Promise<number> {
  const text = Int32Array.from(
    { length: 20000 },
    (_, i) => (i * 7919 + (i >> 3)) % config.vocab,
  );
  const times: number[] = [];
  let last = 0;
  await trainTransformer({ train: text, valid: text.subarray(0, 4000) }, {
    ...config,
    steps: steps + 2,
    validTokens: config.seqLen,
    backend,
    onStep: (step) => {
      const now = performance.now();
      if (step > 2) times.push(now - last);
      last = now;
    },
  });
  times.sort((a, b) => a - b);
  const ms = times[Math.floor(times.length / 2)];
  return config.batchSeqs * config.seqLen / (ms / 1000);
}

/** Runs the suite. */
export async function run(): Promise<void> {
  const cores = navigator.hardwareConcurrency ?? 1;
  console.log(
    `machine: ${cores} logical cores; forward + backward + Adam, median step`,
  );
  const rows: (string | number)[][] = [];
  let missing = "";
  for (
    const [name, config, steps] of [["quick", QUICK, 6], [
      "full",
      FULL,
      3,
    ]] as const
  ) {
    for (const threads of [1, Math.min(2, cores)]) {
      const backend: LmBackend = threads === 1 ? "cpu" : "cpu-threads";
      const ours = await ourRate(config, backend, steps);
      const torch = torchRate(config, threads, steps);
      if (typeof torch === "string") missing = torch;
      rows.push([
        `${name} (${config.batchSeqs}x${config.seqLen} tokens)`,
        threads,
        ours.toFixed(0),
        typeof torch === "string" ? "-" : torch.tokensPerSecond.toFixed(0),
        typeof torch === "string"
          ? "-"
          : (ours / torch.tokensPerSecond).toFixed(2),
      ]);
    }
  }
  printTable(
    [
      "model",
      "threads",
      "moelab tokens/s",
      "PyTorch tokens/s",
      "moelab / PyTorch",
    ],
    rows,
  );
  if (missing) console.log(`\nPyTorch baseline skipped: ${missing}`);
}

if (import.meta.main) await run();
