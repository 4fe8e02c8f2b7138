// The exact balanced assignment against LEMON's min-cost flow (native
// C++, bench/lemon/lemon_assign.cpp, compiled here with g++ -O2 when g++
// and LEMON's headers are present; not a dependency of the package), on
// the same instances in one run. The scores are quantised to multiples of
// 2^-20 so that LEMON's integer costs are the scores exactly: both optima
// must agree to the last unit. A second table compares the oracle
// warm-started from the previous batch's prices (how the simulator calls
// it) with greedy top-k routing of the same batch.
import { fileURLToPath } from "node:url";
import process from "node:process";
import { solveBalancedAssignmentSync } from "../lib/solve/solve_balanced_assignment_sync.ts";
import { route } from "../lib/route/route.ts";
import { printTable } from "./_timing.ts";
import { instance } from "./_lp_solve.ts";
import type { ScoreMatrix } from "../lib/types.ts";

/** Fractional bits of the quantised scores (LEMON's integer cost unit). */
const BITS = 20;

/** The bench's instance with every score rounded to a multiple of 2^-BITS. */
function quantised(tokens: number, experts: number, seed: number) {
  const scores = instance(tokens, experts, seed);
  const unit = 2 ** BITS;
  for (let x = 0; x < scores.data.length; x++) {
    scores.data[x] = Math.round(scores.data[x] * unit) / unit;
  }
  return scores;
}

/** CPU time of this process in ms (all its threads). */
function cpuMs(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e3;
}

/**
 * Runs `fn` `warmup` times, then `repeats` times: the medians of its wall
 * time and of the process's CPU time, in ms. On a shared machine the CPU
 * time moves less with the other processes' load.
 */
function medians(
  fn: () => void,
  repeats: number,
  warmup: number,
): { wall: number; cpu: number } {
  for (let i = 0; i < warmup; i++) fn();
  const wall: number[] = [], cpu: number[] = [];
  for (let i = 0; i < repeats; i++) {
    const t0 = performance.now(), c0 = cpuMs();
    fn();
    cpu.push(cpuMs() - c0);
    wall.push(performance.now() - t0);
  }
  const mid = (v: number[]) => v.sort((a, b) => a - b)[v.length >> 1];
  return { wall: mid(wall), cpu: mid(cpu) };
}

/** Compiles the LEMON program; null (with the reason) when it cannot. */
async function compile(): Promise<{ exe: string } | { skip: string }> {
  const source = fileURLToPath(
    new URL("./lemon/lemon_assign.cpp", import.meta.url),
  );
  const exe = await Deno.makeTempFile({ prefix: "lemon_assign_" });
  try {
    const out = await new Deno.Command("g++", {
      args: ["-O2", "-o", exe, source, "-llemon"],
      stdout: "piped",
      stderr: "piped",
    }).output();
    if (!out.success) {
      const why = new TextDecoder().decode(out.stderr).split("\n")[0];
      return { skip: `g++ could not build it with LEMON (${why})` };
    }
    return { exe };
  } catch (e) {
    return { skip: `g++ not found (${e instanceof Error ? e.message : e})` };
  }
}

type LemonRun = {
  algorithm: string;
  optimal: boolean;
  scaled: number;
  ms: number;
  cpuMs: number;
  buildMs: number;
};

/** Runs the LEMON program on an instance written to a temporary file. */
async function runLemon(
  exe: string,
  scores: ScoreMatrix,
  k: number,
  capacity: number,
  repeats: number,
  algorithms: string[],
): Promise<LemonRun[]> {
  const file = await Deno.makeTempFile({ suffix: ".bin" });
  try {
    const header = new Int32Array([
      scores.tokens,
      scores.experts,
      k,
      capacity,
    ]);
    const bytes = new Uint8Array(16 + scores.data.byteLength);
    bytes.set(new Uint8Array(header.buffer), 0);
    bytes.set(
      new Uint8Array(
        scores.data.buffer,
        scores.data.byteOffset,
        scores.data.byteLength,
      ),
      16,
    );
    await Deno.writeFile(file, bytes);
    const out = await new Deno.Command(exe, {
      args: [file, String(BITS), String(repeats), ...algorithms],
      stdout: "piped",
      stderr: "piped",
    }).output();
    if (!out.success) {
      throw new Error(
        `lemon_assign failed: ${new TextDecoder().decode(out.stderr)}`,
      );
    }
    return new TextDecoder().decode(out.stdout).trim().split("\n").map((l) =>
      JSON.parse(l) as LemonRun
    );
  } finally {
    await Deno.remove(file);
  }
}

