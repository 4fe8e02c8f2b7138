// The npm dependencies of package.json as import-map entries (`name` and
// each `name/subpath` the sources name, to `npm:name@version[/subpath]`),
// for tests that run the package without this repository's configuration
// (served over HTTP, a user's project). An import map cannot map a prefix
// to an `npm:` specifier, so the subpaths are listed one by one.
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";

/** Source files under `dir` (.ts, .js), skipping node_modules and out. */
function sources(dir: string, out: string[] = []): string[] {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    if (
      e.name === "node_modules" || e.name === "out" || e.name.startsWith(".")
    ) {
      continue;
    }
    const path = join(dir, e.name);
    if (e.isDirectory()) sources(path, out);
    else if (/\.(ts|js|md)$/.test(e.name)) out.push(path);
  }
  return out;
}

/** package.json's dependencies and devDependencies as `npm:` imports. */
export function packageImports(root: string): Record<string, string> {
  const pkg = JSON.parse(readFileSync(join(root, "package.json"), "utf8")) as {
    dependencies?: Record<string, string>;
    devDependencies?: Record<string, string>;
  };
  const deps = { ...pkg.dependencies, ...pkg.devDependencies };
  const imports: Record<string, string> = {};
  for (const [name, version] of Object.entries(deps)) {
    imports[name] = `npm:${name}@${version}`;
  }
  const text = sources(root).map((f) => readFileSync(f, "utf8")).join("\n");
  for (const [name, version] of Object.entries(deps)) {
    const quoted = name.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&");
    for (
      const m of text.matchAll(new RegExp(`["'](${quoted}/[^"'\\s]+)["']`, "g"))
    ) {
      imports[m[1]] = `npm:${name}@${version}${m[1].slice(name.length)}`;
    }
  }
  return imports;
}
