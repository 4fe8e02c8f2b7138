// Every entry point works when its modules are served over HTTP, as a
// `jsr:` import loads them (import.meta.url is http:, not file:). A
// loopback server serves the repository with TypeScript content types; a
// child `deno` resolves "@moelab/balance" and its entry points to that
// server through an import map equal to deno.json's "imports", and runs
// tests/_http_cases.ts; its results must equal those of the same cases on
// the files. Worker threads (routeParallel, routeAsync), web Workers
// (runSimulationParallel) and the Brown corpus (trainMoe) are the parts
// that depend on where the modules come from.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { dirname, join, normalize, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { packageImports } from "./_package_imports.ts";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const isDeno = typeof (globalThis as { Deno?: unknown }).Deno !== "undefined";

const CONTENT_TYPES: Record<string, string> = {
  ts: "application/typescript; charset=utf-8",
  js: "text/javascript; charset=utf-8",
  json: "application/json; charset=utf-8",
};

/** Serves the repository's files read-only on 127.0.0.1 (port chosen by the system). */
function serveRepository(): Deno.HttpServer<Deno.NetAddr> {
  return Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    (request) => {
      const path = normalize(decodeURIComponent(new URL(request.url).pathname));
      const file = join(root, path);
      const extension = path.slice(path.lastIndexOf(".") + 1);
      if (!file.startsWith(root + "/") || !(extension in CONTENT_TYPES)) {
        return new Response("not found", { status: 404 });
      }
      try {
        return new Response(readFileSync(file), {
          headers: { "content-type": CONTENT_TYPES[extension] },
        });
      } catch {
        return new Response("not found", { status: 404 });
      }
    },
  );
}

/**
 * deno.json's "imports", with the package's own names pointing at `base`,
 * and package.json's npm dependencies.
 */
function importMap(base: string): { imports: Record<string, string> } {
  const config = JSON.parse(readFileSync(join(root, "deno.json"), "utf8"));
  const imports: Record<string, string> = packageImports(root);
  for (const [name, target] of Object.entries<string>(config.imports)) {
    imports[name] = name.startsWith(config.name)
      ? new URL(target, base).href
      : target;
  }
  return { imports };
}

test("every entry point works when served over HTTP", {
  skip: isDeno ? false : "needs Deno.serve and a deno child process",
  timeout: 240_000,
}, async () => {
  const { runCases } = await import("./_http_cases.ts");
  const local = JSON.parse(JSON.stringify(await runCases()));

  const server = serveRepository();
  try {
    const base = `http://127.0.0.1:${server.addr.port}/`;
    const dir = await Deno.makeTempDir({ prefix: "moelab-http-" });
    const map = join(dir, "import_map.json");
    await Deno.writeTextFile(map, JSON.stringify(importMap(base)));
    const child = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--allow-all",
        "--no-config",
        `--import-map=${map}`,
        // A port may be served again by a later run: fetch afresh.
        `--reload=${base.slice(0, -1)}`,
        "--quiet",
        join(root, "tests", "_http_cases.ts"),
      ],
      cwd: dir,
      stdout: "piped",
      stderr: "piped",
      env: { NO_COLOR: "1" },
    }).output();
    await Deno.remove(dir, { recursive: true });
    const stderr = new TextDecoder().decode(child.stderr);
    assert.equal(child.code, 0, `the child failed:\n${stderr}`);
    const remote = JSON.parse(new TextDecoder().decode(child.stdout));
    assert.deepEqual(remote, local);
    // The cases themselves: the same routing with and without threads.
    for (const call of remote.parallel) {
      assert.deepEqual(call, remote.parallel[0]);
    }
    assert.deepEqual(remote.routeAsync, remote.parallel[0]);
    // The EP stage ran in its own workers, started from the served URL.
    assert.equal(remote.sim.epThreads, 2);
  } finally {
    await server.shutdown();
  }
});
