// The fast notebook check: every notebook in notebooks/ is committed without
// outputs, and its code cells, concatenated into one module, run to the end
// under `deno run` (no Jupyter needed). `deno task notebooks` runs them under
// real Jupyter. The child runs in notebooks/, as the Jupyter kernel does, so
// relative paths mean the same in both.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import {
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  writeFileSync,
} from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import process from "node:process";

interface Cell {
  cell_type: string;
  source: string | string[];
  outputs?: unknown[];
  execution_count?: number | null;
}

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const folder = join(root, "notebooks");
const scratch = join(root, "out", "notebook-check");
const names = readdirSync(folder).filter((f) => f.endsWith(".ipynb")).sort();
// Notebooks on the real traces need ../shared/data beside the repository,
// which a clean clone (CI) lacks: their run is skipped there, with the reason.
const sharedData = join(root, "..", "shared", "data");
const needsMissingData = (name: string): boolean =>
  !existsSync(sharedData) &&
  cells(name).some((c) => text(c.source).includes("shared/data"));
const isDeno = typeof (globalThis as { Deno?: unknown }).Deno !== "undefined";

function cells(name: string): Cell[] {
  const nb = JSON.parse(readFileSync(join(folder, name), "utf8"));
  return nb.cells as Cell[];
}

function text(source: string | string[]): string {
  return Array.isArray(source) ? source.join("") : source;
}

/** The code cells as one module; each cell is marked so errors point at it. */
function notebookModule(cellList: Cell[]): string {
  return cellList
    .map((c, i) => ({ c, i }))
    .filter(({ c }) => c.cell_type === "code")
    .map(({ c, i }) => `;// ---- cell ${i + 1} ----\n${text(c.source)}\n`)
    .join("\n");
}

function runModule(name: string): Promise<string | null> {
  mkdirSync(scratch, { recursive: true });
  const path = join(scratch, name.replace(/\.ipynb$/, ".ts"));
  writeFileSync(path, notebookModule(cells(name)));
  return new Promise((done) => {
    execFile(
      "deno",
      ["run", "-A", "--quiet", path],
      {
        cwd: folder,
        env: { ...process.env, NO_COLOR: "1" },
        timeout: 300_000,
        maxBuffer: 64 << 20,
      },
      (err, _stdout, stderr) => {
        done(
          err
            ? `${name}, run as ${path}, failed (${err.code ?? err.signal}):\n${
              stderr.slice(-4000)
            }`
            : null,
        );
      },
    );
  });
}

// Start every notebook now, two at a time, so the tests below only wait.
const pending = new Map<string, Promise<string | null>>();
if (isDeno) {
  let chain: Promise<unknown>[] = [Promise.resolve(), Promise.resolve()];
  names.filter((name) => !needsMissingData(name)).forEach((name, i) => {
    const lane = i % chain.length;
    const p = chain[lane].then(() => runModule(name));
    chain[lane] = p;
    pending.set(name, p);
  });
  chain = [];
}

describe("notebooks", () => {
  for (const name of names) {
    test(`${name} is committed without outputs`, () => {
      for (const [i, c] of cells(name).entries()) {
        if (c.cell_type !== "code") continue;
        assert.deepEqual(c.outputs ?? [], [], `cell ${i + 1} has outputs`);
        assert.equal(
          c.execution_count ?? null,
          null,
          `cell ${i + 1} has an execution count`,
        );
      }
    });
    test(`${name} draws at least one figure`, () => {
      // What `deno task notebooks` checks in the executed outputs, here in
      // the source: a chart of @moelab/balance/report or Plot itself.
      const code = cells(name).filter((c) => c.cell_type === "code")
        .map((c) => text(c.source)).join("\n");
      assert.match(
        code,
        /\b(?:lineChart|barChart|heatmap|convergencePlot|loadHeatmap|\w+Chart|Plot\.plot)\(/,
      );
    });
    if (isDeno && needsMissingData(name)) {
      test.skip(
        `${name} runs its code cells to the end (skipped: no real traces at ${sharedData})`,
      );
    } else if (isDeno) {
      test(`${name} runs its code cells to the end`, async () => {
        const error = await pending.get(name);
        if (error !== null) assert.fail(error);
      });
    } else {
      test.skip(
        `${name} runs its code cells to the end (skipped: notebooks use the Deno kernel; deno task test runs them)`,
      );
    }
  }
});
