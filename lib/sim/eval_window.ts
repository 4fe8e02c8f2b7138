// Which steps a run evaluates: the window its summaries average over, and
// the steps of that window whose exact optimum it solves.
import type { SimConfig } from "./config.ts";

/** First evaluated step: the window is `[evalStart, steps)`. */
export function evalStart(
  config: Pick<SimConfig, "steps" | "evalFraction">,
): number {
  return config.steps -
    Math.max(1, Math.ceil(config.steps * config.evalFraction));
}

/**
 * The steps whose exact optimum the simulator solves: `gapSteps` steps
 * evenly spaced over the evaluation window, its first step included.
 */
export function optimumSteps(
  config: Pick<SimConfig, "steps" | "evalFraction" | "gapSteps">,
): number[] {
  const start = evalStart(config);
  const window = config.steps - start;
  const n = Math.min(config.gapSteps, window);
  return Array.from(
    { length: n },
    (_, t) => start + Math.floor((t * window) / n),
  );
}
