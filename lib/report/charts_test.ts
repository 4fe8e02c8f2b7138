import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pl from "nodejs-polars";
import { parseHTML } from "linkedom";
import { lineChart } from "./line_chart.ts";
import { heatmap } from "./heatmap.ts";
import { barChart } from "./bar_chart.ts";

/** Parses SVG as XML: a file a browser opens must be well-formed. */
function parseSvg(svg: string): { querySelectorAll(s: string): unknown[] } {
  const { DOMParser } = parseHTML("<html></html>") as unknown as {
    DOMParser: new () => {
      parseFromString(s: string, type: string): {
        documentElement: { tagName: string };
        querySelectorAll(s: string): unknown[];
      };
    };
  };
  const doc = new DOMParser().parseFromString(svg, "image/svg+xml");
  assert.equal(doc.documentElement.tagName.toLowerCase(), "svg");
  return doc;
}

const rows = [0, 1, 2, 3].flatMap((step) => [
  { step, method: "greedy", value: 1 },
  { step, method: "loss-free", value: step === 0 ? 0 : 1 / step },
]);

describe("charts", () => {
  test("lineChart: one path per series, from a DataFrame or rows", () => {
    for (const data of [rows, pl.DataFrame(rows)]) {
      const doc = parseSvg(lineChart(data).svg);
      // Plot draws one <path> per series in the line mark's group.
      const svg = lineChart(data).svg;
      assert.equal(
        svg.match(/<g [^>]*aria-label="line"[^>]*>(.*?)<\/g>/)![1]
          .match(/<path /g)!.length,
        2,
      );
      assert.ok(doc.querySelectorAll("text").length > 0);
    }
  });

  test("lineChart with logY leaves out rows with y <= 0", () => {
    const svg = lineChart(rows, { logY: true }).svg;
    assert.match(svg, /loss-free/);
    assert.doesNotMatch(svg, /NaN|Infinity/);
  });

  test("lineChart names a missing column and a bad size", () => {
    assert.throws(() => lineChart(rows, { y: "load" }), {
      name: "TypeError",
      message: /"load"/,
    });
    assert.throws(() => lineChart(rows, { width: 3 }), RangeError);
    assert.throws(() => lineChart(42 as never), TypeError);
  });

  test("heatmap: one cell per row, facets by column", () => {
    const cells = [];
    for (const method of ["a", "b"]) {
      for (let step = 0; step < 3; step++) {
        for (let expert = 0; expert < 4; expert++) {
          cells.push({ method, step, expert, load: expert });
        }
      }
    }
    const svg = heatmap(cells, { facet: "method", pivot: 1 }).svg;
    parseSvg(svg);
    assert.equal(svg.match(/<rect fill="#/g)!.length, 24);
    // Load 1 sits on the pivot: the diverging scale's white-ish middle.
    assert.ok(svg.includes(">a</text>") && svg.includes(">b</text>"));
  });

  test("heatmap: panels in the order the facet values first appear", () => {
    const cells = ["zeta", "alpha", "mid"].flatMap((method) =>
      [0, 1].map((expert) => ({ method, step: 0, expert, load: 1 }))
    );
    const svg = heatmap(cells, { facet: "method" }).svg;
    const at = (label: string) => svg.indexOf(`>${label}</text>`);
    // Plot draws panel labels top to bottom; the default would be alphabetical.
    const ys = ["zeta", "alpha", "mid"].map((label) => {
      const head = svg.slice(0, at(label));
      const m = [...head.matchAll(/translate\(0,([\d.]+)\)/g)].pop()!;
      return Number(m[1]);
    });
    assert.ok(ys[0] < ys[1] && ys[1] < ys[2], `panel offsets ${ys}`);
  });

  test("barChart: one bar per category, grouped by series", () => {
    const data = [0, 1, 2].flatMap((gpu) => [
      { gpu, method: "x", tokens: 10 + gpu },
      { gpu, method: "y", tokens: 5 },
    ]);
    const svg = barChart(data, { x: "gpu", y: "tokens", series: "method" })
      .svg;
    parseSvg(svg);
    const bars = svg.match(/<g [^>]*aria-label="bar"[^>]*>/g)!.length;
    assert.ok(bars >= 1);
    assert.equal(
      svg.match(/<rect [^>]*height="[\d.]+"[^>]*\/>/g)!.length >= 6,
      true,
    );
  });

  test("barChart: yDomain sets the scale, and is checked", () => {
    const data = [{ gpu: 0, tokens: 3 }, { gpu: 1, tokens: 4 }];
    const ticks = (svg: string) =>
      [...svg.matchAll(/<text [^>]*>(-?[\d.,]+)<\/text>/g)].map((m) =>
        Number(m[1].replace(",", ""))
      );
    assert.ok(
      Math.max(...ticks(barChart(data, { x: "gpu", y: "tokens" }).svg)) < 10,
    );
    const wide = barChart(data, { x: "gpu", y: "tokens", yDomain: [0, 100] });
    assert.equal(Math.max(...ticks(wide.svg)), 100);
    for (const yDomain of [[1, 1], [0, NaN], [2]]) {
      assert.throws(
        () =>
          barChart(data, {
            x: "gpu",
            y: "tokens",
            yDomain: yDomain as [number, number],
          }),
        { name: "RangeError", message: /yDomain/ },
      );
    }
  });

  test("Figure.save writes the SVG and the Jupyter bundle carries it", () => {
    const fig = lineChart(rows, { title: "A & B <test>" });
    assert.match(fig.svg, /A &amp; B &lt;test&gt;/);
    const dir = mkdtempSync(join(tmpdir(), "moelab-fig-"));
    try {
      const path = fig.save(join(dir, "f.svg"));
      assert.equal(readFileSync(path, "utf8"), fig.svg + "\n");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    const show =
      (fig as unknown as Record<symbol, () => Record<string, string>>)[
        Symbol.for("Jupyter.display")
      ];
    const bundle = show.call(fig);
    assert.equal(bundle["image/svg+xml"], fig.svg);
    // nbconvert's HTML export strips inline SVG but keeps this <img>.
    const src = bundle["text/html"].match(/^<img src="([^"]+)"/)![1];
    assert.equal(src, fig.dataUri);
    const b64 = src.slice("data:image/svg+xml;base64,".length);
    assert.equal(
      new TextDecoder().decode(
        Uint8Array.from(atob(b64), (c) => c.charCodeAt(0)),
      ),
      fig.svg,
    );
  });
});
