import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { runSimulation } from "../sim/run.ts";
import { simReportHtml } from "./html_report.ts";

describe("simReportHtml", () => {
  const result = runSimulation({
    steps: 6,
    layers: 2,
    tokens: 128,
    experts: 8,
    topK: 2,
  });

  test("is one self-contained page: no scripts, links, fonts or URLs", () => {
    const html = simReportHtml(result);
    assert.doesNotMatch(html, /<script|<link|<img|<iframe|@import|src=/i);
    // The only URL is the SVG namespace, which no browser fetches.
    const urls = html.match(/https?:\/\/[^"'\s)]+/g) ?? [];
    assert.deepEqual(
      [...new Set(urls)],
      ["http://www.w3.org/2000/svg"],
    );
    assert.equal(html.match(/<svg xmlns=/g)?.length, 2);
  });

  test("renders every method field and any extra summary section", () => {
    const summary = {
      config: { experts: 8 },
      backend: "cpu",
      methods: result.methods.map((m, i) => ({ ...m, optimalityGap: i / 4 })),
      expertParallel: { gpus: 4, maxOverMean: 1.25 },
    };
    const html = simReportHtml(result, summary);
    assert.match(html, /<th>optimality gap<\/th>/);
    assert.match(html, /<td class="num">0.25<\/td>/);
    assert.match(html, /<h2>expert parallel<\/h2>/);
    assert.match(html, /<td>gpus<\/td><td class="num">4<\/td>/);
    assert.match(html, /<th>MaxVio_batch<\/th>/);
  });
});
