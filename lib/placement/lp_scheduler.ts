// The MicroMoE LP handed to glpk.js and HiGHS: columns x_r (tokens of
// replica r) and t; rows: sum_{r of e} x_r = load[e] per expert,
// sum_{r on g} x_r - t <= 0 per GPU; minimise t.
// The solvers come from lib/solve/lp_solvers.ts, the one lazy loader:
// these schedulers run once loadLpSolvers() has resolved.
import { loadedGlpk, loadedHighs } from "../solve/lp_solvers.ts";
import { ScheduleFlow } from "./_maxflow.ts";
import { checkLoads, integerSchedule } from "./_integer_schedule.ts";
import { checkPlacement, type Placement } from "./placement.ts";
import type { Schedule, Scheduler } from "./types.ts";

/** Rounds a fractional LP solution `x` (per replica) to integer replica loads. */
export function roundLp(
  flow: ScheduleFlow,
  p: Placement,
  loads: ArrayLike<number>,
  x: ArrayLike<number>,
  optimum: number,
  solver: string,
): Schedule {
  // Each GPU may take the ceiling of its own fractional load: x itself is
  // a feasible flow there, so an integer one exists (integrality theorem).
  const cap = new Float64Array(p.gpus);
  const init = new Float64Array(flow.replicas);
  for (let r = 0; r < flow.replicas; r++) {
    cap[flow.replicaGpu[r]] += x[r];
  }
  for (let g = 0; g < p.gpus; g++) cap[g] = Math.ceil(cap[g] - 1e-7);
  const room = cap.slice();
  const left = Float64Array.from(loads);
  for (let r = 0; r < flow.replicas; r++) {
    const g = flow.replicaGpu[r], e = flow.replicaExpert[r];
    const f = Math.min(
      Math.floor(x[r] + 1e-7),
      room[g],
      left[flow.replicaExpert[r]],
    );
    init[r] = Math.max(0, f);
    room[g] -= init[r];
    left[e] -= init[r];
  }
  const out = integerSchedule(flow, p, loads, cap, optimum, solver, init) ??
    integerSchedule(
      flow,
      p,
      loads,
      cap.fill(Math.ceil(optimum - 1e-7)),
      optimum,
      solver,
    );
  if (!out) throw new Error(`${solver} returned an infeasible schedule`);
  return out;
}

/** The MicroMoE LP solved by glpk.js (simplex, rebuilt every call: glpk.js keeps no model). */
export function glpkScheduler(placement: Placement): Scheduler {
  const solver = loadedGlpk();
  const p = checkPlacement("placement", placement);
  const flow = new ScheduleFlow(p);
  const E = p.experts, G = p.gpus, R = flow.replicas;
  const names = Array.from({ length: R }, (_, r) => `x${r}`);
  const gpuRows = Array.from({ length: G }, (_, g) => ({
    name: `g${g}`,
    vars: [{ name: "t", coef: -1 }] as { name: string; coef: number }[],
    bnds: { type: solver.GLP_UP, ub: 0, lb: 0 },
  }));
  for (let r = 0; r < R; r++) {
    gpuRows[flow.replicaGpu[r]].vars.push({ name: names[r], coef: 1 });
  }
  const x = new Float64Array(R);
  return {
    solver: "glpk",
    placement: p,
    schedule(loads: ArrayLike<number>): Schedule {
      checkLoads("loads", loads, E);
      const expertRows = Array.from({ length: E }, (_, e) => {
        const vars = [];
        for (let r = flow.replicaStart[e]; r < flow.replicaStart[e + 1]; r++) {
          vars.push({ name: names[r], coef: 1 });
        }
        return {
          name: `e${e}`,
          vars,
          bnds: { type: solver.GLP_FX, ub: loads[e], lb: loads[e] },
        };
      });
      const result = solver.solve({
        name: "micromoe",
        objective: {
          direction: solver.GLP_MIN,
          name: "t",
          vars: [{ name: "t", coef: 1 }],
        },
        subjectTo: [...expertRows, ...gpuRows],
      }, { msglev: solver.GLP_MSG_OFF });
      if (result.result.status !== solver.GLP_OPT) {
        throw new Error(`glpk ended with status ${result.result.status}`);
      }
      for (let r = 0; r < R; r++) x[r] = result.result.vars[names[r]] ?? 0;
      return roundLp(flow, p, loads, x, result.result.z, "glpk");
    },
  };
}

/**
 * The MicroMoE LP solved by HiGHS (dual simplex on a persistent model):
 * between micro-batches only the expert rows' bounds change, so every
 * solve after the first starts from the previous optimal basis.
 */
export function highsScheduler(placement: Placement): Scheduler {
  const h = loadedHighs();
  const p = checkPlacement("placement", placement);
  const flow = new ScheduleFlow(p);
  const E = p.experts, G = p.gpus, R = flow.replicas;
  // Columns in CSC: replica r has rows e and E + g; t has rows E..E+G-1.
  const starts = new Int32Array(R + 2), indices: number[] = [];
  const values: number[] = [];
  for (let r = 0; r < R; r++) {
    starts[r] = indices.length;
    indices.push(flow.replicaExpert[r], E + flow.replicaGpu[r]);
    values.push(1, 1);
  }
  starts[R] = indices.length;
  for (let g = 0; g < G; g++) indices.push(E + g), values.push(-1);
  starts[R + 1] = indices.length;
  const colCost = new Float64Array(R + 1);
  colCost[R] = 1;
  const rowLower = new Float64Array(E + G).fill(-h.infinity);
  const rowUpper = new Float64Array(E + G);
  const model = h.createModel({
    numCols: R + 1,
    numRows: E + G,
    colCost,
    colLower: new Float64Array(R + 1),
    colUpper: new Float64Array(R + 1).fill(h.infinity),
    rowLower,
    rowUpper,
    matrix: {
      format: "csc",
      numRows: E + G,
      numCols: R + 1,
      starts,
      indices: Int32Array.from(indices),
      values: Float64Array.from(values),
    },
  });
  model.options.set({ output_flag: false, presolve: "off" });
  const bound = new Float64Array(E);
  const rows = { kind: "range", from: 0, to: E - 1 } as const;
  return {
    solver: "highs",
    placement: p,
    schedule(loads: ArrayLike<number>): Schedule {
      checkLoads("loads", loads, E);
      for (let e = 0; e < E; e++) bound[e] = loads[e];
      model.changeRowsBounds(rows, bound, bound);
      const run = model.run();
      if (run.modelStatus !== h.constants.modelStatus.optimal) {
        throw new Error(`HiGHS ended with model status ${run.modelStatus}`);
      }
      const x = model.getSolution().colValue;
      return roundLp(flow, p, loads, x, model.getObjectiveValue(), "highs");
    },
    dispose: () => model.dispose(),
  };
}
