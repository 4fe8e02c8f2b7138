import { writeFileSync } from "node:fs";
import { JUPYTER_DISPLAY, type MimeBundle } from "./_jupyter.ts";

/**
 * A finished plot: one self-contained SVG document. Shown inline when it is
 * the value of a notebook cell (Deno kernel), written to a file by
 * {@linkcode Figure.save}, embedded in HTML by {@linkcode Figure.svg}.
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

  /** The SVG markup. */
  toString(): string {
    return this.svg;
  }

  /** The mime bundle the Deno Jupyter kernel displays. */
  [JUPYTER_DISPLAY](): MimeBundle {
    return {
      "image/svg+xml": this.svg,
      "text/plain": `Figure (${this.width} x ${this.height} SVG)`,
    };
  }
}
