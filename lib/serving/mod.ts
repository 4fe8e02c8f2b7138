/**
 * The serving engines' files, without PyTorch and without any npm package:
 * read the expert loads SGLang, TensorRT-LLM, vLLM and SGLang's router
 * replay record ({@linkcode readEngineLoads}, {@linkcode engineLoads}:
 * `torch.save` through a restricted unpickler that never executes
 * pickled code, safetensors, `.npy`, told apart by content), and write the
 * placement files they load ({@linkcode engineMap}: SGLang's
 * `--init-expert-location` JSON, vLLM's initial expert map JSON,
 * TensorRT-LLM's `moe_load_balancer.yaml`).
 *
 * `engineLoadTable` in `@moelab/balance/workload` turns the loads into the
 * long load table (`step, layer, expert, load`) the other loaders give;
 * `moelab place --loads FILE --format sglang|vllm|trtllm --out FILE` does
 * both ends from the command line.
 *
 * @example From a recording to a map SGLang loads
 * ```ts
 * import { engineMap, readEngineLoads } from "@moelab/balance/serving";
 * import { rebalanceExperts } from "@moelab/balance";
 * import assert from "node:assert/strict";
 *
 * const { layers, experts, steps, counts } = readEngineLoads("data/fixtures/sglang_stat.pt");
 * const weight = layers.map((_, l) =>
 *   Array.from({ length: experts }, (_, e) => {
 *     let sum = 0;
 *     for (let s = 0; s < steps.length; s++) sum += counts[(s * layers.length + l) * experts + e];
 *     return sum;
 *   })
 * );
 * const { phy2log } = rebalanceExperts(weight, { replicas: 12, gpus: 4, nodes: 1, groups: 1 });
 * const file = JSON.parse(engineMap(phy2log, { format: "sglang" }));
 * assert.equal(file.physical_to_logical_map.length, layers.length);
 * assert.equal(file.physical_to_logical_map[0].length, 12);
 * ```
 *
 * @module
 */
export { type Tensor, type TensorDtype } from "./tensor.ts";
export { parseTorchSave } from "./parse_torch_save.ts";
export { isSafetensors, parseSafetensors } from "./parse_safetensors.ts";
export { parseNpyTensor } from "./parse_npy_tensor.ts";
export { type EngineFileKind, engineFileKind } from "./engine_file_kind.ts";
export {
  type EngineLoadFormat,
  type EngineLoads,
  engineLoads,
  type EngineLoadsOptions,
} from "./engine_loads.ts";
export { readEngineLoads } from "./read_engine_loads.ts";
export {
  ENGINE_MAP_FORMATS,
  engineMap,
  type EngineMapFormat,
  type EngineMapOptions,
} from "./engine_map.ts";
