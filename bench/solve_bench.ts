// The exact balanced assignment: the specialised solver ("ssp") against
// HiGHS and glpk.js on the same instances in one run, all through the
// public API. The LP solvers run once each, in a process killed at a time
// cap; a capped run (or one that stops without an optimum) is reported as
// "> time" and its ratio as a lower bound.
import { fileURLToPath } from "node:url";
import { solveBalancedAssignmentSync } from "../lib/solve/solve_balanced_assignment_sync.ts";
import { medianMs, printTable } from "./_timing.ts";
import { instance } from "./_lp_solve.ts";

/**
 * Times one LP solve in its own process (`_lp_solve.ts`), which builds the
 * same instance and loads the solvers before its clock starts; the process
 * is killed `capSeconds` after it says it is ready.
 */
async function timeLp(
  tokens: number,
  experts: number,
  k: number,
  seed: number,
  solver: "glpk" | "highs",
  capSeconds: number,
): Promise<{ ms: number; capped: boolean; error?: string }> {
  const script = fileURLToPath(new URL("./_lp_solve.ts", import.meta.url));
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      script,
      ...[tokens, experts, k, seed].map(String),
      solver,
    ],
    stdout: "piped",
    stderr: "null",
  }).spawn();
  let timer: ReturnType<typeof setTimeout> | undefined;
  let result: { ms: number; capped: boolean; error?: string } = {
    ms: capSeconds * 1e3,
    capped: true,
    error: `killed at the ${capSeconds} s cap`,
  };
  let buffered = "";
  for await (const chunk of child.stdout.pipeThrough(new TextDecoderStream())) {
    buffered += chunk;
    let end: number;
    while ((end = buffered.indexOf("\n")) >= 0) {
      const line = buffered.slice(0, end).trim();
      buffered = buffered.slice(end + 1);
      if (line === "ready") {
        timer = setTimeout(() => child.kill("SIGKILL"), capSeconds * 1e3);
      } else if (line.startsWith("{")) {
        const r = JSON.parse(line) as { ms: number; error?: string };
        result = { ms: r.ms, capped: r.error !== undefined, error: r.error };
      }
    }
  }
  clearTimeout(timer);
  await child.status;
  return result;
}

/** Runs the suite. */
export async function run(): Promise<void> {
  const rows: (string | number)[][] = [];
  const stops: string[] = [];
  const cases = [
    { tokens: 4096, experts: 64, k: 8, highsCap: 120, glpkCap: 60 },
    { tokens: 16384, experts: 256, k: 8, highsCap: 120, glpkCap: 0 },
  ];
  for (const { tokens, experts, k, highsCap, glpkCap } of cases) {
    const seed = 5;
    const scores = instance(tokens, experts, seed);
    // Warm-up solves first: V8 keeps optimising the solver's loops over
    // the first dozen calls (a simulator calls it every batch).
    const ssp = medianMs(
      () => void solveBalancedAssignmentSync(scores, { k }),
      9,
      tokens <= 4096 ? 12 : 3,
    );
    const gap = solveBalancedAssignmentSync(scores, { k }).dualityGap;
    const highs = await timeLp(tokens, experts, k, seed, "highs", highsCap);
    const glpk = glpkCap > 0
      ? await timeLp(tokens, experts, k, seed, "glpk", glpkCap)
      : null;
    const show = (t: { ms: number; capped: boolean } | null) =>
      t === null
        ? "not run"
        : t.capped
        ? `> ${(t.ms / 1e3).toFixed(0)} s`
        : `${(t.ms / 1e3).toFixed(2)} s`;
    const ratio = (t: { ms: number; capped: boolean } | null) =>
      t === null ? "-" : `${t.capped ? "> " : ""}${(t.ms / ssp).toFixed(0)}x`;
    const name = `${tokens} x ${experts}, k=${k}`;
    for (const [solver, t] of [["HiGHS", highs], ["glpk.js", glpk]] as const) {
      if (t?.error) stops.push(`${solver} at ${name}: ${t.error}`);
    }
    rows.push([
      name,
      ssp.toFixed(1),
      gap.toExponential(1),
      show(highs),
      ratio(highs),
      show(glpk),
      ratio(glpk),
    ]);
  }
  printTable(
    [
      "instance",
      "ssp ms",
      "ssp gap",
      "HiGHS",
      "HiGHS / ssp",
      "glpk.js",
      "glpk / ssp",
    ],
    rows,
  );
  console.log(
    "\nSigmoid scores of normal logits, experts of unequal popularity (seed 5). " +
      "ssp: the median of 9 solves after 12 warm-up solves (3 at 16384 x 256); " +
      "the LP solvers: one solve each through solveBalancedAssignment, in a " +
      "process killed at its cap (120 s for HiGHS, 60 s for glpk.js).",
  );
  for (const stop of stops) {
    console.log(`\nStopped without an optimum: ${stop}`);
  }
}
