import { describe, test } from "node:test";
import assert from "node:assert/strict";
import pl from "nodejs-polars";
import {
  display,
  htmlTable,
  markdown,
  mergeHtml,
  Rendered,
} from "./display.ts";
import { lineChart } from "./line_chart.ts";

describe("display", () => {
  test("values with HTML forms merge into one bundle, in order; markdown does not", () => {
    const table = htmlTable(pl.DataFrame({ a: [1, 2] }));
    const chart = lineChart([{ x: 0, y: 1 }, { x: 1, y: 2 }], {
      x: "x",
      y: "y",
    });
    const merged = mergeHtml([table, chart])!;
    const html = merged.bundle["text/html"];
    const t = table.bundle["text/html"];
    const c = chart[Symbol.for("Jupyter.display") as never] as () => {
      "text/html": string;
    };
    const ch = c.call(chart)["text/html"];
    assert.equal(html, `${t}\n${ch}`);
    assert.ok(html.indexOf("<table") < html.indexOf("<img"));
    assert.equal(mergeHtml([table, markdown("# note")]), undefined);
  });

  test("an SVG bundle also carries a standalone <img> for nbconvert", () => {
    const decode = (html: string) =>
      new TextDecoder().decode(Uint8Array.from(
        atob(html.match(/base64,([^"]+)"/)![1]),
        (c) => c.charCodeAt(0),
      ));
    // Plot's <svg> from a DOM may lack the namespace an <img> needs.
    const bare = new Rendered({ "image/svg+xml": '<svg width="4">µ</svg>' });
    assert.equal(
      decode(bare.bundle["text/html"]),
      '<svg xmlns="http://www.w3.org/2000/svg" width="4">µ</svg>',
    );
    const ns = '<svg xmlns="http://www.w3.org/2000/svg" width="4"></svg>';
    assert.equal(
      decode(new Rendered({ "image/svg+xml": ns }).bundle["text/html"]),
      ns,
    );
    // Its own HTML wins.
    const own = new Rendered({ "image/svg+xml": ns, "text/html": "<b>x</b>" });
    assert.equal(own.bundle["text/html"], "<b>x</b>");
  });

  test("htmlTable escapes text and right-aligns numbers", () => {
    const html = htmlTable(pl.DataFrame({ name: ["<b>&"], x: [0.5] }))
      .bundle["text/html"];
    assert.match(html, /<td>&lt;b&gt;&amp;<\/td><td class="num">0.5<\/td>/);
    assert.match(html, /1 rows x 2 columns/);
  });

  test("htmlTable shows the first and last rows of a long frame", () => {
    const df = pl.DataFrame({ i: Array.from({ length: 10 }, (_, i) => i) });
    const html = htmlTable(df, { maxRows: 4 }).bundle["text/html"];
    const cells = [...html.matchAll(/<td[^>]*>([^<]*)<\/td>/g)].map((m) =>
      m[1]
    );
    assert.deepEqual(cells, ["0", "1", "…", "8", "9"]);
    assert.throws(() => htmlTable(df, { maxRows: 0 }), RangeError);
    assert.throws(() => htmlTable([] as never), TypeError);
  });

  test("outside Jupyter, display prints each value's text form", async () => {
    const printed: string[] = [];
    const log = console.log;
    console.log = (s: unknown) => printed.push(String(s));
    try {
      await display(
        "**md**",
        markdown("# title"),
        lineChart([{ step: 0, value: 1 }]),
        7,
      );
    } finally {
      console.log = log;
    }
    assert.deepEqual(printed.slice(0, 2), ["**md**", "# title"]);
    assert.match(printed[2], /^Figure \(640 x \d+ SVG\)$/);
    assert.equal(printed[3], "7");
  });
});
