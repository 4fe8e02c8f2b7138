// `deno task bench [name ...]`: runs the benchmark suites (all, or those
// named). Each suite prints its own table, with ratios against a baseline
// measured in the same run. Speed is never asserted by tests.
import process from "node:process";

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
    name: "schedule",
    description:
      "MicroMoE scheduling, 64 GPUs x 256 experts: exact against HiGHS and glpk.js",
    load: () => import("./ep_bench.ts"),
  },
];

if (import.meta.main) {
  const wanted = process.argv.slice(2);
  const unknown = wanted.filter((w) => !SUITES.some((s) => s.name === w));
  if (unknown.length) {
    process.stderr.write(
      `error: unknown benchmark ${unknown.join(", ")} (suites: ${
        SUITES.map((s) => s.name).join(", ")
      })\n`,
    );
    process.exit(2);
  }
  for (const suite of SUITES) {
    if (wanted.length && !wanted.includes(suite.name)) continue;
    console.log(`\n## ${suite.name}: ${suite.description}\n`);
    await (await suite.load()).run();
  }
}
