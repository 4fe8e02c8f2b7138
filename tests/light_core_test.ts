// "@moelab/balance" is the light core: its static import graph reaches no
// npm package (Polars, Observable Plot, linkedom, glpk.js, HiGHS load only
// from the other entry points, or lazily when a caller asks for an LP
// solver). Dynamic import() and `import type` do not load at import time,
// so they do not count.
import { test } from "node:test";
import assert from "node:assert/strict";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const isDeno = typeof (globalThis as { Deno?: unknown }).Deno !== "undefined";

interface GraphModule {
  specifier: string;
  dependencies?: {
    code?: { specifier: string };
    isDynamic?: boolean;
  }[];
}

/** npm packages reached from `file` through static, non-type imports. */
async function npmAtImport(file: string): Promise<string[]> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["info", "--json", file],
    cwd: root,
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.ok(out.success, new TextDecoder().decode(out.stderr));
  const info = JSON.parse(new TextDecoder().decode(out.stdout)) as {
    roots: string[];
    modules: GraphModule[];
    redirects: Record<string, string>;
  };
  const modules = new Map(info.modules.map((m) => [m.specifier, m]));
  const seen = new Set<string>();
  const npm = new Set<string>();
  const stack = [...info.roots];
  while (stack.length > 0) {
    const specifier = stack.pop()!;
    if (seen.has(specifier)) continue;
    seen.add(specifier);
    if (specifier.startsWith("npm:")) {
      npm.add(specifier.replace(/^npm:\/?/, "").replace(/(.)@.*$/, "$1"));
      continue;
    }
    // With node_modules managed by `deno install` (package.json), npm
    // modules are files there: the package is the path after the last
    // node_modules/.
    const at = specifier.lastIndexOf("/node_modules/");
    if (at >= 0) {
      const path = specifier.slice(at + "/node_modules/".length).split("/");
      npm.add(path[0].startsWith("@") ? `${path[0]}/${path[1]}` : path[0]);
      continue;
    }
    for (const dep of modules.get(specifier)?.dependencies ?? []) {
      if (dep.code === undefined || dep.isDynamic) continue;
      stack.push(info.redirects[dep.code.specifier] ?? dep.code.specifier);
    }
  }
  return [...npm].sort();
}

test(
  "the core loads no npm package at import; the other entry points load theirs",
  {
    skip: isDeno ? false : "needs deno info",
  },
  async () => {
    assert.deepEqual(await npmAtImport("mod.ts"), []);
    // The serving-engine readers and writers are npm-free too.
    assert.deepEqual(await npmAtImport(join("lib", "serving", "mod.ts")), []);
    // The check itself sees npm packages where there are some.
    assert.deepEqual(await npmAtImport(join("lib", "workload", "mod.ts")), [
      "nodejs-polars",
    ]);
  },
);

test(
  "importing the core in a fresh cache downloads no npm package; the LP solvers load from package.json's versions",
  {
    skip: isDeno ? false : "needs deno",
  },
  async () => {
    // Deno fetches the npm packages of literal dynamic imports with the
    // graph: a literal import("glpk.js/node") in the core would download
    // glpk.js here, though nothing calls it.
    const cache = await Deno.makeTempDir({ prefix: "moelab-deno-dir-" });
    try {
      const out = await new Deno.Command(Deno.execPath(), {
        args: [
          "eval",
          "--no-lock",
          "--node-modules-dir=none",
          "--config",
          "deno.json",
          'await import("./mod.ts");',
        ],
        cwd: root,
        env: { DENO_DIR: cache, DENO_NO_UPDATE_CHECK: "1" },
        stdout: "piped",
        stderr: "piped",
      }).output();
      assert.ok(out.success, new TextDecoder().decode(out.stderr));
      const npm: string[] = [];
      try {
        for await (const e of Deno.readDir(join(cache, "npm"))) {
          for await (const p of Deno.readDir(join(cache, "npm", e.name))) {
            npm.push(p.name);
          }
        }
      } catch (e) {
        if (!(e instanceof Deno.errors.NotFound)) throw e;
      }
      assert.deepEqual(npm, []);
    } finally {
      await Deno.remove(cache, { recursive: true });
    }
    const { LP_SOLVER_SPECIFIERS } = await import(
      "../lib/solve/lp_solvers.ts"
    );
    const pkg = JSON.parse(
      await Deno.readTextFile(join(root, "package.json")),
    ) as { dependencies: Record<string, string> };
    assert.equal(
      LP_SOLVER_SPECIFIERS.glpk,
      `npm:glpk.js@${pkg.dependencies["glpk.js"]}/node`,
    );
    assert.equal(
      LP_SOLVER_SPECIFIERS.highs,
      `npm:highs@${pkg.dependencies["highs"]}`,
    );
  },
);
