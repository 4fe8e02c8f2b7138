// A byte-level BPE tokenizer (Sennrich et al. 2016; GPT-2's byte-level
// form), trained on word types: text is split at spaces, each word keeps
// its leading space, and merges never cross a word boundary.
import { checkInteger, show } from "../../validate.ts";
import { type BrownOptions, loadBrown } from "../brown.ts";
import { decodeText } from "../vocab.ts";

/** Symbols every byte-level vocabulary starts with: the 256 bytes. */
export const BYTE_SYMBOLS = 256;

/** A trained byte-level BPE tokenizer. */
export interface BpeTokenizer {
  /** Vocabulary size: 256 bytes plus one symbol per merge. */
  readonly vocab: number;
  /** The merges in rank order: merge `r` joins `merges[r]` into symbol `256 + r`. */
  readonly merges: readonly (readonly [number, number])[];
  /** Encodes a text to symbol ids. */
  encode(text: string): Int32Array;
  /** Decodes symbol ids back to text (bytes read as Latin-1). */
  decode(ids: ArrayLike<number>): string;
}

const pairKey = (a: number, b: number) => a * 65536 + b;

// Words with their leading space: "the cat" -> ["the", " cat"].
function words(text: string): string[] {
  const out: string[] = [];
  let start = 0;
  for (let i = 1; i <= text.length; i++) {
    if (i === text.length || text.charCodeAt(i) === 32) {
      if (i > start) out.push(text.slice(start, i));
      start = i;
    }
  }
  return out;
}

function bytesOf(word: string): number[] {
  const out: number[] = [];
  for (let i = 0; i < word.length; i++) out.push(word.charCodeAt(i) & 255);
  return out;
}

/**
 * Trains a byte-level BPE tokenizer: starting from the 256 bytes, merges the
 * most frequent adjacent pair of symbols (counted over word types weighted
 * by their frequency; ties to the smallest pair of ids) until the
 * vocabulary has `vocab` symbols or no pair occurs twice. Deterministic.
 *
 * @param text Training text (characters above 255 keep their low byte).
 * @param vocab Target vocabulary size, at least 256.
 * @returns The tokenizer.
 * @throws {RangeError} If `vocab` is below 256 or above 65536.
 *
 * @example
 * ```ts
 * import { trainBpe } from "@moelab/balance/train";
 * import assert from "node:assert/strict";
 *
 * const bpe = trainBpe("the cat the hat the cat", 260);
 * assert.equal(bpe.vocab, 260);
 * assert.deepEqual(bpe.merges[0], [116, 104]); // "t" + "h", the commonest pair
 * assert.equal(bpe.decode(bpe.encode("the cat")), "the cat");
 * assert.ok(bpe.encode(" the").length < 4);
 * ```
 */
export function trainBpe(text: string, vocab: number): BpeTokenizer {
  if (typeof text !== "string") {
    throw new TypeError(
      `text must be a string: current value is ${show(text)}`,
    );
  }
  checkInteger("vocab", vocab, BYTE_SYMBOLS, 65536);
  const counts = new Map<string, number>();
  for (const w of words(text)) counts.set(w, (counts.get(w) ?? 0) + 1);
  const types = [...counts.keys()].sort();
  const seqs = types.map(bytesOf);
  const freq = types.map((t) => counts.get(t) as number);
  const merges: [number, number][] = [];
  while (BYTE_SYMBOLS + merges.length < vocab) {
    const pairs = new Map<number, number>();
    for (let t = 0; t < seqs.length; t++) {
      const s = seqs[t], f = freq[t];
      for (let i = 0; i + 1 < s.length; i++) {
        const key = pairKey(s[i], s[i + 1]);
        pairs.set(key, (pairs.get(key) ?? 0) + f);
      }
    }
    let best = -1, bestCount = 1;
    for (const [key, c] of pairs) {
      if (c > bestCount || (c === bestCount && best >= 0 && key < best)) {
        best = key;
        bestCount = c;
      }
    }
    if (best < 0) break;
    const a = Math.floor(best / 65536), b = best % 65536;
    const id = BYTE_SYMBOLS + merges.length;
    merges.push([a, b]);
    for (let t = 0; t < seqs.length; t++) seqs[t] = mergeAll(seqs[t], a, b, id);
  }
  return tokenizerFromMerges(merges);
}

function mergeAll(s: number[], a: number, b: number, id: number): number[] {
  let found = false;
  for (let i = 0; i + 1 < s.length; i++) {
    if (s[i] === a && s[i + 1] === b) {
      found = true;
      break;
    }
  }
  if (!found) return s;
  const out: number[] = [];
  for (let i = 0; i < s.length; i++) {
    if (i + 1 < s.length && s[i] === a && s[i + 1] === b) {
      out.push(id);
      i++;
    } else out.push(s[i]);
  }
  return out;
}

