import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { runSimulation } from "../sim/run.ts";
import { simSummary } from "../sim/summary_table.ts";
import { simReportHtml } from "./html_report.ts";
import { stepRanges } from "./_summary_html.ts";

/** The text of every `<td>` of the first table after `heading`. */
function cellsAfter(html: string, heading: string): string[] {
  const rest = html.slice(html.indexOf(heading));
  const table = rest.slice(0, rest.indexOf("</table>"));
  return [...table.matchAll(/<td[^>]*>([^<]*)<\/td>/g)].map((m) => m[1]);
}

describe("simReportHtml", () => {
  const result = runSimulation({
    steps: 6,
    layers: 2,
    tokens: 128,
    experts: 8,
    topK: 2,
    methods: ["greedy", "loss-free(rate=1e-2)", "bip"],
    ep: { gpus: 4 },
  });
  const html = simReportHtml(result, simSummary(result));

  test("is one self-contained page: no scripts, links, fonts or URLs", () => {
    assert.doesNotMatch(html, /<script|<link|<iframe|@import/i);
    // Every src is a data URI, and no http URL is left outside them.
    const srcs = [...html.matchAll(/src="([^"]*)"/g)].map((m) => m[1]);
    assert.ok(srcs.every((s) => s.startsWith("data:image/svg+xml;base64,")));
    const outside = html.replace(/src="[^"]*"/g, "");
    assert.deepEqual(outside.match(/https?:\/\/[^"'\s)]+/g) ?? [], []);
    // Convergence, heatmap, step time, one GPU-load chart per method.
    assert.equal(srcs.length, 3 + 3);
  });

  test("the summary table is formatted as the command line prints it", () => {
    const cells = cellsAfter(html, "<h2>Summary</h2>");
    const m = result.methods[1];
    assert.ok(cells.includes(`${(100 * m.scoreRetention).toFixed(2)}%`));
    assert.ok(cells.includes(`${(100 * m.optimalityGap!).toFixed(2)}%`));
    assert.ok(cells.includes(m.maxVioBatch.toFixed(3)));
    // The method label once per row; `name` (loss-free) is not a column,
    // the options are, without JSON; EP results are not in this table.
    assert.equal(cells.filter((c) => c === "loss-free(rate=1e-2)").length, 1);
    assert.ok(!cells.includes("loss-free"));
    assert.ok(cells.includes("rate=0.01"));
    assert.deepEqual(cells.filter((c) => /[{}"\[\]]|&quot;/.test(c)), []);
    assert.doesNotMatch(html, /static=|gpuMaxOverMean/);
  });

  test("the EP table has each method's results by strategy", () => {
    const cells = cellsAfter(html, "<h2>Expert parallelism</h2>");
    const ep = result.ep!.summaries[2];
    const names = ["static", "eplb", "symmetric-lp", "asymmetric-lp"];
    assert.deepEqual(cells.slice(2 * 12, 3 * 12), [
      "bip",
      ...names.map((s) => ep[s].gpuMaxOverMean.toFixed(3)),
      ...names.map((s) => ep[s].stepTimeMs.toFixed(2)),
      // Each strategy's gain over static EP, from the step times.
      ...names.slice(1).map((s) =>
        `${(100 * (ep.static.stepTimeMs / ep[s].stepTimeMs - 1)).toFixed(1)}%`
      ),
    ]);
  });

  test("the configuration is folded, the optimum's steps as ranges", () => {
    assert.match(html, /<details class="config"><summary>Configuration/);
    assert.doesNotMatch(html, /"optimumSteps"/);
    assert.match(html, new RegExp(stepRanges(result.optimumSteps)));
    assert.equal(stepRanges([7, 1, 2, 3, 9, 10]), "1–3, 7, 9–10");
    assert.equal(stepRanges([]), "");
  });

  test("no EP section without the EP stage", () => {
    const plain = runSimulation({
      steps: 4,
      layers: 1,
      tokens: 64,
      experts: 8,
      topK: 2,
      ep: null,
    } as never);
    const page = simReportHtml(plain);
    assert.doesNotMatch(page, /Expert parallelism/);
    assert.equal(page.match(/<img /g)?.length, 2);
  });

  test("renders every method field and any extra summary section", () => {
    const summary = {
      config: { experts: 8 },
      backend: "cpu",
      methods: result.methods.map((m, i) => ({
        ...m,
        optimalityGap: i / 4,
        tokensPerSecond: 1000 + i,
      })),
      expertParallel: { gpus: 4, maxOverMean: 1.25 },
    };
    const page = simReportHtml(result, summary);
    assert.match(page, /<th class="num">optimality gap<\/th>/);
    assert.match(page, /<td class="num">25.00%<\/td>/);
    assert.match(page, /<th class="num">tokens per second<\/th>/);
    assert.match(page, /<td class="num">1002<\/td>/);
    assert.match(page, /<h2>expert parallel<\/h2>/);
    assert.match(page, /<td>gpus<\/td><td class="num">4<\/td>/);
  });
});
