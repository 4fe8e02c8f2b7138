import { show } from "../validate.ts";

/** The serving engines whose placement files {@linkcode engineMap} writes. */
export type EngineMapFormat = "sglang" | "vllm" | "trtllm";

/** The formats, in the order the CLI lists them. */
export const ENGINE_MAP_FORMATS: readonly EngineMapFormat[] = [
  "sglang",
  "vllm",
  "trtllm",
];

/** Options of {@linkcode engineMap}. */
export interface EngineMapOptions {
  /** The engine. */
  format: EngineMapFormat;
  /**
   * Layer ids, one per row of `phy2log` (TensorRT-LLM keys its assignments
   * by layer id). Default `0, 1, ...`.
   */
  layers?: number[];
}

function checkPhy2log(phy2log: unknown): number[][] {
  if (!Array.isArray(phy2log) || phy2log.length === 0) {
    throw new TypeError(
      `phy2log must be a non-empty array of rows (layers x physical slots): current value is ${
        show(phy2log)
      }`,
    );
  }
  const slots = Array.isArray(phy2log[0]) ? phy2log[0].length : 0;
  phy2log.forEach((row, l) => {
    if (!Array.isArray(row) || row.length !== slots || slots === 0) {
      throw new TypeError(
        `phy2log[${l}] must be an array of ${
          slots || "one or more"
        } expert ids like row 0: current value is ${show(row)}`,
      );
    }
    row.forEach((e, p) => {
      if (!Number.isSafeInteger(e) || e < 0) {
        throw new RangeError(
          `phy2log[${l}][${p}] must be a non-negative integer expert id: current value is ${
            show(e)
          }`,
        );
      }
    });
  });
  return phy2log as number[][];
}

/**
 * Writes a placement (physical slot -> logical expert, one row per layer,
 * slots GPU-major as EPLB's `phy2log`) in the file a serving engine loads:
 *
 * - `sglang`: the JSON that `--init-expert-location FILE` takes,
 *   `{"physical_to_logical_map": [[...], ...]}`, one row per layer of the
 *   model (SGLang counts dense layers too);
 * - `vllm`: the JSON that the custom initial expert map proposal for vLLM's
 *   EPLB (`eplb_config.initial_expert_map_path`, vllm-project/vllm pull
 *   request 49572) takes: a list of per-layer physical-to-logical lists, one
 *   per MoE layer;
 * - `trtllm`: TensorRT-LLM's `moe_load_balancer.yaml`: `num_slots`,
 *   `initial_global_assignments` (layer id -> the logical expert of each
 *   slot, rank-major) and `layer_updates_per_iter: 0` (a static placement),
 *   as its `generate_eplb_config.py` writes them.
 *
 * @param phy2log Logical expert of each physical slot, `layers x slots`.
 * @param options The format and the layer ids (see {@linkcode EngineMapOptions}).
 * @returns The file's text, ending in a newline.
 * @throws {TypeError} If `phy2log` is not a non-empty rectangular array, the
 * format is unknown, or `layers` does not give one id per row.
 * @throws {RangeError} If an expert id is not a non-negative integer.
 *
 * @example
 * ```ts
 * import { engineMap } from "@moelab/balance/serving";
 * import assert from "node:assert/strict";
 *
 * const phy2log = [[0, 1, 2, 0], [2, 1, 0, 1]];
 * const sglang = JSON.parse(engineMap(phy2log, { format: "sglang" }));
 * assert.deepEqual(sglang.physical_to_logical_map, phy2log);
 * assert.deepEqual(JSON.parse(engineMap(phy2log, { format: "vllm" })), phy2log);
 * const yaml = engineMap(phy2log, { format: "trtllm", layers: [3, 4] });
 * assert.match(yaml, /^num_slots: 4$/m);
 * assert.match(yaml, /^  4: \[2, 1, 0, 1\]$/m);
 * ```
 */
export function engineMap(
  phy2log: number[][],
  options: EngineMapOptions,
): string {
  const rows = checkPhy2log(phy2log);
  const format = options?.format;
  if (!ENGINE_MAP_FORMATS.includes(format)) {
    throw new TypeError(
      `options.format must be one of ${
        ENGINE_MAP_FORMATS.join(", ")
      }: current value is ${show(format)}`,
    );
  }
  const layers = options.layers ?? rows.map((_, l) => l);
  if (
    !Array.isArray(layers) || layers.length !== rows.length ||
    layers.some((l) => !Number.isSafeInteger(l) || l < 0)
  ) {
    throw new TypeError(
      `options.layers must give one non-negative layer id per row of phy2log (${rows.length}): current value is ${
        show(layers)
      }`,
    );
  }
  const lines = rows.map((r) => `[${r.join(", ")}]`);
  switch (format) {
    case "sglang":
      return `{"physical_to_logical_map": [\n  ${lines.join(",\n  ")}\n]}\n`;
    case "vllm":
      return `[\n  ${lines.join(",\n  ")}\n]\n`;
    case "trtllm":
      return [
        `num_slots: ${rows[0].length}`,
        "initial_global_assignments:",
        ...lines.map((line, i) => `  ${layers[i]}: ${line}`),
        "layer_updates_per_iter: 0",
        "",
      ].join("\n");
  }
}
