import { show } from "../validate.ts";
import { engineFileKind } from "./engine_file_kind.ts";
import { parseNpyTensor } from "./parse_npy_tensor.ts";
import { parseSafetensors } from "./parse_safetensors.ts";
import { parseTorchSave } from "./parse_torch_save.ts";
import type { Tensor } from "./tensor.ts";

/** The recordings {@linkcode engineLoads} reads. */
export type EngineLoadFormat =
  | "sglang-stat"
  | "sglang-per-pass"
  | "trtllm"
  | "routed-experts";

/** Expert loads per step and layer, as a serving engine recorded them. */
export interface EngineLoads {
  /** Which recording the loads come from. */
  format: EngineLoadFormat;
  /** Step ids, ascending (SGLang `stat`: buffer row; `per_pass`: forward pass id; TensorRT-LLM: iteration; routed experts: 0). */
  steps: number[];
  /** Layer ids, ascending. */
  layers: number[];
  /** Logical experts per layer. */
  experts: number;
  /** `Float64Array` (steps x layers x experts, row-major): tokens routed to each logical expert. */
  counts: Float64Array;
}

/** Options of {@linkcode engineLoads}. */
export interface EngineLoadsOptions {
  /** File names for error messages, one per file. Default `file 0`, `file 1`, ... */
  names?: string[];
  /**
   * Logical experts, for recordings that do not say (routed experts, and
   * SGLang `per_pass` maps): at least the largest expert id plus 1.
   * Default: the largest id seen plus 1.
   */
  experts?: number;
}

type Cells = Map<number, Map<number, Float64Array>>;

class Builder {
  cells: Cells = new Map();
  experts = 0;
  add(step: number, layer: number, expert: number, count: number) {
    let byLayer = this.cells.get(step);
    if (!byLayer) this.cells.set(step, byLayer = new Map());
    let row = byLayer.get(layer);
    if (!row) byLayer.set(layer, row = new Float64Array(0));
    if (expert >= row.length) {
      const grown = new Float64Array(Math.max(expert + 1, this.experts));
      grown.set(row);
      byLayer.set(layer, row = grown);
    }
    row[expert] += count;
    this.experts = Math.max(this.experts, expert + 1);
  }
}

function isInt(t: unknown): t is Tensor {
  const x = t as Tensor;
  if (x === null || typeof x !== "object" || !Array.isArray(x.shape)) {
    return false;
  }
  return x.data instanceof Int32Array ||
    (x.data instanceof Float64Array && x.dtype === "int64");
}

function field(what: string, name: string, want: string, got: unknown): never {
  const t = got as Tensor;
  const has = got === undefined
    ? "it is missing"
    : t?.shape
    ? `it is ${t.dtype} of shape [${t.shape.join(", ")}]`
    : `it is ${show(got)}`;
  throw new TypeError(`${what}: ${name} must be ${want}: ${has}`);
}

function count(what: string, name: string, v: number): number {
  if (!(v >= 0)) {
    throw new RangeError(`${what}: ${name} holds the negative count ${v}`);
  }
  return v;
}

function sglangStat(m: Map<unknown, unknown>, what: string, b: Builder) {
  const t = m.get("logical_count");
  if (!isInt(t) || t.shape.length !== 3) {
    field(
      what,
      "logical_count",
      "an integer tensor [steps, layers, logical_experts]",
      t,
    );
  }
  const [steps, layers, experts] = t.shape;
  for (let s = 0; s < steps; s++) {
    for (let l = 0; l < layers; l++) {
      for (let e = experts - 1; e >= 0; e--) {
        const v = t.data[(s * layers + l) * experts + e];
        b.add(s, l, e, count(what, `logical_count[${s}][${l}][${e}]`, v));
      }
    }
  }
}

