// The DeepSeek-V3 preset's cost, stage by stage: a cut of it (its shape,
// few layers and steps) run on this thread with the simulator's profile,
// each stage per layer and step as a ratio to one streaming pass over the
// batch's scores measured in the same run, and the whole preset's CPU
// time extrapolated from the cut (per layer-step stages x layers x steps,
// gap solves x gapSteps x layers, EP stage and writing per step).
import { readFileSync } from "node:fs";
import process from "node:process";
import { runSimulation } from "../lib/sim/run.ts";
import { LOOP_STAGES } from "../lib/sim/profile.ts";
import { medianMs, printTable } from "./_timing.ts";

const PRESET = "../data/presets/deepseek-v3.json";
const LAYERS = 2, STEPS = 6;

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
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const r = runSimulation({ ...preset, layers: LAYERS, steps: STEPS });
  const wallMs = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  const p = r.profile;
  // On a shared machine a stage's wall time includes waiting for a core:
  // scale every stage by the loop's CPU share (one thread: CPU / wall).
  const share = Number.isFinite(p.loopCpuMs) && p.loopMs > 0
    ? Math.min(1, p.loopCpuMs / p.loopMs)
    : 1;
  const cells = LAYERS * STEPS / share;
  const gapSolves = LAYERS * r.optimumSteps.length;
  const rows: [string, number, number][] = [
    ...p.methods.flatMap((m): [string, number, number][] => [
      [`route: ${m.method}`, m.routeMs / cells, cells],
      [`update: ${m.method}`, m.updateMs / cells, cells],
    ]),
    ...LOOP_STAGES.filter((s) => s !== "gap" && s !== "device").map((
      s,
    ): [string, number, number] => [s, p.stages[s] / cells, cells]),
  ];
  const perCell = rows.reduce((a, [, ms]) => a + ms, 0);
  const perSolve = p.stages.gap * share / Math.max(1, gapSolves);
  const perStepEp = p.epMs * share / STEPS;
  console.log(
    `DeepSeek-V3 preset cut: ${LAYERS} layers x ${STEPS} steps x ${preset.tokens} tokens, ${preset.experts} experts, top-${preset.topK}, groups ${preset.groups}/${preset.topGroups}; one thread; ${
      (wallMs / 1000).toFixed(1)
    } s wall, ${
      ((cpu.user + cpu.system) / 1e6).toFixed(1)
    } s CPU; stages in CPU ms (wall x the loop's CPU share, ${
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
        "gap: one exact solve (per sampled layer-step)",
        perSolve.toFixed(0),
        (perSolve / passMs).toFixed(0),
      ],
      [`ep stage (per step, ${LAYERS} layers)`, perStepEp.toFixed(1), "-"],
    ],
  );
  // The whole preset: the stages per layer-step over every layer and step,
  // the gap's solves, and the EP stage per step scaled by the layers.
  const full = perCell * preset.layers * preset.steps +
    perSolve * preset.layers * Math.min(
        preset.gapSteps,
        Math.ceil(preset.steps * preset.evalFraction),
      ) +
    perStepEp * (preset.layers / LAYERS) * preset.steps;
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
