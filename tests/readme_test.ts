// Every example of README.md runs as written from a directory outside the
// repository, as a user's project would run it:
// - `ts` blocks, with an import map sending "@moelab/balance" and its entry
//   points to the repository (what a `jsr:` import gives a user);
// - `sh` blocks of `moelab` commands, in order and in one directory (later
//   examples read what earlier ones write, such as out/sim/loads.parquet),
//   with the `moelab` command installed by the README's clone line
//   (`deno task install`: `deno install -g ... lib/cli/main.ts`), standing
//   for its `jsr:` line (no registry is reached here); the README's
//   `data/fixtures/` paths are those of a clone, so the directory links
//   `data` to the repository's;
// - `bash sw/slurm/submit.sh` is left out: it queues Slurm jobs (the CI's
//   .ci/slurm_test.sh runs the sweep on a Slurm cluster);
// - `sh` blocks of `deno task` / `npx` lines are the clone's commands: every
//   task they name must exist in deno.json (they are not run: `deno task
//   test` is this suite, `deno task sim` the CI's own step).
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import {
  existsSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import process from "node:process";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { packageImports } from "./_package_imports.ts";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const isDeno = typeof (globalThis as { Deno?: unknown }).Deno !== "undefined";
const readme = readFileSync(join(root, "README.md"), "utf8");
const config = JSON.parse(readFileSync(join(root, "deno.json"), "utf8"));

interface Block {
  lang: string;
  code: string;
  line: number;
}

/** The fenced blocks of `text` with a language, in order. */
function blocks(text: string): Block[] {
  const out: Block[] = [];
  const re = /^```(\w+)\n([\s\S]*?)^```$/gm;
  for (let m; (m = re.exec(text));) {
    out.push({
      lang: m[1],
      code: m[2],
      line: text.slice(0, m.index).split("\n").length,
    });
  }
  return out;
}

/** The commands of a shell block: comments dropped, `\` lines joined. */
function commands(code: string): string[] {
  return code.replace(/\\\n/g, " ").split("\n")
    .map((l) => l.replace(/\s+#.*$/, "").trim())
    .filter((l) => l !== "" && !l.startsWith("#"));
}

const isCloneCommand = (c: string) =>
  /^(deno task|npx -y deno@[\d.]+ task) /.test(c);

test("the README's examples are found", () => {
  const all = blocks(readme);
  assert.ok(all.filter((b) => b.lang === "ts").length >= 8);
  const shell = all.filter((b) => b.lang === "sh").flatMap((b) =>
    commands(b.code)
  );
  assert.ok(shell.some((c) => c.startsWith("moelab sim")));
  assert.ok(shell.some((c) => c.startsWith("moelab schedule")));
  assert.ok(shell.some((c) => c.startsWith("deno install -g")));
});

test("every deno task the README names exists", () => {
  for (const b of blocks(readme).filter((b) => b.lang === "sh")) {
    for (const c of commands(b.code).filter(isCloneCommand)) {
      const task = c.replace(/^.*? task /, "").split(" ")[0];
      assert.ok(task in config.tasks, `README line ${b.line}: ${c}`);
    }
  }
});

test("every README example runs from outside the clone", {
  skip: isDeno ? false : "runs deno child processes",
  timeout: 900_000,
}, () => {
  const deno = (globalThis as unknown as { Deno: { execPath(): string } })
    .Deno.execPath();
  const work = mkdtempSync(join(tmpdir(), "moelab-readme-"));
  try {
    symlinkSync(join(root, "data"), join(work, "data"));
    // The moelab command, installed from the clone as the README says.
    const bin = join(work, ".moelab");
    const install = spawnSync(deno, [
      "task",
      "--config",
      join(root, "deno.json"),
      "install",
    ], {
      cwd: work,
      env: { ...process.env, DENO_INSTALL_ROOT: bin },
      encoding: "utf8",
    });
    assert.equal(install.status, 0, install.stderr);
    const env = {
      ...process.env,
      PATH: `${join(bin, "bin")}:${dirname(deno)}:${process.env.PATH ?? ""}`,
    };
    const help = spawnSync("moelab", ["sim", "--help"], {
      cwd: work,
      env,
      encoding: "utf8",
    });
    assert.equal(help.status, 0, help.stderr);
    assert.match(help.stdout, /^moelab sim: /);

    // A user's project: the package's names point at the repository.
    const imports: Record<string, string> = packageImports(root);
    for (const [name, target] of Object.entries<string>(config.imports)) {
      imports[name] = target.startsWith("./")
        ? pathToFileURL(join(root, target)).href
        : target;
    }
    writeFileSync(join(work, "deno.json"), JSON.stringify({ imports }));

    let ts = 0;
    for (const b of blocks(readme)) {
      if (b.lang === "ts") {
        const file = join(work, `example_${ts++}.ts`);
        writeFileSync(file, b.code);
        // Relative paths in the examples are the clone's data/fixtures.
        const r = spawnSync(deno, ["run", "-A", file], {
          cwd: work,
          env,
          encoding: "utf8",
        });
        assert.equal(
          r.status,
          0,
          `README line ${b.line} (ts):\n${r.stderr}`,
        );
        continue;
      }
      if (b.lang !== "sh") continue;
      const lines = commands(b.code);
      if (lines.every(isCloneCommand)) continue;
      // The whole block as a script, heredocs included; the registry
      // install is done above from the clone, and Slurm's submit would
      // queue real jobs (.ci/slurm_test.sh runs it on a Slurm cluster).
      const script = b.code.split("\n").filter((l) =>
        !/^deno install -g .*jsr:/.test(l) &&
        !/^bash \S+\/submit\.sh/.test(l)
      ).join("\n");
      const r = spawnSync("bash", ["-euo", "pipefail", "-c", script], {
        cwd: work,
        env,
        encoding: "utf8",
      });
      assert.equal(
        r.status,
        0,
        `README line ${b.line} (sh):\n${script}\n${r.stderr}`,
      );
    }
    assert.ok(existsSync(join(work, "out/sim/loads.parquet")));
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
});
