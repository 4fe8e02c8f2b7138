import { readdirSync, readFileSync, statSync } from "node:fs";
import { basename, join } from "node:path";
import { show } from "../validate.ts";
import { type EngineLoads, engineLoads } from "./engine_loads.ts";

/**
 * Reads a serving engine's load recording from disk (see
 * {@linkcode engineLoads} for the formats). A directory stands for one
 * recording over ranks: every `.safetensors` file in it but TensorRT-LLM's
 * `*_raw.safetensors`, and every `.pt` file, summed per step and layer.
 *
 * @param path A file, or a directory of per-rank files.
 * @param options `experts`: logical experts where the recording does not
 * say (see {@linkcode engineLoads}).
 * @returns The loads per step, layer and logical expert.
 * @throws {RangeError} If the path does not exist or a directory holds no
 * such file.
 * @throws {SyntaxError | TypeError} As {@linkcode engineLoads}, naming the
 * file.
 *
 * @example TensorRT-LLM statistics of two ranks, summed
 * ```ts
 * import { readEngineLoads } from "@moelab/balance/serving";
 * import assert from "node:assert/strict";
 *
 * const both = readEngineLoads("data/fixtures/trtllm");
 * const one = readEngineLoads("data/fixtures/trtllm/rank0.safetensors");
 * assert.equal(both.format, "trtllm");
 * assert.ok(both.counts.reduce((a, b) => a + b) > one.counts.reduce((a, b) => a + b));
 * ```
 */
export function readEngineLoads(
  path: string,
  options: { experts?: number } = {},
): EngineLoads {
  if (typeof path !== "string") {
    throw new TypeError(
      `path must be a string: current value is ${show(path)}`,
    );
  }
  let isDir: boolean;
  try {
    isDir = statSync(path).isDirectory();
  } catch {
    throw new RangeError(
      `path must name an existing file or directory: current value is ${
        show(path)
      }`,
    );
  }
  const files = isDir
    ? readdirSync(path).filter((f) =>
      (f.endsWith(".safetensors") && !f.endsWith("_raw.safetensors")) ||
      f.endsWith(".pt")
    ).sort().map((f) => join(path, f))
    : [path];
  if (files.length === 0) {
    throw new RangeError(
      `${path} is a directory without .safetensors or .pt files`,
    );
  }
  return engineLoads(files.map((f) => readFileSync(f)), {
    names: files.map((f) => isDir ? join(basename(path), basename(f)) : f),
    ...options,
  });
}
