import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import process from "node:process";
import { runTrainExperiment, type TrainPreset } from "../train/experiment.ts";
import {
  checkTransformerPreset,
  formatTransformerTable,
  runTransformerExperiment,
  type TransformerPreset,
  transformerSummary,
} from "../train/transformer/experiment.ts";
import { parseTrainMethod, trainMethodNames } from "../train/method.ts";
import {
  formatTrainTable,
  TRAIN_OUTPUT_FILES,
  trainSummary,
  writeTrainOutputs,
} from "../train/output.ts";
import { checkOutDir } from "./_out.ts";
import {
  asMethodsError,
  type Flags,
  type FlagSpec,
  methodOptionNames,
  parseFlags,
  splitMethods,
  UsageError,
} from "./args.ts";

const FLAGS: FlagSpec = {
  preset: "string",
  methods: "string",
  seeds: "string",
  steps: "integer",
  backend: "string",
  out: "string",
  json: "boolean",
  quiet: "boolean",
  help: "boolean",
};

/** The help text of `train`. */
export const TRAIN_HELP =
  `moelab train: train small MoE language models on the Brown corpus, one per
method and seed, and compare validation perplexity against load balance

Usage: moelab train [--preset FILE] [flags]

  --preset FILE     JSON preset (data/presets/train-default.json is the default
                    run; train-large.json the larger one); flags override it.
                    A preset with "model": "transformer" trains the MoE
                    transformer (train-transformer.json, -quick.json): it
                    writes summary.json, runs.json and table.md
  --methods LIST    comma-separated methods, options in parentheses, e.g.
                    none,aux(alpha=1e-2),loss-free(rate=1e-2),bip(T=2)
  --seeds LIST      comma-separated integer seeds, e.g. 1,2,3
  --steps N         optimizer steps per run
  --backend NAME    transformer presets only: cpu (default), cpu-threads or
                    webgpu kernels
  --out DIR         where curves.parquet, runs.parquet, loads.parquet and
                    summary.json go (default out/train); the folder is replaced
                    as a whole, so it must be new, empty or an earlier run's
  --json            print summary.json instead of the table
  --quiet           no progress on stderr
  --help            this text

Methods: ${trainMethodNames().join(", ")}
`;

function readPreset(path: string): TrainPreset {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (e) {
    throw new UsageError(
      `preset cannot be read: ${path} (${(e as Error).message})`,
    );
  }
  let preset: unknown;
  try {
    preset = JSON.parse(text);
  } catch (e) {
    throw new SyntaxError(
      `preset ${path} is not valid JSON: ${(e as Error).message}`,
    );
  }
  if (preset === null || typeof preset !== "object" || Array.isArray(preset)) {
    throw new TypeError(`preset ${path} must hold a JSON object`);
  }
  const p = { ...(preset as Record<string, unknown>) };
  delete p.description; // a preset may say in words what it is for
  return p as TrainPreset;
}

/** Runs `train` with command-line arguments; returns the exit code. */
export function trainCommand(args: string[]): number | Promise<number> {
  const flags = parseFlags(args, FLAGS);
  if (flags.help) {
    process.stdout.write(TRAIN_HELP);
    return 0;
  }
  if (typeof flags.preset === "string") {
    const raw = readPreset(flags.preset) as Record<string, unknown>;
    if (raw.model === "transformer") return transformerCommand(raw, flags);
  }
  if (flags.backend !== undefined) {
    throw new UsageError(
      `--backend applies to transformer presets only (a preset with "model": "transformer"): current value is ${
        JSON.stringify(flags.backend)
      }`,
    );
  }
  const out = checkOutDir(
    "--out",
    typeof flags.out === "string" ? flags.out : "out/train",
    TRAIN_OUTPUT_FILES,
  );
  const preset = typeof flags.preset === "string"
    ? readPreset(flags.preset)
    : {};
  applyRunFlags(preset, flags);
  const quiet = flags.quiet === true;
  const t0 = performance.now();
  const given = typeof flags.methods === "string"
    ? (preset.methods as string[]).map((text) => ({
      text,
      options: methodOptionNames(text),
    }))
    : [];
  let x;
  try {
    x = runExperiment();
  } catch (e) {
    throw asMethodsError(e, given);
  }
  function runExperiment() {
    return runTrainExperiment(preset, {
      onRun: quiet ? undefined : (r, done, total) =>
        process.stderr.write(
          `train: ${done}/${total} ${r.method} seed ${r.seed}: perplexity ${
            r.perplexity.toFixed(3)
          }, ` +
            `MaxVio_global ${r.maxVioGlobal.toFixed(3)} (${
              ((performance.now() - t0) / 1000).toFixed(1)
            } s)\n`,
        ),
    });
  }
  const files = writeTrainOutputs(x, out);
  if (flags.json) {
    process.stdout.write(JSON.stringify(trainSummary(x), null, 2) + "\n");
  } else {
    process.stdout.write(formatTrainTable(x) + "\n");
  }
  if (!quiet) process.stderr.write(`train: wrote ${files.join(", ")}\n`);
  return 0;
}

