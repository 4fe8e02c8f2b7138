/**
 * What importing each entry point costs: the npm packages its static import
 * graph loads (dynamic `import()` and `import type` excluded, so lazily
 * loaded solvers do not count) and the wall time of `await import(entry)`
 * in a fresh `deno` process (median of several runs).
 *
 * ```sh
 * deno run -A bench/import_cost.ts            # every entry point, 7 runs each
 * deno run -A bench/import_cost.ts . 15       # "." only, 15 runs
 * ```
 *
 * @module
 */
import process from "node:process";

const config = JSON.parse(
  await Deno.readTextFile(new URL("../deno.json", import.meta.url)),
) as { name: string; exports: Record<string, string> };

interface Dependency {
  code?: { specifier: string };
  isDynamic?: boolean;
}
interface GraphModule {
  specifier: string;
  dependencies?: Dependency[];
}

/** The npm packages reached from `file` through static, non-type imports. */
async function staticNpmPackages(file: string): Promise<string[]> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["info", "--json", file],
    stdout: "piped",
    stderr: "inherit",
  }).output();
  const info = JSON.parse(new TextDecoder().decode(out.stdout)) as {
    roots: string[];
    modules: GraphModule[];
    redirects: Record<string, string>;
  };
  const bySpecifier = new Map(info.modules.map((m) => [m.specifier, m]));
  const seen = new Set<string>();
  const npm = new Set<string>();
  const stack = [...info.roots];
  while (stack.length > 0) {
    const specifier = stack.pop()!;
    if (seen.has(specifier)) continue;
    seen.add(specifier);
    if (specifier.startsWith("npm:")) {
      const name = specifier.replace(/^npm:\/?/, "").match(
        /^(@[^/]+\/[^@/]+|[^@/]+)/,
      );
      if (name) npm.add(name[1]);
      continue;
    }
    for (const dep of bySpecifier.get(specifier)?.dependencies ?? []) {
      if (dep.code === undefined || dep.isDynamic) continue;
      const target = dep.code.specifier;
      stack.push(info.redirects[target] ?? target);
    }
  }
  return [...npm].sort();
}

/** Milliseconds of `await import(specifier)` in a fresh process, one run. */
async function importMs(specifier: string): Promise<number> {
  const code = `const t = performance.now(); await import(${
    JSON.stringify(specifier)
  }); console.log(performance.now() - t);`;
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["eval", "--ext=ts", code],
    stdout: "piped",
    stderr: "inherit",
    cwd: new URL("..", import.meta.url),
  }).output();
  if (!out.success) throw new Error(`import of ${specifier} failed`);
  return Number(new TextDecoder().decode(out.stdout).trim());
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[s.length >> 1];
}

const wanted = process.argv[2];
const runs = Number(process.argv[3] ?? 7);
const entries = Object.entries(config.exports).filter(([key]) =>
  wanted === undefined || key === wanted
);
console.log("| entry | import ms (median) | npm packages loaded at import |");
console.log("|---|---|---|");
for (const [key, path] of entries) {
  const specifier = key === "."
    ? config.name
    : `${config.name}/${key.slice(2)}`;
  await importMs(specifier); // warm the module cache
  const times: number[] = [];
  for (let i = 0; i < runs; i++) times.push(await importMs(specifier));
  const npm = await staticNpmPackages(
    new URL(`../${path}`, import.meta.url).href,
  );
  console.log(
    `| ${specifier} | ${median(times).toFixed(1)} | ${
      npm.join(", ") || "none"
    } |`,
  );
}