/**
 * A tokenizer from its merges (as {@linkcode trainBpe} returns them):
 * encoding applies, within each word, the lowest-ranked merge present until
 * none applies.
 *
 * @param merges Pairs of symbol ids, in rank order.
 * @returns The tokenizer.
 * @throws {RangeError} If a merge names a symbol not yet defined.
 *
 * @example
 * ```ts
 * import { tokenizerFromMerges } from "@moelab/balance/train";
 * import assert from "node:assert/strict";
 *
 * const bpe = tokenizerFromMerges([[97, 98]]); // "a" + "b" -> 256
 * assert.deepEqual([...bpe.encode("abab")], [256, 256]);
 * ```
 */
export function tokenizerFromMerges(
  merges: readonly (readonly [number, number])[],
): BpeTokenizer {
  const rank = new Map<number, number>();
  const pieces: string[] = [];
  for (let i = 0; i < BYTE_SYMBOLS; i++) pieces.push(String.fromCharCode(i));
  merges.forEach(([a, b], r) => {
    const id = BYTE_SYMBOLS + r;
    for (const [name, v] of [["a", a], ["b", b]] as const) {
      if (!Number.isInteger(v) || v < 0 || v >= id) {
        throw new RangeError(
          `merges[${r}].${name} must be a symbol below ${id}: current value is ${
            show(v)
          }`,
        );
      }
    }
    rank.set(pairKey(a, b), r);
    pieces.push(pieces[a] + pieces[b]);
  });
  const cache = new Map<string, number[]>();
  const encodeWord = (w: string): number[] => {
    const hit = cache.get(w);
    if (hit) return hit;
    let s = bytesOf(w);
    for (;;) {
      let bestRank = Infinity;
      for (let i = 0; i + 1 < s.length; i++) {
        const r = rank.get(pairKey(s[i], s[i + 1]));
        if (r !== undefined && r < bestRank) bestRank = r;
      }
      if (bestRank === Infinity) break;
      const [a, b] = merges[bestRank];
      s = mergeAll(s, a, b, BYTE_SYMBOLS + bestRank);
    }
    cache.set(w, s);
    return s;
  };
  return {
    vocab: BYTE_SYMBOLS + merges.length,
    merges,
    encode(text: string): Int32Array {
      if (typeof text !== "string") {
        throw new TypeError(
          `text must be a string: current value is ${show(text)}`,
        );
      }
      const out: number[] = [];
      for (const w of words(text)) for (const id of encodeWord(w)) out.push(id);
      return Int32Array.from(out);
    },
    decode(ids: ArrayLike<number>): string {
      let s = "";
      for (let i = 0; i < ids.length; i++) {
        const id = ids[i];
        if (!Number.isInteger(id) || id < 0 || id >= pieces.length) {
          throw new RangeError(
            `ids[${i}] must be a symbol below ${pieces.length}: current value is ${
              show(id)
            }`,
          );
        }
        s += pieces[id];
      }
      return s;
    },
  };
}

/** Options of {@linkcode loadBrownTokens}. */
export interface BrownTokensOptions extends BrownOptions {
  /** BPE vocabulary size. Default `512`. */
  vocab?: number;
}

/** The Brown corpus as BPE tokens, split by file. */
export interface BrownTokens {
  /** Training tokens. */
  train: Int32Array;
  /** Validation tokens. */
  valid: Int32Array;
  /** The tokenizer, trained on the training files only. */
  tokenizer: BpeTokenizer;
  /** Names of the training files. */
  trainFiles: string[];
  /** Names of the validation files. */
  validFiles: string[];
}

/**
 * Loads the Brown corpus split by file ({@linkcode loadBrown}: lowercased,
 * tags stripped, every `validEvery`-th file validation), trains a byte-level
 * BPE tokenizer of `vocab` symbols on the training files only and encodes
 * both sides with it.
 *
 * @param options See {@linkcode BrownTokensOptions}.
 * @returns Tokens, tokenizer and file names.
 * @throws {RangeError} If an option is out of range.
 *
 * @example
 * ```ts
 * import { loadBrownTokens } from "@moelab/balance/train";
 * import assert from "node:assert/strict";
 *
 * const c = loadBrownTokens({ maxFiles: 4, validEvery: 4, vocab: 300 });
 * assert.deepEqual(c.validFiles, ["ca04"]);
 * assert.ok(c.tokenizer.decode(c.train.subarray(0, 8)).startsWith("the fulton"));
 * ```
 */
export function loadBrownTokens(options: BrownTokensOptions = {}): BrownTokens {
  const vocab = checkInteger(
    "vocab",
    options.vocab ?? 512,
    BYTE_SYMBOLS,
    65536,
  );
  const corpus = loadBrown(options);
  const trainText = decodeText(corpus.train);
  const tokenizer = trainBpe(trainText, vocab);
  return {
    train: tokenizer.encode(trainText),
    valid: tokenizer.encode(decodeText(corpus.valid)),
    tokenizer,
    trainFiles: corpus.trainFiles,
    validFiles: corpus.validFiles,
  };
}