function sglangPerPass(m: Map<unknown, unknown>, what: string, b: Builder) {
  const map = m.get("last_physical_to_logical_map");
  if (!isInt(map) || map.shape.length !== 2) {
    field(
      what,
      "last_physical_to_logical_map",
      "an integer tensor [layers, physical_experts]",
      map,
    );
  }
  const [layers, physical] = map.shape;
  const records = m.get("records");
  if (!Array.isArray(records)) {
    field(what, "records", "a list of dicts", records);
  }
  records.forEach((r: unknown, i: number) => {
    const rec = r instanceof Map ? r : new Map();
    const pass = rec.get("forward_pass_id");
    if (!Number.isSafeInteger(pass)) {
      field(what, `records[${i}].forward_pass_id`, "an integer", pass);
    }
    const c = rec.get("global_physical_count");
    if (
      !isInt(c) || c.shape.length !== 2 || c.shape[0] !== layers ||
      c.shape[1] !== physical
    ) {
      field(
        what,
        `records[${i}].global_physical_count`,
        `an integer tensor [${layers}, ${physical}] (the shape of last_physical_to_logical_map)`,
        c,
      );
    }
    for (let l = 0; l < layers; l++) {
      for (let p = 0; p < physical; p++) {
        const e = map.data[l * physical + p];
        if (!(e >= 0)) {
          throw new RangeError(
            `${what}: last_physical_to_logical_map[${l}][${p}] is ${e}, not a logical expert`,
          );
        }
        const name = `records[${i}].global_physical_count[${l}][${p}]`;
        b.add(
          pass as number,
          l,
          e,
          count(what, name, c.data[l * physical + p]),
        );
      }
    }
  });
}

function trtllm(stats: Map<string, Tensor>, what: string, b: Builder) {
  for (const [key, t] of stats) {
    const [iter, layer] = key.split("_").map(Number);
    if (!isInt(t) || t.shape.length !== 1) {
      field(
        what,
        `tensor ${JSON.stringify(key)}`,
        "an integer vector [num_experts]",
        t,
      );
    }
    for (let e = t.shape[0] - 1; e >= 0; e--) {
      b.add(iter, layer, e, count(what, `tensor "${key}"[${e}]`, t.data[e]));
    }
  }
}

function routed(t: Tensor, what: string, name: string, b: Builder) {
  if (!isInt(t) || t.shape.length !== 3) {
    field(
      what,
      name,
      "an integer tensor [tokens, layers, top_k] of routed experts",
      t,
    );
  }
  const [tokens, layers, k] = t.shape;
  for (let l = 0; l < layers; l++) b.add(0, l, 0, 0);
  for (let i = 0; i < tokens; i++) {
    for (let l = 0; l < layers; l++) {
      for (let j = 0; j < k; j++) {
        const e = t.data[(i * layers + l) * k + j];
        if (e === -1) continue; // padding, as SGLang writes it
        if (!(e >= 0)) {
          throw new RangeError(
            `${what}: ${name}[${i}][${l}][${j}] is ${e}, not an expert id`,
          );
        }
        b.add(0, l, e, 1);
      }
    }
  }
}

function classify(
  bytes: Uint8Array,
  what: string,
  b: Builder,
): EngineLoadFormat {
  const kind = engineFileKind(bytes);
  if (kind === "npy") {
    routed(parseNpyTensor(bytes), what, "the array", b);
    return "routed-experts";
  }
  if (kind === "safetensors") {
    const tensors = parseSafetensors(bytes, { name: what });
    const keys = [...tensors.keys()];
    if (keys.length > 0 && keys.every((k) => /^\d+_\d+$/.test(k))) {
      trtllm(tensors, what, b);
      return "trtllm";
    }
    if (keys.length === 1) {
      routed(
        tensors.get(keys[0])!,
        what,
        `tensor ${JSON.stringify(keys[0])}`,
        b,
      );
      return "routed-experts";
    }
    throw new TypeError(
      `${what}: a safetensors load file holds TensorRT-LLM statistics (keys "{iter}_{layer}") or one routed-experts tensor: its keys are ${
        keys.slice(0, 5).map((k) => JSON.stringify(k)).join(", ")
      }${keys.length > 5 ? ", ..." : ""}`,
    );
  }
  if (kind === "torch") {
    const saved = parseTorchSave(bytes, { name: what });
    if (saved instanceof Map && saved.has("logical_count")) {
      sglangStat(saved, what, b);
      return "sglang-stat";
    }
    if (
      saved instanceof Map &&
      (saved.has("records") || saved.has("last_physical_to_logical_map"))
    ) {
      sglangPerPass(saved, what, b);
      return "sglang-per-pass";
    }
    if (saved instanceof Map) {
      throw new TypeError(
        `${what}: a torch.save load file must hold logical_count (SGLang stat) or records and last_physical_to_logical_map (SGLang per_pass): its keys are ${
          [...saved.keys()].map((k) => JSON.stringify(k)).join(", ")
        }`,
      );
    }
    routed(saved as Tensor, what, "the saved tensor", b);
    return "routed-experts";
  }
  throw new SyntaxError(
    `${what} is not a torch.save, safetensors or .npy file (judged by its first bytes)`,
  );
}

