// `deno task notebooks [name ...]`: executes every notebook in this folder
// (or those named) headless under real Jupyter with the Deno kernel, one
// after the other, and writes the executed copies to out/notebooks/. Exits
// non-zero if any cell of any notebook raised. Needs `jupyter nbconvert`
// (Debian: jupyter-nbconvert python3-nbclient jupyter-client) and the Deno
// kernelspec, which it installs (`deno jupyter --install`) when Jupyter
// does not list it.
import { spawnSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import process from "node:process";

const here = dirname(fileURLToPath(import.meta.url));
const outDir = resolve(here, "..", "out", "notebooks");

const all = readdirSync(here).filter((f) => f.endsWith(".ipynb")).sort();
const wanted = process.argv.slice(2).map((a) => a.replace(/^.*\//, ""));
const unknown = wanted.filter((w) =>
  !all.includes(w) && !all.includes(`${w}.ipynb`)
);
if (unknown.length > 0) {
  process.stderr.write(
    `error: unknown notebook ${unknown.join(", ")} (notebooks: ${
      all.join(", ")
    })\n`,
  );
  process.exit(2);
}
const chosen = wanted.length === 0
  ? all
  : all.filter((f) => wanted.includes(f) || wanted.includes(f.slice(0, -6)));

// Notebooks on the real traces read ../shared/data beside the repository;
// where it is absent (a bare clone) they are skipped with the reason.
const sharedData = resolve(here, "..", "..", "shared", "data");
const needsData = (name: string): boolean =>
  readFileSync(join(here, name), "utf8").includes("shared/data");

if (chosen.length > 0) ensureDenoKernel();

const failed: string[] = [];
let skipped = 0;
for (const name of chosen) {
  if (!existsSync(sharedData) && needsData(name)) {
    process.stderr.write(
      `notebooks: ${name} skipped: no real traces at ${sharedData}\n`,
    );
    skipped++;
    continue;
  }
  const t0 = performance.now();
  process.stderr.write(`notebooks: ${name} ...\n`);
  // nbconvert starts the kernel in the notebook's folder, so relative paths
  // in cells mean the same under Jupyter and in the fast check of tests/.
  const r = spawnSync("jupyter", [
    "nbconvert",
    "--to",
    "notebook",
    "--execute",
    // Errors are collected below from the executed copy, which is kept so
    // the failing cell can be read in context.
    "--allow-errors",
    "--ExecutePreprocessor.kernel_name=deno",
    "--ExecutePreprocessor.timeout=600",
    "--output-dir",
    outDir,
    join(here, name),
  ], { stdio: ["ignore", "inherit", "pipe"], encoding: "utf8" });
  const seconds = ((performance.now() - t0) / 1000).toFixed(1);
  if (r.error) {
    process.stderr.write(
      `error: cannot run jupyter (${r.error.message}); install jupyter-nbconvert python3-nbclient jupyter-client, then deno jupyter --install\n`,
    );
    process.exit(2);
  }
  const errors = r.status === 0 ? cellErrors(join(outDir, name)) : [];
  // Every notebook shows its findings as at least one plot.
  if (
    r.status === 0 && errors.length === 0 && figures(join(outDir, name)) === 0
  ) {
    errors.push(
      "  no figure in the executed outputs (image/svg+xml, or HTML with an <svg> or an SVG <img>)",
    );
  }
  if (r.status === 0 && errors.length === 0) {
    process.stderr.write(`notebooks: ${name} ok (${seconds} s)\n`);
  } else {
    failed.push(name);
    const lines = (r.stderr ?? "").trimEnd().split("\n");
    process.stderr.write(
      (r.status === 0 ? errors : lines.slice(-30)).join("\n") + "\n",
    );
    process.stderr.write(`notebooks: ${name} FAILED (${seconds} s)\n`);
  }
}

process.stderr.write(
  `notebooks: ${
    chosen.length - failed.length - skipped
  } passed, ${skipped} skipped, ${failed.length} failed${
    failed.length ? ": " + failed.join(", ") : ""
  }; executed copies in ${outDir}\n`,
);
process.exit(failed.length === 0 ? 0 : 1);

/** The figure outputs an executed notebook holds. */
function figures(path: string): number {
  const nb = JSON.parse(readFileSync(path, "utf8")) as {
    cells: { outputs?: { data?: Record<string, string | string[]> }[] }[];
  };
  const text = (v: string | string[] | undefined) =>
    Array.isArray(v) ? v.join("") : v ?? "";
  return nb.cells.flatMap((c) => c.outputs ?? []).filter((o) => {
    const data = o.data ?? {};
    return "image/svg+xml" in data || "image/png" in data ||
      /<svg|data:image\/svg\+xml/.test(text(data["text/html"]));
  }).length;
}

/** The errors an executed notebook holds, one line each with its cell. */
function cellErrors(path: string): string[] {
  const nb = JSON.parse(readFileSync(path, "utf8")) as {
    cells: {
      cell_type: string;
      source: string | string[];
      outputs?: { output_type: string; ename?: string; evalue?: string }[];
    }[];
  };
  const out: string[] = [];
  nb.cells.forEach((cell, i) => {
    for (const o of cell.outputs ?? []) {
      if (o.output_type !== "error") continue;
      const src = Array.isArray(cell.source)
        ? cell.source.join("")
        : cell.source;
      out.push(
        `  cell ${i + 1} (${
          src.split("\n")[0].slice(0, 60)
        }): ${o.ename}: ${o.evalue}`,
      );
    }
  });
  return out;
}

/**
 * Exits 2 with the Debian packages to install when `jupyter` is missing;
 * installs the Deno kernelspec (`deno jupyter --install`) when Jupyter
 * does not list one named `deno`.
 */
function ensureDenoKernel(): void {
  const missing =
    "install Jupyter first (Debian: apt-get install jupyter-nbconvert python3-nbclient jupyter-client; elsewhere: pip install nbconvert nbclient jupyter_client)";
  const list = spawnSync("jupyter", ["kernelspec", "list", "--json"], {
    encoding: "utf8",
  });
  if (list.error || list.status !== 0) {
    process.stderr.write(
      `error: deno task notebooks needs jupyter (${
        list.error?.message ?? (list.stderr ?? "").trim().split("\n").pop()
      }); ${missing}\n`,
    );
    process.exit(2);
  }
  let specs: Record<string, unknown> = {};
  try {
    specs = JSON.parse(list.stdout).kernelspecs ?? {};
  } catch {
    // An unreadable listing is treated as one without the Deno kernel.
  }
  if ("deno" in specs) return;
  process.stderr.write(
    "notebooks: no Deno kernel in Jupyter; installing it (deno jupyter --install)\n",
  );
  const install = spawnSync(process.execPath, ["jupyter", "--install"], {
    stdio: ["ignore", "inherit", "inherit"],
  });
  if (install.error || install.status !== 0) {
    process.stderr.write(
      `error: deno jupyter --install failed (${
        install.error?.message ?? `exit ${install.status}`
      }); run it by hand, then deno task notebooks again\n`,
    );
    process.exit(2);
  }
}
