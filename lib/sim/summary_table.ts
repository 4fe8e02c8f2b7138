// The summary of a run as text and as the `summary.json` object: what the
// command line prints, with no dataframe or plotting package loaded.
import { EP_STRATEGIES } from "./ep_config.ts";
import { eplbGroupsOf } from "./_ep_parts.ts";
import { eplbPolicy } from "../placement/eplb.ts";
import type { SimResult } from "./run.ts";
import { gapReference } from "./eval_window.ts";
import { isGrouped } from "../ops/route.ts";

/**
 * The `summary.json` object of a run: `{ config, backend, methods }`.
 *
 * @example
 * ```ts
 * import { runSimulation, simSummary } from "@moelab/balance";
 * import assert from "node:assert/strict";
 *
 * const s = simSummary(runSimulation({ steps: 2, layers: 1, tokens: 64, experts: 8, topK: 2 }));
 * assert.equal(s.backend, "cpu");
 * assert.deepEqual(s.methods.map((m) => m.method), ["greedy", "loss-free"]);
 * ```
 */
export function simSummary(result: SimResult): {
  config: Record<string, unknown>;
  backend: string;
  methods: SimResult["methods"];
} {
  return {
    config: {
      ...result.config,
      workload: result.workload,
      // The steps whose exact optimum the optimality gap compares against.
      optimumSteps: result.optimumSteps,
      // Under a group limit, what stands for the optimum.
      ...(grouped(result.config) && result.optimumSteps.length > 0
        ? { optimum: optimumNote(result.config) }
        : {}),
    },
    backend: result.backend,
    methods: result.methods,
  };
}

/** Whether a configuration routes group-limited (fewer groups kept than there are). */
const grouped: (c: SimResult["config"]) => boolean = isGrouped;

/** `" within 4 of 8 groups"` for group-limited routing, else nothing. */
export function groupPhrase(c: SimResult["config"]): string {
  return grouped(c) ? ` within ${c.topGroups} of ${c.groups} groups` : "";
}

/**
 * Under a group limit, what stands for the optimum of the gaps
 * ({@linkcode gapReference}): the upper end of the bracket of the
 * group-limited optimum, or the relaxation that drops the limit where
 * `exact(groupLimit=relax)` runs; the gaps are upper bounds of the gaps to
 * the group-limited optimum either way.
 */
function optimumNote(c: SimResult["config"]): string {
  const { reference, byExact } = gapReference(c);
  return reference === "relaxation"
    ? "the exact optimum without the group limit (a relaxation, above the group-limited optimum: the gaps are upper bounds)"
    : `the upper end of the bracket of the group-limited optimum (at or above it: the gaps are upper bounds${
      byExact
        ? "; exact routes the lower end, so its gap is the bracket's width"
        : ""
    })`;
}

/**
 * What the optimality gap compares against, for a caption: the exact
 * optimum, or under a group limit {@linkcode optimumNote}'s reference.
 */
export function optimumPhrase(c: SimResult["config"], steps: number): string {
  if (steps === 0) return "";
  return grouped(c)
    ? `; optimality gap on ${steps} of them against ${optimumNote(c)}`
    : `; optimality gap against the exact optimum on ${steps} of them`;
}

function fmt(x: number | null, digits = 3): string {
  if (x === null) return "never";
  return Number.isFinite(x) ? x.toFixed(digits) : String(x);
}

/**
 * The summary as a fixed-width text table, one row per method.
 *
 * @example
 * ```ts
 * import { runSimulation, formatSummaryTable } from "@moelab/balance";
 * import assert from "node:assert/strict";
 *
 * const t = formatSummaryTable(runSimulation({ steps: 2, layers: 1, tokens: 64, experts: 8, topK: 2 }));
 * assert.match(t, /MaxVio_global/);
 * ```
 */
export function formatSummaryTable(result: SimResult): string {
  const header = [
    "method",
    "causal",
    "MaxVio_batch",
    "MaxVio_global",
    "score retention",
    "optimality gap",
    "steps to balance",
    "wall ms",
  ];
  const rows = result.methods.map((m) => [
    m.method,
    m.causal ? "yes" : "no",
    fmt(m.maxVioBatch),
    fmt(m.maxVioGlobal),
    fmt(m.scoreRetention, 4),
    m.optimalityGap === null ? "-" : `${(100 * m.optimalityGap).toFixed(2)}%`,
    m.stepsToBalance === null ? "never" : String(m.stepsToBalance),
    fmt(m.wallMs, 0),
  ]);
  const widths = header.map((h, c) =>
    Math.max(h.length, ...rows.map((r) => r[c].length))
  );
  const line = (cells: string[]) =>
    cells.map((cell, c) =>
      c === 0 ? cell.padEnd(widths[c]) : cell.padStart(widths[c])
    ).join(
      "  ",
    );
  const c = result.config;
  const title =
    `${c.layers} layers x ${c.steps} steps x ${c.tokens} tokens, ${c.experts} experts, top-${c.topK}${
      groupPhrase(c)
    }, ${c.gate} gate; evaluation: last ${
      Math.round(c.evalFraction * 100)
    }% of steps${optimumPhrase(c, result.optimumSteps.length)}`;
  return [
    title,
    line(header),
    line(widths.map((w) => "-".repeat(w))),
    ...rows.map(line),
    ...formatEpSection(result),
  ].join("\n");
}

