import { Buffer } from "node:buffer";
import { writeFileSync } from "node:fs";
import { JUPYTER_DISPLAY, type MimeBundle } from "./_jupyter.ts";

/**
 * A finished plot: one self-contained SVG document. Shown inline when it is
 * the value of a notebook cell (Deno kernel), written to a file by
 * {@linkcode Figure.save}, embedded in HTML by {@linkcode Figure.svg} or,
 * where inline SVG would be stripped (nbconvert's HTML export, e-mail,
 * sanitised previews), as an `<img>` of a data URI ({@linkcode Figure.img}).
 * The notebook bundle carries both: `text/html` (the `<img>`), which
 * nbconvert and JupyterLab prefer, and `image/svg+xml`.
 *
 * @example
 * ```ts
 * import { Figure } from "@moelab/balance/report";
 * import assert from "node:assert/strict";
 *
 * const f = new Figure('<svg xmlns="http://www.w3.org/2000/svg" width="4" height="2"></svg>', 4, 2);
 * assert.equal(f.svg.startsWith("<svg"), true);
 * const bundle = (f as unknown as Record<symbol, () => Record<string, string>>)[Symbol.for("Jupyter.display")]();
 * assert.equal(bundle["image/svg+xml"], f.svg);
 * assert.match(bundle["text/html"], /^<img src="data:image\/svg\+xml;base64,/);
 * ```
 */
export class Figure {
  /** The SVG document, with its `xmlns`, ready for a `.svg` file or inline HTML. */
  readonly svg: string;
  /** Width in pixels. */
  readonly width: number;
  /** Height in pixels. */
  readonly height: number;

  /**
   * Wraps an SVG document.
   *
   * @param svg The SVG markup (one `<svg>` element with `xmlns`).
   * @param width Width in pixels.
   * @param height Height in pixels.
   * @throws {TypeError} If `svg` does not start with `<svg`.
   */
  constructor(svg: string, width: number, height: number) {
    if (typeof svg !== "string" || !svg.startsWith("<svg")) {
      throw new TypeError(
        `svg must be SVG markup starting with <svg: current value is ${
          typeof svg === "string"
            ? JSON.stringify(svg.slice(0, 20))
            : typeof svg
        }`,
      );
    }
    this.svg = svg;
    this.width = width;
    this.height = height;
  }

  /**
   * Writes the SVG to `path` (a `.svg` file opens in any browser).
   *
   * @param path Destination file; its folder must exist.
   * @returns `path`.
   */
  save(path: string): string {
    writeFileSync(path, this.svg + "\n");
    return path;
  }

  /**
   * The SVG as a `data:image/svg+xml;base64,...` URI, for an `<img src>`
   * that shows the figure where inline SVG is not allowed.
   *
   * @example
   * ```ts
   * import { Figure } from "@moelab/balance/report";
   * import assert from "node:assert/strict";
   *
   * const svg = '<svg xmlns="http://www.w3.org/2000/svg" width="4" height="2"><text>µ</text></svg>';
   * const uri = new Figure(svg, 4, 2).dataUri;
   * const base64 = uri.slice("data:image/svg+xml;base64,".length);
   * assert.equal(new TextDecoder().decode(Uint8Array.from(atob(base64), (c) => c.charCodeAt(0))), svg);
   * ```
   */
  get dataUri(): string {
    return `data:image/svg+xml;base64,${
      Buffer.from(this.svg, "utf8").toString("base64")
    }`;
  }

  /**
   * An `<img>` element showing the figure from its {@linkcode Figure.dataUri},
   * at its natural size (CSS may scale it down).
   *
   * @param alt The image's text alternative (default `"figure"`); escaped.
   * @returns The `<img>` markup.
   *
   * @example
   * ```ts
   * import { Figure } from "@moelab/balance/report";
   * import assert from "node:assert/strict";
   *
   * const f = new Figure('<svg xmlns="http://www.w3.org/2000/svg" width="4" height="2"></svg>', 4, 2);
   * assert.match(f.img("a < b"), /^<img src="data:image\/svg\+xml;base64,[^"]+" width="4" height="2" alt="a &lt; b">$/);
   * ```
   */
  img(alt = "figure"): string {
    const text = String(alt).replace(/&/g, "&amp;").replace(/</g, "&lt;")
      .replace(/>/g, "&gt;").replace(/"/g, "&quot;");
    return `<img src="${this.dataUri}" width="${this.width}" height="${this.height}" alt="${text}">`;
  }

  /** The SVG markup. */
  toString(): string {
    return this.svg;
  }

  /**
   * The mime bundle the Deno Jupyter kernel displays: the `<img>` as
   * `text/html` (kept by nbconvert's HTML export, which strips inline SVG)
   * and the SVG itself as `image/svg+xml`.
   */
  [JUPYTER_DISPLAY](): MimeBundle {
    return {
      "text/html": this.img(`Figure (${this.width} x ${this.height})`),
      "image/svg+xml": this.svg,
      "text/plain": `Figure (${this.width} x ${this.height} SVG)`,
    };
  }
}
