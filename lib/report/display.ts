import { Buffer } from "node:buffer";
import type pl from "nodejs-polars";
import { JUPYTER_DISPLAY, jupyterKernel, type MimeBundle } from "./_jupyter.ts";
import { escapeXml } from "./_plot.ts";
import { checkInteger } from "../validate.ts";

/**
 * Something a notebook shows: a mime bundle (HTML, markdown, SVG) with a
 * plain-text fallback. The value of a notebook cell displays by itself in
 * the Deno kernel; {@linkcode display} shows it from anywhere in a cell.
 * An `image/svg+xml` entry without `text/html` gets an HTML `<img>` of the
 * SVG as a data URI too, which nbconvert's HTML export keeps (it strips
 * inline SVG).
 *
 * @example
 * ```ts
 * import { Rendered } from "@moelab/balance/report";
 * import assert from "node:assert/strict";
 *
 * const r = new Rendered({ "text/html": "<b>1</b>", "text/plain": "1" });
 * assert.equal(String(r), "1");
 * const svg = new Rendered({ "image/svg+xml": '<svg width="4" height="2"></svg>' });
 * assert.match(svg.bundle["text/html"], /^<img src="data:image\/svg\+xml;base64,/);
 * ```
 */
export class Rendered {
  /** Mime type to content; always has `text/plain`. */
  readonly bundle: MimeBundle;

  /**
   * Wraps a mime bundle.
   *
   * @param bundle Mime type to content (a `text/plain` entry is added if missing).
   */
  constructor(bundle: MimeBundle) {
    const svg = bundle["image/svg+xml"];
    this.bundle = {
      "text/plain": "",
      ...(typeof svg === "string" && svg.startsWith("<svg") &&
          bundle["text/html"] === undefined
        ? { "text/html": svgImg(svg) }
        : {}),
      ...bundle,
    };
  }

  /** The plain-text form. */
  toString(): string {
    return this.bundle["text/plain"];
  }

  /** The mime bundle the Deno Jupyter kernel displays. */
  [JUPYTER_DISPLAY](): MimeBundle {
    return this.bundle;
  }
}

/** An `<img>` of SVG markup as a data URI (with the namespace it needs there). */
function svgImg(svg: string): string {
  const standalone = /^<svg[^>]*\sxmlns=/.test(svg)
    ? svg
    : svg.replace(/^<svg/, '<svg xmlns="http://www.w3.org/2000/svg"');
  return `<img src="data:image/svg+xml;base64,${
    Buffer.from(standalone, "utf8").toString("base64")
  }" alt="figure">`;
}

function formatCell(v: unknown): string {
  if (v === null || v === undefined) return "null";
  if (typeof v === "number") {
    if (Number.isInteger(v) || !Number.isFinite(v)) return String(v);
    return String(Number(v.toPrecision(6)));
  }
  if (typeof v === "bigint") return v.toString();
  if (typeof v === "object") return JSON.stringify(v);
  return String(v);
}

/**
 * An HTML table of rows, shared by {@linkcode htmlTable} and the HTML
 * report. Numbers are right-aligned.
 */
export function tableHtml(columns: string[], rows: unknown[][]): string {
  const head = columns.map((c) => `<th>${escapeXml(c)}</th>`).join("");
  const body = rows.map((r) =>
    "<tr>" +
    r.map((v) =>
      v === undefined
        ? "<td>…</td>"
        : `<td${typeof v === "number" ? ' class="num"' : ""}>${
          escapeXml(formatCell(v))
        }</td>`
    ).join("") + "</tr>"
  ).join("");
  return `<table><thead><tr>${head}</tr></thead><tbody>${body}</tbody></table>`;
}

const TABLE_STYLE = "<style>.moelab-table table{border-collapse:collapse;" +
  "font-size:12px}.moelab-table th,.moelab-table td{padding:2px 8px;" +
  "border-bottom:1px solid #ddd;text-align:left}.moelab-table td.num" +
  "{text-align:right;font-variant-numeric:tabular-nums}</style>";

/**
 * A DataFrame as an HTML table (the first and last rows when it is long).
 * VS Code's notebook view cannot render the data-resource type that Polars
 * offers the kernel, so tables go through HTML.
 *
 * @param df A Polars DataFrame.
 * @param options `maxRows`: rows shown before eliding the middle (default 20).
 * @returns A {@linkcode Rendered} with `text/html` and `text/plain`.
 * @throws {TypeError} If `df` is not a DataFrame.
 * @throws {RangeError} If `maxRows` is not a positive integer.
 *
 * @example
 * ```ts
 * import { htmlTable } from "@moelab/balance/report";
 * import pl from "nodejs-polars";
 * import assert from "node:assert/strict";
 *
 * const t = htmlTable(pl.DataFrame({ method: ["greedy"], maxVio: [1.25] }));
 * assert.match(t.bundle["text/html"], /<td class="num">1.25<\/td>/);
 * ```
 */
