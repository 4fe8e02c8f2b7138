import pl from "nodejs-polars";
import { show } from "../validate.ts";

/**
 * The per-batch expert counts derived from the MoE-Beyond traces of
 * DeepSeek-V2-Lite-Chat (`batches_4096tok.json`: `batches[b].counts[i][e]`
 * is the number of tokens of batch `b` that layer `moe_layers[i]` sent to
 * expert `e`; `batches[b].tokens` its token count) as a long load table
 * `batchTokens, step, layer, expert, load`, with `step` the batch index and
 * `layer` the model's layer id.
 *
 * @param json The parsed file.
 * @returns The long load table (`batchTokens`: Int32, the batch's token count;
 * `load`: Float64).
 * @throws {TypeError} If a field is missing or of the wrong shape; the
 * message gives its path, as `batches[3].counts[2][17]`.
 *
 * @example
 * ```ts
 * import { moeBeyondBatches } from "@moelab/balance/workload";
 * import assert from "node:assert/strict";
 *
 * const t = moeBeyondBatches({
 *   moe_layers: [1], batches: [{ tokens: 2, counts: [[3, 1]] }, { tokens: 1, counts: [[0, 2]] }],
 * });
 * assert.deepEqual([...t.getColumn("step")], [0, 0, 1, 1]);
 * assert.deepEqual([...t.getColumn("layer")], [1, 1, 1, 1]);
 * assert.deepEqual([...t.getColumn("load")], [3, 1, 0, 2]);
 * ```
 */
export function moeBeyondBatches(json: unknown): pl.DataFrame {
  const root = json as { moe_layers?: unknown; batches?: unknown };
  if (root === null || typeof root !== "object") {
    throw new TypeError(
      `json must be an object: current value is ${show(json)}`,
    );
  }
  const layers = root.moe_layers;
  if (
    !Array.isArray(layers) ||
    layers.some((l) => !Number.isInteger(l) || l < 0)
  ) {
    throw new TypeError(
      `moe_layers must be an array of layer ids: current value is ${
        show(layers)
      }`,
    );
  }
  if (!Array.isArray(root.batches)) {
    throw new TypeError(
      `batches must be an array: current value is ${show(root.batches)}`,
    );
  }
  const tokens: number[] = [];
  const step: number[] = [];
  const layer: number[] = [];
  const expert: number[] = [];
  const load: number[] = [];
  root.batches.forEach((b: { tokens?: unknown; counts?: unknown }, s) => {
    const at = `batches[${s}]`;
    if (!Number.isInteger(b?.tokens)) {
      throw new TypeError(
        `${at}.tokens must be an integer: current value is ${show(b?.tokens)}`,
      );
    }
    const counts = b.counts;
    if (!Array.isArray(counts) || counts.length !== layers.length) {
      throw new TypeError(
        `${at}.counts must hold one array per MoE layer (${layers.length}): current value is ${
          show(counts)
        }`,
      );
    }
    counts.forEach((row: unknown, i) => {
      if (!Array.isArray(row)) {
        throw new TypeError(
          `${at}.counts[${i}] must be an array: current value is ${show(row)}`,
        );
      }
      row.forEach((c: unknown, e) => {
        if (typeof c !== "number" || !(c >= 0) || !Number.isFinite(c)) {
          throw new TypeError(
            `${at}.counts[${i}][${e}] must be a non-negative count: current value is ${
              show(c)
            }`,
          );
        }
        tokens.push(b.tokens as number);
        step.push(s);
        layer.push(layers[i]);
        expert.push(e);
        load.push(c);
      });
    });
  });
  return pl.DataFrame([
    pl.Series("batchTokens", Int32Array.from(tokens), pl.Int32),
    pl.Series("step", Int32Array.from(step), pl.Int32),
    pl.Series("layer", Int32Array.from(layer), pl.Int32),
    pl.Series("expert", Int32Array.from(expert), pl.Int32),
    pl.Series("load", Float64Array.from(load), pl.Float64),
  ]);
}
