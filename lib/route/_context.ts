import { checkChoice, checkInteger, show } from "../validate.ts";
import { HOST_BACKENDS } from "../ops/host.ts";
import type { Routing, ScoreMatrix } from "../types.ts";
import type { Balancer, BalancerContext } from "./balancer.ts";
import { checkGroupLimit } from "../ops/route.ts";

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
  const { groups, topGroups } = checkGroupLimit(
    experts,
    k,
    context.groups,
    context.topGroups,
  );
  return {
    layers,
    experts,
    k,
    normalize: context.normalize ?? false,
    groups,
    topGroups,
    host: checkChoice("host", context.host ?? "wasm", HOST_BACKENDS),
  };
}

/** Throws unless `layer` is one of the `layers` the balancer was built for. */
function checkLayer(layer: unknown, layers: number): void {
  if (
    typeof layer !== "number" || !Number.isInteger(layer) || layer < 0 ||
    layer >= layers
  ) {
    throw new RangeError(
      `layer must be an integer in [0, ${layers}), the layers the balancer was built for: current value is ${
        show(layer)
      }`,
    );
  }
}

/** Throws unless `scores` has the experts the balancer was built for. */
function checkExperts(scores: ScoreMatrix, experts: number): void {
  if (scores === null || typeof scores !== "object") {
    throw new TypeError(
      `scores must be a score matrix: current value is ${show(scores)}`,
    );
  }
  if (scores.experts !== experts) {
    throw new RangeError(
      `scores must have the ${experts} experts the balancer was built for: current value has ${
        show(scores.experts)
      }`,
    );
  }
}

/**
 * `balancer` with its layer and expert count checked on every call (two
 * integer compares per batch): a batch of another width or a layer out of
 * range is a RangeError naming the value, never a read past the state.
 */
export function checkedBalancer(
  ctx: Required<BalancerContext>,
  balancer: Balancer,
): Balancer {
  const { layers, experts } = ctx;
  return {
    name: balancer.name,
    causal: balancer.causal,
    route(layer: number, scores: ScoreMatrix): Routing {
      checkLayer(layer, layers);
      checkExperts(scores, experts);
      return balancer.route(layer, scores);
    },
    update(layer: number, scores: ScoreMatrix, routing: Routing): void {
      checkLayer(layer, layers);
      checkExperts(scores, experts);
      if (routing?.loads?.length !== experts) {
        throw new RangeError(
          `routing must count the ${experts} experts the balancer was built for: current value has ${
            show(routing?.loads?.length)
          }`,
        );
      }
      balancer.update(layer, scores, routing);
    },
    biases(layer: number): Float64Array {
      checkLayer(layer, layers);
      return balancer.biases(layer);
    },
  };
}