export function htmlTable(
  df: pl.DataFrame,
  options: { maxRows?: number } = {},
): Rendered {
  if (
    df === null || typeof df !== "object" ||
    typeof (df as pl.DataFrame).getColumn !== "function"
  ) {
    throw new TypeError(
      `df must be a Polars DataFrame: current value is ${typeof df}`,
    );
  }
  const maxRows = checkInteger("maxRows", options.maxRows ?? 20, 1);
  const n = df.height;
  const shown = n <= maxRows ? df : df.head(Math.ceil(maxRows / 2)).vstack(
    df.tail(Math.floor(maxRows / 2)),
  );
  const records = shown.toRecords() as Record<string, unknown>[];
  const rows = records.map((r) => df.columns.map((c) => r[c]));
  if (n > maxRows) {
    rows.splice(Math.ceil(maxRows / 2), 0, df.columns.map(() => undefined));
  }
  const caption =
    `<div style="font-size:11px;color:#666">${n} rows x ${df.width} columns</div>`;
  return new Rendered({
    "text/html": `${TABLE_STYLE}<div class="moelab-table">${
      tableHtml(df.columns, rows)
    }${caption}</div>`,
    "text/plain": df.toString(),
  });
}

/**
 * Markdown for a notebook (rendered by Jupyter; plain text elsewhere).
 *
 * @param text Markdown source.
 * @returns A {@linkcode Rendered} with `text/markdown` and `text/plain`.
 *
 * @example
 * ```ts
 * import { markdown } from "@moelab/balance/report";
 * import assert from "node:assert/strict";
 *
 * assert.equal(markdown("**MaxVio** 0.04").bundle["text/markdown"], "**MaxVio** 0.04");
 * ```
 */
export function markdown(text: string): Rendered {
  return new Rendered({ "text/markdown": text, "text/plain": text });
}

function isDataFrame(v: unknown): v is pl.DataFrame {
  return v !== null && typeof v === "object" &&
    typeof (v as pl.DataFrame).getColumn === "function" &&
    typeof (v as pl.DataFrame).toRecords === "function";
}

/**
 * Shows values in a notebook cell output, in order: DataFrames as HTML
 * tables, plots ({@linkcode Figure}) as SVG, strings as markdown, anything
 * else with its own Jupyter display or as text. Outside the Deno Jupyter
 * kernel (a script, a test, Bun) it prints a plain-text form to stdout
 * instead, so notebook code also runs as a module.
 *
 * @param values What to show.
 * @returns A promise that settles once the outputs are sent (await it, so
 * that they land in this cell).
 *
 * @example
 * ```ts
 * import { display, markdown } from "@moelab/balance/report";
 *
 * await display(markdown("# Outside Jupyter this prints the text"));
 * ```
 */
export async function display(...values: unknown[]): Promise<void> {
  const kernel = jupyterKernel();
  const shownValues = values.map((v) =>
    isDataFrame(v) ? htmlTable(v) : typeof v === "string" ? markdown(v) : v
  );
  // The Deno kernel can drop a cell's second display message, so values
  // that all have an HTML form go out as one message, in order.
  const merged = kernel && shownValues.length > 1
    ? mergeHtml(shownValues)
    : undefined;
  if (kernel && merged) {
    await kernel.display(merged);
    return;
  }
  for (const shown of shownValues) {
    if (kernel) {
      await kernel.display(shown);
      continue;
    }
    const own = (shown as Record<symbol, unknown> | null)?.[JUPYTER_DISPLAY];
    const text = typeof own === "function"
      ? (own.call(shown) as MimeBundle)["text/plain"] ?? String(shown)
      : String(shown);
    console.log(text);
  }
}

/** The bundle of a value that has one (Rendered, Figure, ...), else undefined. */
function bundleOf(value: unknown): MimeBundle | undefined {
  const own = (value as Record<symbol, unknown> | null)?.[JUPYTER_DISPLAY];
  return typeof own === "function" ? own.call(value) as MimeBundle : undefined;
}

/**
 * One bundle holding every value's HTML in order (plain texts joined), or
 * undefined when a value has no HTML form.
 */
export function mergeHtml(values: unknown[]): Rendered | undefined {
  const html: string[] = [];
  const text: string[] = [];
  for (const v of values) {
    const b = bundleOf(v);
    if (b === undefined || typeof b["text/html"] !== "string") return undefined;
    html.push(b["text/html"]);
    text.push(b["text/plain"] ?? "");
  }
  return new Rendered({
    "text/html": html.join("\n"),
    "text/plain": text.join("\n\n"),
  });
}
