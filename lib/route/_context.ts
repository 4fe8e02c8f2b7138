import { checkInteger, show } from "../_validate.ts";
import type { BalancerContext } from "./balancer.ts";

/** Validates a balancer context and fills its defaults. */
export function checkContext(
  context: BalancerContext,
): Required<BalancerContext> {
  if (context === null || typeof context !== "object") {
    throw new TypeError(
      `context must be an object: current value is ${show(context)}`,
    );
  }
  const layers = checkInteger("layers", context.layers, 1);
  const experts = checkInteger("experts", context.experts, 1);
  const k = checkInteger("k", context.k, 1);
  if (k > experts) {
    throw new RangeError(
      `k must be at most the number of experts (${experts}): current value is ${k}`,
    );
  }
  const groups = checkInteger("groups", context.groups ?? 1, 1, experts);
  if (experts % groups !== 0) {
    throw new RangeError(
      `groups must divide the number of experts (${experts}): current value is ${groups}`,
    );
  }
  const topGroups = checkInteger(
    "topGroups",
    context.topGroups ?? groups,
    1,
    groups,
  );
  return {
    layers,
    experts,
    k,
    normalize: context.normalize ?? false,
    groups,
    topGroups,
  };
}
