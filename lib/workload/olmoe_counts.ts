import pl from "nodejs-polars";
import { show } from "../validate.ts";

function isRecord(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === "object" && !Array.isArray(v);
}

function record(v: unknown, path: string): Record<string, unknown> {
  if (!isRecord(v)) {
    throw new TypeError(
      `${path} must be an object: current value is ${show(v)}`,
    );
  }
  return v;
}

/**
 * The per-expert selection counts of allenai/OLMoE's routing analysis
 * (`expert_counts.json`: `counts[model][kind][domain][layer]` is an array
 * of per-expert counts, `kind` being `expert_counts` for all top-K choices
 * or `expert_counts_top1` for the first choice only) as a long load table
 * `model, counts, domain, step, layer, expert, load`. Each count covers a
 * whole domain's corpus, so `step` is 0 and `model, counts, domain` are the
 * ids; rows follow the file's order.
 *
 * @param json The parsed file.
 * @returns The long load table (`load`: Float64).
 * @throws {TypeError} If a level of the nesting is not an object, a layer
 * key is not an integer, or a count is not a non-negative number; the
 * message gives the path, as `counts.olmoe.expert_counts.arxiv["7"][3]`.
 *
 * @example
 * ```ts
 * import { olmoeExpertCounts } from "@moelab/balance/workload";
 * import assert from "node:assert/strict";
 *
 * const t = olmoeExpertCounts({
 *   counts: { tiny: { expert_counts: { wiki: { "0": [3, 1], "7": [2, 2] } } } },
 * });
 * assert.deepEqual(t.columns, ["model", "counts", "domain", "step", "layer", "expert", "load"]);
 * assert.deepEqual([...t.getColumn("layer")], [0, 0, 7, 7]);
 * assert.deepEqual([...t.getColumn("load")], [3, 1, 2, 2]);
 * ```
 */
export function olmoeExpertCounts(json: unknown): pl.DataFrame {
  const root = record(record(json, "json").counts, "counts");
  const model: string[] = [];
  const kind: string[] = [];
  const domain: string[] = [];
  const layer: number[] = [];
  const expert: number[] = [];
  const load: number[] = [];
  for (const [m, kinds] of Object.entries(root)) {
    for (const [k, domains] of Object.entries(record(kinds, `counts.${m}`))) {
      const at = `counts.${m}.${k}`;
      for (const [d, layers] of Object.entries(record(domains, at))) {
        for (
          const [l, counts] of Object.entries(record(layers, `${at}.${d}`))
        ) {
          const path = `${at}.${d}[${JSON.stringify(l)}]`;
          if (!/^\d+$/.test(l)) {
            throw new TypeError(`${path} must be keyed by a layer number`);
          }
          if (!Array.isArray(counts)) {
            throw new TypeError(
              `${path} must be an array of counts: current value is ${
                show(counts)
              }`,
            );
          }
          counts.forEach((c, j) => {
            if (typeof c !== "number" || !(c >= 0) || !Number.isFinite(c)) {
              throw new TypeError(
                `${path}[${j}] must be a non-negative count: current value is ${
                  show(c)
                }`,
              );
            }
            model.push(m);
            kind.push(k);
            domain.push(d);
            layer.push(Number(l));
            expert.push(j);
            load.push(c);
          });
        }
      }
    }
  }
  return pl.DataFrame([
    pl.Series("model", model, pl.Utf8),
    pl.Series("counts", kind, pl.Utf8),
    pl.Series("domain", domain, pl.Utf8),
    pl.Series("step", new Int32Array(load.length), pl.Int32),
    pl.Series("layer", Int32Array.from(layer), pl.Int32),
    pl.Series("expert", Int32Array.from(expert), pl.Int32),
    pl.Series("load", Float64Array.from(load), pl.Float64),
  ]);
}
