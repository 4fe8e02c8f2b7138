// Files and table lines of the simulator's expert-parallel stage.
import type { OutputFile } from "../_write_files.ts";
import pl from "nodejs-polars";
import { EP_STRATEGIES } from "./ep_stage.ts";
import type { SimResult } from "./run.ts";

/**
 * `gpu_loads(step, layer, method, strategy, gpu, tokens)` of a run as a
 * Polars DataFrame, or null when the EP stage was off.
 */
export function gpuLoadsFrame(result: SimResult): pl.DataFrame | null {
  const t = result.ep?.table;
  if (!t) return null;
  return pl.DataFrame({
    step: pl.Series("step", t.step, pl.Int32),
    layer: pl.Series("layer", t.layer, pl.Int32),
    method: pl.Series(
      "method",
      Array.from(t.method, (m) => result.labels[m]),
      pl.Utf8,
    ),
    strategy: pl.Series(
      "strategy",
      Array.from(t.strategy, (k) => EP_STRATEGIES[k]),
      pl.Utf8,
    ),
    gpu: pl.Series("gpu", t.gpu, pl.Int32),
    tokens: pl.Series("tokens", t.tokens, pl.Int32),
  });
}

/** `[["gpu_loads.parquet", writer]]`, or nothing when the EP stage was off. */
export function epFiles(
  result: SimResult,
): OutputFile[] {
  const frame = gpuLoadsFrame(result);
  return frame ? [["gpu_loads.parquet", (p) => frame.writeParquet(p)]] : [];
}

/**
 * The EP section of the summary table: per method, GPU max/mean and the
 * modelled step time of each strategy, and the gain of MicroMoE on the
 * symmetric placement over static EP. Empty when the stage was off.
 */
export function formatEpSection(result: SimResult): string[] {
  const ep = result.ep;
  if (!ep) return [];
  const c = ep.config;
  const header = ["method", ...EP_STRATEGIES.map((s) => `${s} max/mean`)];
  header.push(...EP_STRATEGIES.map((s) => `${s} ms`), "LP gain");
  const rows = result.methods.map((m, i) => {
    const s = ep.summaries[i];
    return [
      m.method,
      ...EP_STRATEGIES.map((k) => s[k].gpuMaxOverMean.toFixed(3)),
      ...EP_STRATEGIES.map((k) => s[k].stepTimeMs.toFixed(2)),
      `${(s["symmetric-lp"].throughputGain * 100).toFixed(1)}%`,
    ];
  });
  const widths = header.map((h, j) =>
    Math.max(h.length, ...rows.map((r) => r[j].length))
  );
  const line = (cells: string[]) =>
    cells.map((x, j) => j === 0 ? x.padEnd(widths[j]) : x.padStart(widths[j]))
      .join("  ");
  return [
    "",
    `Expert parallelism: ${c.gpus} GPUs, ${c.replicas} replicas per expert (EPLB: equal split; LP: MicroMoE ${c.scheduler} scheduling on the ${c.placement} placement and the asymmetric one); step time: all layers, H100 NVLink model`,
    line(header),
    line(widths.map((w) => "-".repeat(w))),
    ...rows.map(line),
  ];
}
