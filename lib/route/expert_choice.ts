import { checkNumber } from "../validate.ts";
import type { Routing, ScoreMatrix } from "../types.ts";
import type { Balancer, BalancerContext } from "./balancer.ts";
import { createRouting } from "./route.ts";
import { checkContext, checkedBalancer } from "./_context.ts";
import { capacityOf } from "../select/capacity.ts";
import { requireKernel } from "../ops/registry.ts";
import {
  expertChoiceOp,
  type ExpertChoiceScratch,
  expertChoiceScratch,
} from "../ops/expert_choice.ts";

/** Options of {@linkcode expertChoice}. */
export interface ExpertChoiceOptions {
  /** Tokens per expert `C = min(N, ceil(N * K * capacityFactor / E))`. Default `1`. */
  capacityFactor?: number;
}

/**
 * Checks {@linkcode ExpertChoiceOptions} and fills their defaults: the one
 * place both the CPU balancer and the device balancer read them from.
 */
export function expertChoiceSettings(
  options: ExpertChoiceOptions,
): Required<ExpertChoiceOptions> {
  return {
    capacityFactor: checkNumber(
      "capacityFactor",
      options.capacityFactor ?? 1,
      Number.MIN_VALUE,
    ),
  };
}

/**
 * Throws a RangeError where `topGroups < groups`: Expert Choice has each
 * expert pick its tokens, so a group limit (each token's experts within
 * its best groups) has nothing to act on, and a run that sets one would
 * show Expert Choice's figures as if they kept it.
 */
export function checkNoGroupLimit(groups: number, topGroups: number): void {
  if (topGroups < groups) {
    throw new RangeError(
      `expert-choice takes no group limit (each expert picks its tokens, so no token's experts are confined to its best groups): current value is topGroups ${topGroups} of groups ${groups}`,
    );
  }
}

/**
 * Expert Choice routing (Zhou et al. 2022, docs/algorithms.md section 9): each
 * expert takes its top `C = ceil(N * K / E)` tokens by score (column-wise
 * top-C, ties to the lowest token index), so every load is exactly `C`; a
 * token may get no expert or several.
 *
 * The {@linkcode Routing} it returns has `k = experts` slots per token:
 * a token's experts fill its first slots, best score first (ties to the
 * lowest expert index), the other slots hold `-1` and weight `0`. Gate
 * weights are the scores, normalised over the token's experts when the
 * context says `normalize`. In the simulator, a token with fewer than `K`
 * experts counts its missing ones as dropped (`droppedFraction`), and a
 * token with none counts in `tokensWithoutExpert`.
 *
 * Not causal: an expert chooses among all the tokens of the batch, so a
 * token's routing depends on later tokens (the leak the Loss-Free paper
 * bounds). Stateless: `biases` are zeros.
 *
 * @param context Layers, experts, `k` and `normalize`; no group limit
 * (`topGroups` below `groups`): experts choose tokens, so there is no
 * token's choice to confine to its best groups.
 * @param options `capacityFactor` (default 1).
 * @returns A non-causal {@linkcode Balancer} named `"expert-choice"`.
 * @throws {RangeError} If `capacityFactor` is not a positive finite number,
 * or the context sets a group limit.
 *
 * @example Token 0 is everyone's favourite; token 2 gets nothing
 * ```ts
 * import { expertChoice } from "@moelab/balance";
 * import assert from "node:assert/strict";
 *
 * const b = expertChoice({ layers: 1, experts: 2, k: 1 });
 * const scores = { data: new Float32Array([0.9, 0.8, 0.5, 0.1, 0.2, 0.05, 0.3, 0.6]), tokens: 4, experts: 2 };
 * const r = b.route(0, scores);
 * assert.equal(r.k, 2);
 * assert.deepEqual([...r.loads], [2, 2]);
 * assert.deepEqual([...r.experts], [0, 1, 0, -1, -1, -1, 1, -1]);
 * ```
 */
export function expertChoice(
  context: BalancerContext,
  options: ExpertChoiceOptions = {},
): Balancer {
  const ctx = checkContext(context);
  checkNoGroupLimit(ctx.groups, ctx.topGroups);
  const { capacityFactor: cf } = expertChoiceSettings(options);
  const E = ctx.experts;
  const select = requireKernel(expertChoiceOp, "cpu");
  let out: Routing | undefined;
  let scratch: ExpertChoiceScratch | undefined;
  return checkedBalancer(ctx, {
    name: "expert-choice",
    causal: false,
    route(_layer: number, scores: ScoreMatrix): Routing {
      const N = scores.tokens;
      if (!out || out.experts.length !== N * E) out = createRouting(N, E, E);
      scratch = expertChoiceScratch(N, E, scratch);
      return select.run({
        scores,
        capacity: Math.min(N, capacityOf(N, ctx.k, E, cf)),
        normalize: ctx.normalize,
        out,
        scratch,
      }, {});
    },
    update() {},
    biases: () => new Float64Array(E),
  });
}
