// Builds the WebAssembly module of the "wasm" kernels from the C sources in
// lib/wasm/src/ and writes lib/wasm/_module.ts (the bytes in base64, the
// sources' SHA-256, the compiler's version). `deno task build-wasm`;
// `--check` rebuilds into memory and exits 1 when _module.ts differs (CI).
//
// Toolchain: clang and wasm-ld (Debian `clang lld`), freestanding: no libc,
// every buffer is a pointer the TypeScript side passes in, the shadow stack
// first (64 KiB), memory imported so that the runtime owns and grows it.
//
// A second module, the "threads" one, holds the route kernel, the dual
// rounds and the exact solver's row selection (route.c, dual.c, select.c)
// built for a SHARED memory (`-matomics`,
// `--shared-memory`): every routing thread instantiates it on one shared
// WebAssembly.Memory that holds the score matrices of `sharedScores`, so
// each thread reads them in place. Its data (dual.c's constant table) sits
// after the stack, below `__heap_base`, written once per memory by the
// start function wasm-ld adds; each instance gets its own stack in that
// memory through its exported `__stack_pointer`. That memory is 4 GiB from
// the start and never grows (its first and largest sizes are the same): V8
// checks every access of a WebAssembly kernel against the memory's size,
// and where a shared memory could grow (another thread may grow it), it
// loads that size again before each access; a fixed size it keeps in a
// register, as for a private memory. Measured at 16384 x 256, paired
// against a memory that grows: routing 4-5% less time, a BIP round 8%, a
// Quantile batch 7%. The address space is all reserved either way; the
// operating system backs a page when it is first written.
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import {
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import process from "node:process";
import { encodeBase64 } from "./_base64.ts";

const HERE = fileURLToPath(new URL(".", import.meta.url));
const SRC = join(HERE, "src");
const OUT = join(HERE, "_module.ts");

/** Bytes of the stack (first in memory) and pages the module starts with. */
const STACK_BYTES = 65536;
const INITIAL_PAGES = 16;
/** The threads module: its sources, stack, first and largest memory. */
const THREADS_SOURCES = ["dual.c", "route.c", "select.c"];
const THREADS_STACK_BYTES = 65536;
/** 4 GiB, all wasm32 addresses, from the start (see above). */
const THREADS_MAX_PAGES = 65536;
const THREADS_INITIAL_PAGES = THREADS_MAX_PAGES;
/**
 * The clang command line, sources last; `shared` builds the threads
 * module (imports a shared memory, exports its stack pointer).
 */
export function clangArgs(
  sources: string[],
  output: string,
  shared = false,
): string[] {
  const memory = shared
    ? [
      "-Wl,--shared-memory",
      `-Wl,--max-memory=${THREADS_MAX_PAGES * 65536}`,
      `-Wl,--initial-memory=${THREADS_INITIAL_PAGES * 65536}`,
      `-Wl,-z,stack-size=${THREADS_STACK_BYTES}`,
      "-Wl,--export=__stack_pointer",
    ]
    : [
      `-Wl,--initial-memory=${INITIAL_PAGES * 65536}`,
      `-Wl,-z,stack-size=${STACK_BYTES}`,
    ];
  return [
    "--target=wasm32",
    "-O3",
    "-msimd128",
    "-mbulk-memory",
    ...(shared ? ["-matomics", "-mmutable-globals"] : []),
    "-ffreestanding",
    "-nostdlib",
    "-fno-exceptions",
    "-Wall",
    "-Wextra",
    "-Werror",
    "-Wl,--no-entry",
    "-Wl,--import-memory",
    ...memory,
    "-Wl,--stack-first",
    "-Wl,--export=__heap_base",
    "-Wl,--strip-all",
    "-o",
    output,
    ...sources,
  ];
}

/** The C sources and headers, sorted by name, with their text. */
export function readSources(): { name: string; text: string }[] {
  return readdirSync(SRC)
    .filter((name) => name.endsWith(".c") || name.endsWith(".h"))
    .sort()
    .map((name) => ({ name, text: readFileSync(join(SRC, name), "utf8") }));
}

/** SHA-256 (hex) over the sources' names and texts, in order. */
export function sourcesHash(sources: { name: string; text: string }[]): string {
  const h = createHash("sha256");
  for (const s of sources) h.update(`${s.name}\n${s.text}\n\u0000`);
  return h.digest("hex");
}

/** Compiles the sources and returns the text of _module.ts. */
export function buildModuleText(): string {
  const sources = readSources();
  const dir = mkdtempSync(join(tmpdir(), "moelab-wasm-"));
  try {
    const compile = (names: string[], shared: boolean) => {
      const wasm = join(dir, shared ? "threads.wasm" : "moelab.wasm");
      execFileSync(
        "clang",
        clangArgs(names.map((name) => join("src", name)), wasm, shared),
        { cwd: HERE, stdio: ["ignore", "inherit", "inherit"] },
      );
      return new Uint8Array(readFileSync(wasm));
    };
    const bytes = compile(
      sources.map((s) => s.name).filter((name) => name.endsWith(".c")),
      false,
    );
    const threads = compile(THREADS_SOURCES, true);
    const version = execFileSync("clang", ["--version"], { encoding: "utf8" })
      .split("\n")[0];
    const hash = sourcesHash(sources);
    return [
      "// Generated by lib/wasm/build.ts (`deno task build-wasm`) from lib/wasm/src/ (*.c, *.h):",
      "// do not edit. The sources' hash is checked by lib/wasm/runtime_test.ts.",
      "",
      "/** The compiler that built the module. */",
      `export const WASM_COMPILER = ${JSON.stringify(version.trim())};`,
      "",
      "/** SHA-256 of the C sources the module was built from (names and texts). */",
      `export const WASM_SOURCES_SHA256 =\n  "${hash}";`,
      "",
      "/** Pages (64 KiB) of memory the module needs at start: its stack and data. */",
      `export const WASM_INITIAL_PAGES = ${INITIAL_PAGES};`,
      "",
      "/** The module, base64. */",
      `export const WASM_MODULE_BASE64 =\n  "${encodeBase64(bytes)}";`,
      "",
      "/** The threads module's stack bytes, first and largest pages (shared memory, one fixed size). */",
      `export const WASM_THREADS_STACK_BYTES = ${THREADS_STACK_BYTES};`,
      `export const WASM_THREADS_INITIAL_PAGES = ${THREADS_INITIAL_PAGES};`,
      `export const WASM_THREADS_MAX_PAGES = ${THREADS_MAX_PAGES};`,
      "",
      `/** The threads module (${
        THREADS_SOURCES.join(", ")
      } on a shared memory), base64. */`,
      `export const WASM_THREADS_MODULE_BASE64 =\n  "${
        encodeBase64(threads)
      }";`,
      "",
    ].join("\n");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

if (import.meta.main) {
  const text = buildModuleText();
  if (process.argv.includes("--check")) {
    let current = "";
    try {
      current = readFileSync(OUT, "utf8");
    } catch { /* absent: differs */ }
    if (current !== text) {
      console.error(
        "lib/wasm/_module.ts does not match its sources: run `deno task build-wasm`",
      );
      process.exit(1);
    }
    console.log("lib/wasm/_module.ts matches lib/wasm/src/ (*.c, *.h)");
  } else {
    writeFileSync(OUT, text);
    console.log("wrote lib/wasm/_module.ts");
  }
}