/**
 * What the EP stage's strategies made of the nodes, one clause each, for
 * the EP table's first line and the HTML report: which strategies' dispatch
 * the group limit confined to `topGroups` nodes a token (their placements
 * kept every group on one node, on every layer and step and for every
 * method), which partly, which not (a group on several nodes); and where
 * the hierarchical strategies ran EPLB's global policy (EPLB takes its
 * hierarchical one only where the nodes divide the groups; the sim hands
 * it the routing groups, or one group a node without them). Empty on one
 * node or without an EP stage.
 */
export function epNodeNotes(result: SimResult): string[] {
  const ep = result.ep;
  if (!ep) return [];
  const names = ep.config.strategies.length > 0
    ? ep.config.strategies
    : EP_STRATEGIES;
  const { groups, topGroups } = result.config;
  const nodes = ep.config.gpus / (ep.config.gpusPerNode ?? ep.config.gpus);
  const notes: string[] = [];
  if (nodes === 1) return notes;
  if (topGroups >= nodes && topGroups < groups) {
    // Every node within reach: the limit confines no token's dispatch.
    notes.push(
      `no node-limited dispatch (a token's ${topGroups} groups can cover all ${nodes} nodes)`,
    );
  } else if (topGroups < groups) {
    const share = (k: string) => ep.summaries.map((s) => s[k].nodeLimited);
    const all = names.filter((k) => share(k).every((x) => x === 1));
    const none = names.filter((k) => share(k).every((x) => x === 0));
    const partly = names.filter((k) => !all.includes(k) && !none.includes(k));
    if (all.length) {
      notes.push(
        `node-limited dispatch (at most ${topGroups} nodes a token) under ${
          all.join(", ")
        }`,
      );
    }
    if (partly.length) {
      notes.push(`on some layers and steps under ${partly.join(", ")}`);
    }
    if (none.length) {
      notes.push(
        `not under ${none.join(", ")} (a group's experts on several nodes)`,
      );
    }
  }
  const hier = names.filter((k) =>
    k === "eplb-hierarchical" || k === "hierarchical-lp"
  );
  if (
    hier.length &&
    eplbPolicy(eplbGroupsOf(groups, nodes), nodes) === "global"
  ) {
    notes.push(
      `${hier.join(" and ")} take${
        hier.length === 1 ? "s" : ""
      } EPLB's global policy (${groups} groups are no multiple of ${nodes} nodes)`,
    );
  }
  return notes;
}

/**
 * The EP section of the summary table: per method, GPU max/mean and the
 * modelled step time of each configured strategy, and each strategy's
 * throughput gain over static EP; on several nodes, the network bytes
 * per step too. Empty when the stage was off.
 */
export function formatEpSection(result: SimResult): string[] {
  const ep = result.ep;
  if (!ep) return [];
  const c = ep.config;
  const names = c.strategies.length > 0 ? c.strategies : EP_STRATEGIES;
  const others = names.filter((s) => s !== "static");
  const nodes = c.gpus / (c.gpusPerNode ?? c.gpus);
  const header = ["method", ...names.map((s) => `${s} max/mean`)];
  header.push(...names.map((s) => `${s} ms`));
  header.push(...others.map((s) => `${s} gain`));
  if (nodes > 1) header.push(...names.map((s) => `${s} net GB`));
  const rows = result.methods.map((m, i) => {
    const s = ep.summaries[i];
    return [
      m.method,
      ...names.map((k) => s[k].gpuMaxOverMean.toFixed(3)),
      ...names.map((k) => s[k].stepTimeMs.toFixed(2)),
      ...others.map((k) => `${(s[k].throughputGain * 100).toFixed(1)}%`),
      ...(nodes > 1 ? names.map((k) => s[k].interNodeGB.toFixed(2)) : []),
    ];
  });
  const widths = header.map((h, j) =>
    Math.max(h.length, ...rows.map((r) => r[j].length))
  );
  const line = (cells: string[]) =>
    cells.map((x, j) => j === 0 ? x.padEnd(widths[j]) : x.padStart(widths[j]))
      .join("  ");
  const where = nodes > 1
    ? `${c.gpus} GPUs in ${nodes} nodes, ${c.gpus / nodes} per node`
    : `${c.gpus} GPUs`;
  const slots = c.redundant === null
    ? `${c.replicas} replicas per expert`
    : `${c.redundant} redundant slots`;
  return [
    "",
    `Expert parallelism: ${where}, ${slots} (EPLB: equal split; LP: MicroMoE ${c.scheduler} scheduling${
      names.includes("symmetric-lp")
        ? ` on the ${c.placement} placement and the asymmetric one`
        : ""
    }); step time: all layers, ${c.hardware.toUpperCase()} ${
      nodes > 1 ? "NVLink and network" : "NVLink"
    } model${
      epNodeNotes(result).map((n) => `; ${n}`).join("")
    }; gains over static EP${
      c.sampleEvery > 1
        ? `; every ${c.sampleEvery}th step of the evaluation window`
        : ""
    }`,
    line(header),
    line(widths.map((w) => "-".repeat(w))),
    ...rows.map(line),
  ];
}
