// `deno task bench [name ...] [--results FILE | --no-results]`: runs the
// benchmark suites (all, or those named). Each suite prints its own table,
// with ratios against a baseline measured in the same run; what it prints
// is also recorded in the results file (default bench/RESULTS.md), one
// section per suite with the command, date, commit and machine. Speed is
// never asserted by tests.
import process from "node:process";
import {
  describeCommit,
  describeMachine,
  formatSection,
  recordSection,
  RESULTS_FILE,
} from "./results.ts";

type Suite = {
  name: string;
  description: string;
  load: () => Promise<{ run(): Promise<void> }>;
};

/** The benchmark suites, in the order they run. */
export const SUITES: Suite[] = [
  {
    name: "route",
    description: "top-K routing on the CPU",
    load: () => import("./route_bench.ts"),
  },
  {
    name: "balancers",
    description: "per-batch cost of every balancer against greedy top-K",
    load: () => import("./balancers_bench.ts"),
  },
  {
    name: "backends",
    description: "routing on CPU cores, WebGPU and PyTorch; BIP iteration",
    load: () => import("./backends_bench.ts"),
  },
  {
    name: "solve",
    description: "exact balanced assignment: ssp against HiGHS and glpk.js",
    load: () => import("./solve_bench.ts"),
  },
  {
    name: "lemon",
    description:
      "exact balanced assignment: ssp against LEMON's min-cost flow (C++); warm oracle against greedy",
    load: () => import("./lemon_bench.ts"),
  },
  {
    name: "schedule",
    description:
      "MicroMoE scheduling, 64 GPUs x 256 experts: exact against HiGHS and glpk.js; the EP stage at DeepSeek-V3 sizes",
    load: () => import("./ep_bench.ts"),
  },
  {
    name: "sim",
    description:
      "the DeepSeek-V3 preset's cost per stage, and the whole preset extrapolated",
    load: () => import("./sim_bench.ts"),
  },
  {
    name: "train",
    description:
      "MoE transformer training tokens/s on the CPU against PyTorch, same threads",
    load: () => import("./train_bench.ts"),
  },
  {
    name: "device",
    description:
      "every op's WebGPU kernel: GPU ms and GB/s; device balancer steps",
    load: () => import("./device_bench.ts"),
  },
  {
    name: "train-ops",
    description:
      "CPU matmul of the training ops, 1 and 2 threads, against PyTorch, NumPy and a naive loop",
    load: () => import("./train_ops_bench.ts"),
  },
];

/** Runs `fn`, returning what it printed with `console.log` (still printed). */
async function capture(fn: () => Promise<void>): Promise<string> {
  const lines: string[] = [];
  const log = console.log;
  console.log = (...args: unknown[]) => {
    lines.push(
      args.map((a) => typeof a === "string" ? a : Deno.inspect(a)).join(" "),
    );
    log(...args);
  };
  try {
    await fn();
  } finally {
    console.log = log;
  }
  return lines.join("\n");
}

function fail(message: string): never {
  process.stderr.write(`error: ${message}\n`);
  process.exit(2);
}

if (import.meta.main) {
  const args = process.argv.slice(2);
  let results: string | null = RESULTS_FILE;
  const wanted: string[] = [];
  for (let a = 0; a < args.length; a++) {
    if (args[a] === "--no-results") results = null;
    else if (args[a] === "--results") {
      results = args[++a] ?? fail("--results needs a file name");
    } else if (args[a].startsWith("--results=")) {
      results = args[a].slice("--results=".length);
    } else wanted.push(args[a]);
  }
  const unknown = wanted.filter((w) => !SUITES.some((s) => s.name === w));
  if (unknown.length) {
    fail(
      `unknown benchmark ${unknown.join(", ")} (suites: ${
        SUITES.map((s) => s.name).join(", ")
      })`,
    );
  }
  if (results === "") fail("--results needs a file name");
  const command = ["deno task bench", ...args].join(" ");
  const machine = describeMachine();
  const commit = describeCommit();
  for (const suite of SUITES) {
    if (wanted.length && !wanted.includes(suite.name)) continue;
    console.log(`\n## ${suite.name}: ${suite.description}\n`);
    const t0 = performance.now();
    const bench = await suite.load();
    const output = await capture(() => bench.run());
    if (results === null) continue;
    const section = formatSection(suite.name, suite.description, output, {
      command,
      date: new Date(),
      commit,
      machine,
      seconds: (performance.now() - t0) / 1e3,
    });
    await recordSection(results, suite.name, section);
    process.stderr.write(`recorded ${suite.name} in ${results}\n`);
  }
}
