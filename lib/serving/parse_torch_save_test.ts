import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { parseTorchSave } from "./parse_torch_save.ts";
import { readZip } from "./_zip.ts";

const STAT = fileURLToPath(
  new URL("../../data/fixtures/sglang_stat.pt", import.meta.url),
);

/**
 * The SGLang fixture with its data.pkl overwritten in place by `pickle`
 * (stored entries are views into the file; bytes after STOP are never read).
 */
function withPickle(pickle: number[]): Uint8Array {
  const bytes = new Uint8Array(readFileSync(STAT));
  const pkl =
    [...readZip(bytes, "fixture")].find(([n]) => n.endsWith("/data.pkl"))![1];
  assert.ok(pickle.length <= pkl.length);
  pkl.set(pickle);
  return bytes;
}

const ascii = (s: string) => [...s].map((c) => c.charCodeAt(0));
const PROTO2 = [0x80, 0x02];
const STOP = 0x2e;

describe("the restricted unpickler", () => {
  test("hand-made: PROTO, EMPTY_DICT, a key and an int, SETITEM", () => {
    // {"a": 7}: } X <len> a K 7 s .
    const saved = parseTorchSave(withPickle([
      ...PROTO2,
      0x7d,
      0x58,
      1,
      0,
      0,
      0,
      ...ascii("a"),
      0x4b,
      7,
      0x73,
      STOP,
    ]));
    assert.deepEqual(saved, new Map([["a", 7]]));
  });

  test("builtins.eval is refused by name before anything is called", () => {
    // c builtins\neval\n X "1+1" TUPLE1 REDUCE STOP
    const bytes = withPickle([
      ...PROTO2,
      0x63,
      ...ascii("builtins\neval\n"),
      0x58,
      3,
      0,
      0,
      0,
      ...ascii("1+1"),
      0x85,
      0x52,
      STOP,
    ]);
    assert.throws(
      () => parseTorchSave(bytes, { name: "evil.pt" }),
      /^SyntaxError: evil\.pt: the pickle names the global builtins\.eval/,
    );
  });

  test("an allowed name used as a callable is refused: storages are data, not functions", () => {
    const bytes = withPickle([
      ...PROTO2,
      0x63,
      ...ascii("torch\nIntStorage\n"),
      0x29,
      0x52,
      STOP,
    ]);
    assert.throws(() => parseTorchSave(bytes), /not an allowed function/);
  });

  test("opcodes outside the set (NEWOBJ, BUILD) are refused, naming the byte", () => {
    for (const op of [0x81, 0x62]) {
      assert.throws(
        () => parseTorchSave(withPickle([...PROTO2, 0x7d, op, STOP])),
        new RegExp(`opcode 0x${op.toString(16)} at byte 3`),
      );
    }
  });

  test("a zip without <name>/data.pkl is not a torch.save file", () => {
    const bytes = new Uint8Array(readFileSync(STAT));
    // Rename every data.pkl in place: local header and central directory.
    const text = new TextDecoder("latin1").decode(bytes);
    for (
      let at = text.indexOf("data.pkl");
      at >= 0;
      at = text.indexOf("data.pkl", at + 1)
    ) bytes.set(ascii("data.pkx"), at);
    assert.throws(
      () => parseTorchSave(bytes),
      /has no <name>\/data\.pkl entry/,
    );
  });
});
