import { checkInteger, checkNumber, show } from "../validate.ts";
import {
  BALANCERS,
  type MethodSpec,
  parseMethodSpec,
  readMethodSpec,
} from "../route/registry.ts";

/**
 * How a training run balances its experts:
 * - `none`: plain top-K, no balancing;
 * - `aux`: the DeepSeek auxiliary loss with coefficient `alpha` (default
 *   `1e-3`; Megatron-Core's `aux_loss`, `moe_aux_loss_coeff`); with
 *   `microBatches = m` the batch is split into `m` micro-batches (data
 *   parallel ranks) and the loss, each with its own counts, is averaged;
 * - `seq-aux`: its sequence-wise form (default `alpha = 1e-4`, DeepSeek-V3;
 *   Megatron-Core's `seq_aux_loss`);
 * - `global-aux`: the global-batch loss (default `alpha = 1e-3`;
 *   Megatron-Core's `global_aux_loss`): the counts of the whole batch (all
 *   `microBatches`, all-reduced over the ranks) balance every micro-batch,
 *   which sums to the batch-wise loss on the global batch;
 * - `z-loss`: the ST-MoE router z-loss (default `coef = 1e-3`);
 * - `bias`: a {@linkcode Balancer} from the registry (`loss-free`, and any
 *   registered method such as `bip` or `quantile`) whose expert biases
 *   change which experts are selected and nothing else.
 */
export type TrainMethod =
  & { label: string }
  & (
    | { kind: "none" }
    | {
      kind: "aux" | "seq-aux" | "global-aux";
      alpha: number;
      microBatches?: number;
    }
    | { kind: "z-loss"; coef: number }
    | { kind: "bias"; balancer: MethodSpec }
  );

const LOSSES: Record<
  string,
  { option: string; default: number; microBatches?: boolean }
> = {
  "aux": { option: "alpha", default: 1e-3, microBatches: true },
  "seq-aux": { option: "alpha", default: 1e-4 },
  "global-aux": { option: "alpha", default: 1e-3, microBatches: true },
  "z-loss": { option: "coef", default: 1e-3 },
};

/** Names accepted by {@linkcode parseTrainMethod}. */
export function trainMethodNames(): string[] {
  return ["none", ...Object.keys(LOSSES), ...Object.keys(BALANCERS)];
}

/**
 * Parses a training method: `none`, `aux(alpha=1e-2)`, `seq-aux`,
 * `z-loss(coef=1e-3)`, or any balancer spec of the registry
 * (`loss-free(rate=1e-2)`, ...); or an object `{ name, options?, label? }`.
 * The label is the spec as written unless given.
 *
 * @param spec The method.
 * @returns The parsed method.
 * @throws {RangeError} If the name or an option is unknown or out of range.
 * @throws {SyntaxError} If the text is malformed.
 *
 * @example
 * ```ts
 * import { parseTrainMethod } from "@moelab/balance/train";
 * import assert from "node:assert/strict";
 *
 * assert.deepEqual(parseTrainMethod("aux(alpha=1e-2)"), { label: "aux(alpha=1e-2)", kind: "aux", alpha: 0.01 });
 * assert.equal(parseTrainMethod("loss-free(rate=0.01)").kind, "bias");
 * assert.throws(() => parseTrainMethod("aux(beta=1)"), RangeError);
 * ```
 */
export function parseTrainMethod(spec: unknown): TrainMethod {
  const { name, options, label } = readMethodSpec(spec);
  if (name !== "none" && !(name in LOSSES)) return balancerMethod(spec, label);
  const loss = LOSSES[name];
  for (const key of Object.keys(options)) {
    const known = !loss
      ? []
      : loss.microBatches
      ? [loss.option, "microBatches"]
      : [loss.option];
    if (!known.includes(key)) {
      throw new RangeError(
        `${name} has no option ${show(key)}${
          loss ? ` (options: ${known.join(", ")})` : " (it takes none)"
        }`,
      );
    }
  }
  if (name === "none") return { label, kind: "none" };
  const value = checkNumber(
    loss.option,
    options[loss.option] ?? loss.default,
    0,
  );
  if (name === "z-loss") return { label, kind: "z-loss", coef: value };
  const kind = name as "aux" | "seq-aux" | "global-aux";
  if (options.microBatches === undefined) return { label, kind, alpha: value };
  return {
    label,
    kind,
    alpha: value,
    microBatches: checkInteger("microBatches", options.microBatches, 1),
  };
}

function balancerMethod(spec: unknown, label: string): TrainMethod {
  try {
    return { label, kind: "bias", balancer: parseMethodSpec(spec) };
  } catch (e) {
    if (e instanceof RangeError && /^method must be one of/.test(e.message)) {
      const name = typeof spec === "string"
        ? spec
        : (spec as { name: string }).name;
      throw new RangeError(
        `method must be one of ${
          trainMethodNames().join(", ")
        }: current value is ${show(name)}`,
      );
    }
    throw e;
  }
}
