import { isNpy } from "./parse_npy_tensor.ts";
import { isSafetensors } from "./parse_safetensors.ts";
import { isZip } from "./_zip.ts";

/** The container formats of serving-engine recordings. */
export type EngineFileKind = "torch" | "safetensors" | "npy";

/**
 * Tells a serving-engine recording by its first bytes, whatever its name:
 * a zip archive (`PK\x03\x04`: `torch.save`), a safetensors header (8-byte
 * length, then `{`), or a `.npy` array (`\x93NUMPY`). Anything else (CSV,
 * JSON, parquet) gives `null`.
 *
 * @param bytes The file's bytes (the first few suffice).
 * @returns The kind, or `null`.
 *
 * @example
 * ```ts
 * import { engineFileKind } from "@moelab/balance/serving";
 * import { readFileSync } from "node:fs";
 * import assert from "node:assert/strict";
 *
 * assert.equal(engineFileKind(readFileSync("data/fixtures/sglang_stat.pt")), "torch");
 * assert.equal(engineFileKind(readFileSync("data/fixtures/loads_long.csv")), null);
 * ```
 */
export function engineFileKind(bytes: Uint8Array): EngineFileKind | null {
  if (isZip(bytes)) return "torch";
  if (isNpy(bytes)) return "npy";
  if (isSafetensors(bytes)) return "safetensors";
  return null;
}
