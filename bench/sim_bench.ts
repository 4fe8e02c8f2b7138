// The DeepSeek-V3 preset's cost, stage by stage: cuts of it (its shape,
// few layers and steps) run on this thread with the simulator's profile,
// each stage per layer and step as a ratio to one streaming pass over the
// batch's scores measured in the same run, and the whole preset's CPU
// time extrapolated from the cuts. A run's first batches cost more than
// the steady state (V8 optimising the code, BIP's and Quantile's column
// bounds not yet measured, the balancers' prices far from the batch's), so
// the per layer-step costs are the difference of a long and a short cut
// of the same layers (the same first steps in both), after a warm-up run;
// the gap's solves are the long cut's; the EP stage per sampled step and
// layer is the cuts' difference too (the placements cancel).
import { readFileSync } from "node:fs";
import process from "node:process";
import { runSimulation } from "../lib/sim/run.ts";
import { sampledCount } from "../lib/sim/eval_window.ts";
import { LOOP_STAGES } from "../lib/sim/profile.ts";
import type { SimResult } from "../lib/sim/run.ts";
import { medianMs, printTable } from "./_timing.ts";

const PRESET = "../data/presets/deepseek-v3.json";
const LAYERS = 2, SHORT = 4, LONG = 24;

/** One cut's stage times (CPU ms, scaled by the loop's CPU share). */
function cutStages(r: SimResult) {
  const p = r.profile;
  // On a shared machine a stage's wall time includes waiting for a core:
  // scale every stage by the loop's CPU share (one thread: CPU / wall).
  const share = Number.isFinite(p.loopCpuMs) && p.loopMs > 0
    ? Math.min(1, p.loopCpuMs / p.loopMs)
    : 1;
  const stages = new Map<string, number>();
  for (const m of p.methods) {
    stages.set(`route: ${m.method}`, m.routeMs * share);
    stages.set(`update: ${m.method}`, m.updateMs * share);
  }
  for (const s of LOOP_STAGES) {
    if (s !== "gap" && s !== "device") stages.set(s, p.stages[s] * share);
  }
  return {
    stages,
    gapMs: p.stages.gap * share,
    solves: LAYERS * r.optimumSteps.length,
    epMs: p.epMs * share,
    share,
  };
}

/** Sampled steps of the EP stage in a run of `steps` steps. */
function epSampled(
  preset: { evalFraction: number; ep: { sampleEvery: number } },
  steps: number,
): number {
  return sampledCount(
    { steps, evalFraction: preset.evalFraction },
    preset.ep.sampleEvery,
  );
}

/** Runs the suite. */
export function run(): Promise<void> {
  const preset = JSON.parse(
    readFileSync(new URL(PRESET, import.meta.url), "utf8"),
  );
  // Baseline: one pass summing a batch's scores (tokens x experts floats).
  const scores = new Float32Array(preset.tokens * preset.experts)
    .map((_, i) => (i % 251) / 251);
  let sink = 0;
  const passMs = medianMs(() => {
    let s = 0;
    for (let i = 0; i < scores.length; i++) s += scores[i];
    sink += s;
  });
  const cut = (steps: number) =>
    runSimulation({ ...preset, layers: LAYERS, steps });
  cut(SHORT);
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const short = cutStages(cut(SHORT));
  const long = cutStages(cut(LONG));
  const wallMs = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  const cells = LAYERS * (LONG - SHORT);
  const rows: [string, number][] = [...long.stages].map((
    [name, ms],
  ) => [name, (ms - short.stages.get(name)!) / cells]);
  const perCell = rows.reduce((a, [, ms]) => a + ms, 0);
  const perSolve = long.gapMs / Math.max(1, long.solves);
  const epSteps = epSampled(preset, LONG) - epSampled(preset, SHORT);
  const perEp = (long.epMs - short.epMs) / (LAYERS * epSteps);
  const share = Math.min(short.share, long.share);
  console.log(
    `DeepSeek-V3 preset cuts: ${LAYERS} layers x ${LONG} steps less ${LAYERS} layers x ${SHORT} steps (after a warm-up cut of ${SHORT}), ${preset.tokens} tokens, ${preset.experts} experts, top-${preset.topK}, groups ${preset.groups}/${preset.topGroups}; one thread; ${
      (wallMs / 1000).toFixed(1)
    } s wall, ${
      ((cpu.user + cpu.system) / 1e6).toFixed(1)
    } s CPU for the two; stages in CPU ms (wall x the loop's CPU share, at least ${
      share.toFixed(2)
    })`,
  );
  console.log(
    `baseline: one streaming pass over a batch's ${scores.length} scores: ${
      passMs.toFixed(2)
    } ms`,
  );
  printTable(
    ["stage", "CPU ms per layer-step", "x streaming pass"],
    [
      ...rows.map(([name, ms]) => [
        name,
        ms.toFixed(1),
        (ms / passMs).toFixed(1),
      ]),
      ["all of the above", perCell.toFixed(1), (perCell / passMs).toFixed(1)],
      [
        "gap: one bracket of the group-limited optimum (per sampled layer-step)",
        perSolve.toFixed(0),
        (perSolve / passMs).toFixed(0),
      ],
      [
        "ep stage (per sampled step and layer)",
        perEp.toFixed(1),
        (perEp / passMs).toFixed(1),
      ],
    ],
  );
  // The whole preset: the stages per layer-step over every layer and step,
  // the gap's solves, and the EP stage over its sampled steps and layers.
  const full = perCell * preset.layers * preset.steps +
    perSolve * preset.layers * Math.min(
        preset.gapSteps,
        Math.ceil(preset.steps * preset.evalFraction),
      ) +
    perEp * preset.layers * epSampled(preset, preset.steps);
  console.log(
    `whole preset (${preset.layers} layers x ${preset.steps} steps), extrapolated: ${
      (full / 1000 / 60).toFixed(1)
    } CPU minutes, ${
      (full / 2000 / 60).toFixed(1)
    } minutes on 2 free cores (the step loop spread over both)`,
  );
  if (sink === 0) console.log("");
  return Promise.resolve();
}

if (import.meta.main) await run();
