import { show } from "../validate.ts";

/**
 * The character vocabulary of the training models, one character per
 * symbol: space, `a`-`z`, `0`-`9`, the punctuation `.,;:?!'"-()` and, last,
 * `_` standing for every other character (the unknown symbol). Text is
 * lowercased before encoding. 49 symbols.
 */
export const CHAR_VOCAB: string =
  " abcdefghijklmnopqrstuvwxyz0123456789.,;:?!'\"-()_";

/** Index of the unknown symbol in {@linkcode CHAR_VOCAB}. */
export const UNKNOWN_CHAR: number = CHAR_VOCAB.length - 1;

// Char code -> symbol, built once; codes outside the table are unknown.
const TABLE = (() => {
  const t = new Uint8Array(128).fill(CHAR_VOCAB.length - 1);
  for (let i = 0; i < CHAR_VOCAB.length - 1; i++) {
    t[CHAR_VOCAB.charCodeAt(i)] = i;
    const upper = CHAR_VOCAB[i].toUpperCase().charCodeAt(0);
    t[upper] = i;
  }
  return t;
})();

/**
 * Encodes text with {@linkcode CHAR_VOCAB}: lowercase letters, digits,
 * space and the listed punctuation keep their symbol; every other
 * character becomes the unknown symbol.
 *
 * @param text Any string.
 * @returns Symbol ids, `Uint8Array` (one per UTF-16 code unit).
 * @throws {TypeError} If `text` is not a string.
 *
 * @example
 * ```ts
 * import { CHAR_VOCAB, decodeText, encodeText } from "@moelab/balance/train";
 * import assert from "node:assert/strict";
 *
 * const ids = encodeText("The cat, 42%");
 * assert.equal(ids.length, 12);
 * assert.equal(CHAR_VOCAB.length, 49);
 * assert.equal(decodeText(ids), "the cat, 42_");
 * ```
 */
export function encodeText(text: string): Uint8Array {
  if (typeof text !== "string") {
    throw new TypeError(
      `text must be a string: current value is ${show(text)}`,
    );
  }
  const out = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    out[i] = code < 128 ? TABLE[code] : UNKNOWN_CHAR;
  }
  return out;
}

/**
 * Decodes symbol ids of {@linkcode CHAR_VOCAB} back to text.
 *
 * @param ids Symbol ids.
 * @returns The text (unknown symbols as `_`).
 * @throws {RangeError} If an id is outside the vocabulary.
 *
 * @example
 * ```ts
 * import { decodeText } from "@moelab/balance/train";
 * import assert from "node:assert/strict";
 *
 * assert.equal(decodeText([8, 9]), "hi");
 * ```
 */
export function decodeText(ids: ArrayLike<number>): string {
  let s = "";
  for (let i = 0; i < ids.length; i++) {
    const id = ids[i];
    if (!(id >= 0 && id < CHAR_VOCAB.length && Number.isInteger(id))) {
      throw new RangeError(
        `ids must be vocabulary indices in [0, ${CHAR_VOCAB.length}): entry ${i} is ${id}`,
      );
    }
    s += CHAR_VOCAB[id];
  }
  return s;
}
