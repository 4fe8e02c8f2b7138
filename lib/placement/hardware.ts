// Hardware presets of the multi-node step-time model: per-GPU compute,
// NVLink inside a node and the scale-out network between nodes, each
// figure with its source (docs/algorithms.md section 15).
import { checkChoice } from "../validate.ts";

/** One GPU's rates as the step-time model uses them (effective, not peak). */
export interface Hardware {
  /** Effective matrix-multiply throughput of one GPU, FLOP/s. */
  flops: number;
  /** Effective NVLink all-to-all bandwidth of one GPU, bytes/s in each direction. */
  nvlink: number;
  /** Effective scale-out (InfiniBand/RDMA) bandwidth of one GPU's NIC, bytes/s in each direction. */
  network: number;
  /** Where the figures come from. */
  source: string;
}

/** Names of {@linkcode HARDWARE}. */
export const HARDWARE_NAMES = ["h100", "h800", "h200"] as const;

/** A hardware preset name. */
export type HardwareName = typeof HARDWARE_NAMES[number];

// 989 TFLOP/s: NVIDIA's dense BF16 peak of the H100 SXM (the 1979 figure
// assumes 2:4 sparsity), the same Hopper SM in the H800 and H200; MoE
// expert GEMMs reach roughly 60 % of it. An assumption, not a measurement.
const HOPPER_FLOPS = 0.6 * 989e12;

/**
 * The hardware presets, per GPU.
 *
 * - `h100`: H100 SXM, NVLink 4 at 900 GB/s per GPU both directions
 *   together, 450 GB/s each way (NVIDIA's H100 datasheet), of which an
 *   all-to-all reaches roughly 80 %: 360 GB/s (an assumption; the
 *   single-node model of {@linkcode H100_NVLINK}). Network: one ConnectX-7
 *   400 Gb/s NIC per GPU, 50 GB/s; DeepEP's README (legacy V1 table)
 *   measures 50-51 GB/s RDMA bottleneck bandwidth at EP 64 on that NIC,
 *   so 50 GB/s.
 * - `h800`: the DeepSeek-V3 cluster. DeepSeek-V3 technical report
 *   (arXiv 2412.19437, section 3.2.2): "cross-node GPUs are fully
 *   interconnected with IB, and intra-node communications are handled via
 *   NVLink. NVLink offers a bandwidth of 160 GB/s, roughly 3.2 times that
 *   of IB (50 GB/s)". DeepEP's README measures on H800 ("~160 GB/s NVLink
 *   maximum bandwidth", CX7 400 Gb/s "~50 GB/s maximum bandwidth", V3
 *   pretraining setting, hidden 7168, top-4 groups, top-8, FP8 dispatch,
 *   BF16 combine): intranode EP 8 153 GB/s dispatch, 158 GB/s combine;
 *   internode EP 64 51 GB/s dispatch, 50 GB/s combine. The preset takes
 *   the measured 153 and 50 GB/s.
 * - `h200`: H200 SXM, the H100's SM and NVLink 4 (900 GB/s per GPU, NVIDIA's
 *   H200 datasheet) with more HBM; the step-time model sees the same rates
 *   as `h100` (it models no memory-bound phase).
 *
 * @example
 * ```ts
 * import { HARDWARE } from "@moelab/balance";
 * import assert from "node:assert/strict";
 *
 * assert.equal(HARDWARE.h800.nvlink / HARDWARE.h800.network, 3.06);
 * ```
 */
export const HARDWARE: Readonly<Record<HardwareName, Readonly<Hardware>>> =
  Object.freeze({
    h100: Object.freeze({
      flops: HOPPER_FLOPS,
      nvlink: 0.8 * 450e9,
      network: 50e9,
      source:
        "H100 SXM datasheet (NVLink 900 GB/s both ways, 989 TFLOP/s dense BF16), 80 % / 60 % shares assumed; ConnectX-7 400 Gb/s, DeepEP EP 64 RDMA 50 GB/s",
    }),
    h800: Object.freeze({
      flops: HOPPER_FLOPS,
      nvlink: 153e9,
      network: 50e9,
      source:
        "DeepSeek-V3 report 3.2.2 (NVLink 160 GB/s, IB 50 GB/s); DeepEP README: intranode 153 GB/s NVLink, internode EP 64 50-51 GB/s RDMA",
    }),
    h200: Object.freeze({
      flops: HOPPER_FLOPS,
      nvlink: 0.8 * 450e9,
      network: 50e9,
      source:
        "H200 SXM datasheet (NVLink 900 GB/s, the H100's SM), as h100; ConnectX-7 400 Gb/s",
    }),
  });

/**
 * The hardware preset of a name.
 *
 * @param name One of {@linkcode HARDWARE_NAMES}.
 * @returns The preset.
 * @throws {RangeError} On an unknown name.
 *
 * @example
 * ```ts
 * import { hardwarePreset } from "@moelab/balance";
 * import assert from "node:assert/strict";
 *
 * assert.equal(hardwarePreset("h800").network, 50e9);
 * ```
 */
export function hardwarePreset(name: string): Readonly<Hardware> {
  return HARDWARE[checkChoice("hardware", name, [...HARDWARE_NAMES])];
}