// --methods, --seeds and --steps, checked and written into either preset
// kind before any work is done.
function applyRunFlags(
  preset: { methods?: unknown[]; seeds?: number[]; steps?: number },
  flags: Flags,
): void {
  if (typeof flags.methods === "string") {
    const methods = splitMethods(flags.methods);
    for (const text of methods) {
      try {
        parseTrainMethod(text);
      } catch (e) {
        throw asMethodsError(e, [{ text, options: methodOptionNames(text) }]);
      }
    }
    preset.methods = methods;
  }
  if (typeof flags.seeds === "string") {
    preset.seeds = flags.seeds.split(",").map((s) => {
      const v = Number(s.trim());
      if (
        s.trim() === "" || !Number.isInteger(v) || v < 0 ||
        v > Number.MAX_SAFE_INTEGER
      ) {
        throw new UsageError(
          `--seeds must list integers in [0, 2^53 - 1]: current value is ${
            JSON.stringify(flags.seeds)
          }`,
        );
      }
      return v;
    });
  }
  if (flags.steps !== undefined) {
    if ((flags.steps as number) < 1) {
      throw new RangeError(
        `--steps must be a positive integer: current value is ${flags.steps}`,
      );
    }
    preset.steps = flags.steps as number;
  }
}

const TRANSFORMER_FILES = ["summary.json", "runs.json", "table.md"] as const;

// The transformer path: a preset with "model": "transformer".
async function transformerCommand(
  raw: Record<string, unknown>,
  flags: Flags,
): Promise<number> {
  const out = checkOutDir(
    "--out",
    typeof flags.out === "string" ? flags.out : "out/train-transformer",
    TRANSFORMER_FILES,
  );
  const { model: _model, ...rest } = raw;
  const preset = rest as TransformerPreset;
  applyRunFlags(preset, flags);
  if (flags.backend !== undefined) {
    const b = flags.backend;
    if (b !== "cpu" && b !== "cpu-threads" && b !== "webgpu") {
      throw new UsageError(
        `--backend must be cpu, cpu-threads or webgpu: current value is ${
          JSON.stringify(b)
        }`,
      );
    }
    preset.backend = b;
  }
  checkTransformerPreset(preset);
  const quiet = flags.quiet === true;
  const t0 = performance.now();
  const x = await runTransformerExperiment(preset, {
    onRun: quiet ? undefined : (r, label) =>
      process.stderr.write(
        `train: ${label}: perplexity ${r.perplexity.toFixed(3)}, ` +
          `MaxVio_global ${r.maxVioGlobal.toFixed(3)}, ${
            r.tokensPerSecond.toFixed(0)
          } tokens/s (${((performance.now() - t0) / 1000).toFixed(1)} s)\n`,
      ),
  });
  const table = formatTransformerTable(x);
  const { runs } = x;
  const summary = transformerSummary(x);
  mkdirSync(out, { recursive: true });
  writeFileSync(
    join(out, "summary.json"),
    JSON.stringify(summary, null, 2) + "\n",
  );
  writeFileSync(
    join(out, "runs.json"),
    JSON.stringify(
      runs.map((r) => ({
        ...r,
        loads: r.loads.map((l) => [...l]),
        curve: {
          loss: [...r.curve.loss],
          aux: [...r.curve.aux],
          maxVioBatch: [...r.curve.maxVioBatch],
        },
      })),
    ) + "\n",
  );
  writeFileSync(join(out, "table.md"), table);
  process.stdout.write(
    flags.json ? JSON.stringify(summary, null, 2) + "\n" : table,
  );
  if (!quiet) {
    process.stderr.write(
      `train: wrote ${TRANSFORMER_FILES.map((f) => join(out, f)).join(", ")}\n`,
    );
  }
  return 0;
}