/** The median of `v` (sorts it). */
function median(v: number[]): number {
  return v.sort((a, b) => a - b)[v.length >> 1];
}

/** Runs the suite. */
export async function run(): Promise<void> {
  const cases = [
    // V8 tiers the solver's functions up over its first few dozen calls
    // (about 200 ms for the first at 4096 x 64, steady after about 25);
    // the simulator calls it every batch, so the steady state is timed.
    // Each round runs LEMON, then 9 solves right after it: the ratio of
    // each round compares the two under the same load, and the spread of
    // the rounds' ratios shows how much the machine's load moved it.
    { tokens: 4096, experts: 64, k: 8, warmup: 40, lemonRepeats: 3, rounds: 7 },
    {
      tokens: 16384,
      experts: 256,
      k: 8,
      warmup: 6,
      lemonRepeats: 3,
      rounds: 1,
    },
  ];
  const built = await compile();
  if ("skip" in built) {
    console.log(`LEMON comparison skipped: ${built.skip}.`);
  }
  const rows: (string | number)[][] = [];
  const warmRows: (string | number)[][] = [];
  for (const { tokens, experts, k, warmup, lemonRepeats, rounds } of cases) {
    const name = `${tokens} x ${experts}, k=${k}`;
    const scores = quantised(tokens, experts, 5);
    const a = solveBalancedAssignmentSync(scores, { k });
    const solve = () => void solveBalancedAssignmentSync(scores, { k });
    for (let i = 0; i < warmup; i++) solve();
    const sspWall: number[] = [], sspCpu: number[] = [];
    const cs: LemonRun[] = [], ns: LemonRun[] = [];
    const ratio: number[] = [], ratioCpu: number[] = [];
    for (let round = 0; round < rounds; round++) {
      if ("exe" in built) {
        const [c, n] = await runLemon(
          built.exe,
          scores,
          k,
          a.capacity,
          lemonRepeats,
          ["cost-scaling", "network-simplex"],
        );
        const ours = a.objective * 2 ** BITS;
        for (const r of [c, n]) {
          if (!r.optimal || r.scaled !== ours) {
            throw new Error(
              `${name}: LEMON ${r.algorithm} found ${r.scaled} (x 2^-${BITS}), ssp ${ours}`,
            );
          }
        }
        cs.push(c);
        ns.push(n);
      }
      const m = medians(solve, 9, 0);
      sspWall.push(m.wall);
      sspCpu.push(m.cpu);
      if ("exe" in built) {
        ratio.push(cs[round].ms / m.wall);
        ratioCpu.push(cs[round].cpuMs / m.cpu);
      }
    }
    const ssp = { wall: median(sspWall), cpu: median(sspCpu) };
    if ("exe" in built) {
      const pick = (runs: LemonRun[], key: "ms" | "cpuMs" | "buildMs") =>
        median(runs.map((r) => r[key]));
      const csMs = pick(cs, "ms"), csCpu = pick(cs, "cpuMs");
      const nsMs = pick(ns, "ms"), nsCpu = pick(ns, "cpuMs");
      const x = (a: number, b: number) => `${(a / b).toFixed(1)}x`;
      const spread = (v: number[]) =>
        v.length > 1
          ? ` [${Math.min(...v).toFixed(1)}-${Math.max(...v).toFixed(1)}]`
          : "";
      rows.push([
        name,
        `${ssp.wall.toFixed(1)} (${ssp.cpu.toFixed(1)})`,
        `${csMs.toFixed(0)} (${csCpu.toFixed(0)})`,
        `${median(ratio.slice()).toFixed(1)}x${spread(ratio)} (${
          median(ratioCpu.slice()).toFixed(1)
        }x)`,
        x(csMs + pick(cs, "buildMs"), ssp.wall),
        `${nsMs.toFixed(0)} (${nsCpu.toFixed(0)})`,
        `${x(nsMs, ssp.wall)} (${x(nsCpu, ssp.cpu)})`,
        "yes",
      ]);
    }
    // Warm start: the previous batch (another draw of the same
    // distribution) gives the prices.
    const previous = solveBalancedAssignmentSync(
      quantised(tokens, experts, 6),
      { k },
    );
    const warm = medians(
      () =>
        void solveBalancedAssignmentSync(scores, {
          k,
          expertPrices: previous.expertPrices,
        }),
      15,
      warmup,
    );
    // The same warm solves with the TypeScript kernels of its passes over
    // the scores (host "cpu": the input check and the row selections).
    const warmTs = medians(
      () =>
        void solveBalancedAssignmentSync(scores, {
          k,
          expertPrices: previous.expertPrices,
          host: "cpu",
        }),
      15,
      warmup,
    );
    const greedy = medians(() => void route(scores, { k }), 15, 5);
    warmRows.push([
      name,
      `${greedy.wall.toFixed(2)} (${greedy.cpu.toFixed(2)})`,
      `${ssp.wall.toFixed(1)} (${ssp.cpu.toFixed(1)})`,
      `${warm.wall.toFixed(1)} (${warm.cpu.toFixed(1)})`,
      `${(warm.wall / greedy.wall).toFixed(1)}x (${
        (warm.cpu / greedy.cpu).toFixed(1)
      }x)`,
      `${warmTs.wall.toFixed(1)} (${warmTs.cpu.toFixed(1)})`,
      `${(warmTs.wall / warm.wall).toFixed(2)}x`,
    ]);
  }
  if (rows.length) {
    printTable(
      [
        "instance",
        "ssp ms",
        "LEMON cost scaling ms",
        "CS / ssp",
        "CS + build / ssp",
        "LEMON network simplex ms",
        "NS / ssp",
        "same optimum",
      ],
      rows,
    );
    console.log(
      `\nSigmoid scores of normal logits, experts of unequal popularity (seed 5), ` +
        `rounded to multiples of 2^-${BITS} (LEMON's integer costs). Rounds ` +
        `(${
          cases.map((c) => c.rounds).join(" / ")
        }) alternate the two sides: LEMON (g++ -O2, ` +
        `bench/lemon/lemon_assign.cpp), the median of ${
          cases.map((c) => c.lemonRepeats).join(" / ")
        } runs of the algorithm on a prebuilt StaticDigraph ` +
        `(source -> token, cap k -> expert, cap 1 -> sink, cap C), then ssp, ` +
        `the median of 9 cold solves (no starting prices, after warm-up), ` +
        `from the scores to the certified result. ms: medians over the ` +
        `rounds; CS / ssp: the median of the rounds' ratios, in brackets the ` +
        `lowest and highest. "+ build" adds building the graph and its maps. ` +
        `Both optima agree exactly. Wall clock, in parentheses the process's ` +
        `CPU time (steadier on a shared machine; it counts every thread of ` +
        `the Deno process).\n`,
    );
  }
  printTable(
    [
      "instance",
      "greedy ms",
      "ssp cold ms",
      "ssp warm ms",
      "warm / greedy",
      "ssp warm, TS kernels ms",
      "TS / wasm",
    ],
    warmRows,
  );
  console.log(
    "\nssp warm: started from the optimal prices of the previous batch " +
      "(seed 6, same distribution), as the `exact` balancer does; greedy: " +
      "route(scores, { k }) on the same batch; TS kernels: the same warm " +
      'solves with host "cpu" (the TypeScript kernels of the input check ' +
      "and the row selections; WebAssembly otherwise, the same answers). " +
      "Medians of 15, wall clock (CPU time in parentheses).",
  );
  if ("exe" in built) await Deno.remove(built.exe);
}

if (import.meta.main) await run();