/**
 * Reads the expert loads a serving engine recorded, telling the format by
 * content, not by name:
 *
 * - SGLang's expert distribution recorder (`python/sglang/srt/eplb/
 *   expert_distribution.py`), `stat` mode: a `torch.save` dict whose
 *   `logical_count` is int32 `[steps, layers, logical_experts]`;
 * - its `per_pass` (and `per_token`) mode: a dict of `records`, each with a
 *   `forward_pass_id` and `global_physical_count [layers,
 *   physical_experts]`, and `last_physical_to_logical_map [layers,
 *   physical_experts]`, by which physical counts add up to logical ones;
 * - TensorRT-LLM's load-balancer statistics: one safetensors file per rank,
 *   keys `"{iter}_{layer}"`, int64 `[num_experts]`;
 * - per-token routed experts, as vLLM and SGLang return them for router
 *   replay: int32 `[tokens, layers, top_k]` as `.npy`, `torch.save` or a
 *   one-tensor safetensors file (`-1` is padding), counted per layer as one
 *   step.
 *
 * Several files (ranks) add up per step and layer, as the engines' own
 * tools sum them; they must be of one format.
 *
 * @param files The files' bytes: one, or one per rank.
 * @param options Names for errors and the expert count (see
 * {@linkcode EngineLoadsOptions}).
 * @returns The loads per step, layer and logical expert.
 * @throws {SyntaxError} If a file is none of the containers above, or its
 * pickle holds anything but data (see `parseTorchSave`).
 * @throws {TypeError} If a field is missing or of the wrong type or shape;
 * the message names the file and the field.
 * @throws {RangeError} If a count is negative, an expert id is out of range,
 * or files disagree on their format.
 *
 * @example An SGLang `stat` recording, summed over steps for one layer
 * ```ts
 * import { engineLoads } from "@moelab/balance/serving";
 * import { readFileSync } from "node:fs";
 * import assert from "node:assert/strict";
 *
 * const loads = engineLoads(readFileSync("data/fixtures/sglang_stat.pt"));
 * assert.equal(loads.format, "sglang-stat");
 * const { steps, layers, experts, counts } = loads;
 * assert.equal(counts.length, steps.length * layers.length * experts);
 * ```
 */
export function engineLoads(
  files: Uint8Array | Uint8Array[],
  options: EngineLoadsOptions = {},
): EngineLoads {
  const list = files instanceof Uint8Array ? [files] : files;
  if (
    !Array.isArray(list) || list.length === 0 ||
    list.some((f) => !(f instanceof Uint8Array))
  ) {
    throw new TypeError(
      `files must be a Uint8Array or a non-empty array of them: current value is ${
        show(files)
      }`,
    );
  }
  const b = new Builder();
  let format: EngineLoadFormat | undefined;
  list.forEach((bytes, i) => {
    const what = options.names?.[i] ?? `file ${i}`;
    const f = classify(bytes, what, b);
    if (format !== undefined && f !== format) {
      throw new RangeError(
        `${what} is a ${f} recording but the files before it are ${format}: read one format at a time`,
      );
    }
    format = f;
  });
  let experts = b.experts;
  if (options.experts !== undefined) {
    if (!Number.isSafeInteger(options.experts) || options.experts < experts) {
      throw new RangeError(
        `options.experts must be an integer of at least ${experts} (the largest expert id plus 1): current value is ${
          show(options.experts)
        }`,
      );
    }
    experts = options.experts;
  }
  const steps = [...b.cells.keys()].sort((x, y) => x - y);
  const layerSet = new Set<number>();
  for (const byLayer of b.cells.values()) {
    for (const l of byLayer.keys()) layerSet.add(l);
  }
  const layers = [...layerSet].sort((x, y) => x - y);
  const counts = new Float64Array(steps.length * layers.length * experts);
  steps.forEach((s, si) => {
    const byLayer = b.cells.get(s)!;
    layers.forEach((l, li) => {
      const row = byLayer.get(l);
      if (row) counts.set(row, (si * layers.length + li) * experts);
    });
  });
  return { format: format!, steps, layers, experts, counts };
}
