import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { engineLoads } from "./engine_loads.ts";
import { readEngineLoads } from "./read_engine_loads.ts";
import { parseNpyTensor } from "./parse_npy_tensor.ts";
import { parseSafetensors } from "./parse_safetensors.ts";
import { parseTorchSave } from "./parse_torch_save.ts";
import type { Tensor } from "./tensor.ts";

const FIXTURES = fileURLToPath(
  new URL("../../data/fixtures/", import.meta.url),
);

/** What data/fixtures/make_serving_fixtures.py wrote, computed there with numpy. */
interface Expected {
  format: string;
  steps: number[];
  layers: number[];
  experts: number;
  counts: number[][][];
  ids?: number[][][];
}
const EXPECTED: Record<string, Expected> = JSON.parse(
  readFileSync(join(FIXTURES, "serving_fixtures.json"), "utf8"),
);

describe("engine recordings written by torch, numpy and safetensors", () => {
  for (const [name, want] of Object.entries(EXPECTED)) {
    test(`${name}: ${want.format}, counts as the script computed them`, () => {
      const got = readEngineLoads(join(FIXTURES, name));
      assert.equal(got.format, want.format);
      assert.deepEqual(got.steps, want.steps);
      assert.deepEqual(got.layers, want.layers);
      assert.equal(got.experts, want.experts);
      assert.deepEqual([...got.counts], want.counts.flat(2));
    });
  }

  test("routed experts: the raw ids read the same from .npy, torch.save and safetensors", () => {
    const ids = EXPECTED["routed_experts.npy"].ids!;
    const npy = parseNpyTensor(
      readFileSync(join(FIXTURES, "routed_experts.npy")),
    );
    const pt = parseTorchSave(
      readFileSync(join(FIXTURES, "routed_experts.pt")),
    ) as Tensor;
    const st = parseSafetensors(
      readFileSync(join(FIXTURES, "routed_experts.safetensors")),
    )
      .get("routed_experts")!;
    for (const t of [npy, pt, st]) {
      assert.equal(t.dtype, "int32");
      assert.deepEqual(t.shape, [ids.length, ids[0].length, ids[0][0].length]);
      assert.deepEqual([...t.data], ids.flat(2));
    }
  });

  test("a per_pass record's strided view reads as its values, not its storage order", () => {
    // Sums over steps equal the logical_count totals whatever the strides:
    // the script transposed record 1's storage; a reader ignoring strides
    // gets a different per-expert split for that step.
    const got = readEngineLoads(join(FIXTURES, "sglang_per_pass.pt"));
    const want = EXPECTED["sglang_per_pass.pt"].counts[1].flat();
    const per = got.layers.length * got.experts;
    assert.deepEqual([...got.counts.subarray(per, 2 * per)], want);
  });

  test("the ranks of a TensorRT-LLM directory add up to the sum of each file", () => {
    const dir = readEngineLoads(join(FIXTURES, "trtllm"));
    const r0 = readEngineLoads(join(FIXTURES, "trtllm/rank0.safetensors"));
    const r1 = readEngineLoads(join(FIXTURES, "trtllm/rank1.safetensors"));
    assert.deepEqual(
      [...dir.counts],
      [...r0.counts].map((x, i) => x + r1.counts[i]),
    );
  });

  test("options.experts widens routed experts and refuses fewer than seen", () => {
    const bytes = readFileSync(join(FIXTURES, "routed_experts.npy"));
    const seen = EXPECTED["routed_experts.npy"].experts;
    const wide = engineLoads(bytes, { experts: seen + 2 });
    assert.equal(wide.experts, seen + 2);
    assert.equal(wide.counts.length, 2 * (seen + 2));
    assert.throws(() => engineLoads(bytes, { experts: seen - 1 }), RangeError);
  });

  test("files of two formats are refused, naming the second", () => {
    assert.throws(
      () =>
        engineLoads([
          readFileSync(join(FIXTURES, "sglang_stat.pt")),
          readFileSync(join(FIXTURES, "routed_experts.npy")),
        ], { names: ["a.pt", "b.npy"] }),
      /b\.npy is a routed-experts recording but the files before it are sglang-stat/,
    );
  });
});

describe("files that are not what they claim", () => {
  test("a pickle that would call os.system is refused, and nothing runs", () => {
    const marker = "/tmp/moelab_pickle_executed";
    assert.throws(
      () => parseTorchSave(readFileSync(join(FIXTURES, "bad_pickle.pt"))),
      (e: Error) =>
        e instanceof SyntaxError && /global posix\.system/.test(e.message) &&
        /refused/.test(e.message),
    );
    let ran = true;
    try {
      readFileSync(marker);
    } catch {
      ran = false;
    }
    assert.equal(ran, false);
  });

  test("a logical_count that is not 3-D is a TypeError naming the field and its shape", () => {
    assert.throws(
      () => readEngineLoads(join(FIXTURES, "bad_logical_count.pt")),
      (e: Error) =>
        e instanceof TypeError &&
        /logical_count must be an integer tensor \[steps, layers, logical_experts\]: it is int32 of shape \[2, 8\]/
          .test(e.message),
    );
  });

  test("a torch.save dict of neither mode lists its keys", () => {
    assert.throws(
      () => readEngineLoads(join(FIXTURES, "bad_no_counts.pt")),
      /must hold logical_count .* its keys are "rank", "counts"/,
    );
  });

  test("a cut safetensors file is no engine file", () => {
    const bytes = readFileSync(join(FIXTURES, "routed_experts.safetensors"));
    assert.throws(
      () => engineLoads(bytes.subarray(0, 20), { names: ["cut.safetensors"] }),
      /cut\.safetensors is not a torch\.save, safetensors or \.npy file/,
    );
  });

  test("an int64 count above 2^53 is refused, not rounded", () => {
    const header = new TextEncoder().encode(
      JSON.stringify({
        "0_0": { dtype: "I64", shape: [1], data_offsets: [0, 8] },
      }),
    );
    const bytes = new Uint8Array(8 + header.length + 8);
    const view = new DataView(bytes.buffer);
    view.setBigUint64(0, BigInt(header.length), true);
    bytes.set(header, 8);
    view.setBigInt64(8 + header.length, 2n ** 53n + 1n, true);
    assert.throws(() => parseSafetensors(bytes), /beyond the 2\^53/);
    view.setBigInt64(8 + header.length, 2n ** 53n - 1n, true);
    assert.equal(parseSafetensors(bytes).get("0_0")!.data[0], 2 ** 53 - 1);
  });

  test("CSV bytes are no engine file", () => {
    assert.throws(
      () =>
        engineLoads(
          new TextEncoder().encode("step,layer,expert,load\n0,0,0,1\n"),
        ),
      SyntaxError,
    );
  });

  test("a truncated zip is a SyntaxError naming the file", () => {
    const bytes = readFileSync(join(FIXTURES, "sglang_stat.pt"));
    assert.throws(
      () =>
        parseTorchSave(bytes.subarray(0, bytes.length - 30), {
          name: "cut.pt",
        }),
      (e: Error) => e instanceof SyntaxError && e.message.startsWith("cut.pt"),
    );
  });

  test("a .npy header is refused before its elements are allocated", () => {
    const npy = (version: number, shape: string) => {
      const header =
        `{'descr': '<f8', 'fortran_order': False, 'shape': ${shape}, }`;
      const start = version === 1 ? 10 : 12;
      const padded = header + " ".repeat(128 - start - header.length - 1) +
        "\n";
      const bytes = new Uint8Array(128 + 16);
      bytes.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, version, 0]);
      new DataView(bytes.buffer).setUint16(8, padded.length, true);
      for (let i = 0; i < padded.length; i++) {
        bytes[start + i] = padded.charCodeAt(i);
      }
      return bytes;
    };
    assert.deepEqual(parseNpyTensor(npy(1, "(2,)")).shape, [2]);
    // 1e12 float64 elements claimed, 16 bytes held: refused at once.
    const start = performance.now();
    assert.throws(() => parseNpyTensor(npy(1, "(1000000, 1000000)")), {
      name: "RangeError",
      message:
        ".npy data is truncated: shape (1000000, 1000000) of <f8 needs 8000000000000 bytes, the file holds 16",
    });
    assert.ok(performance.now() - start < 100);
    assert.throws(() => parseNpyTensor(npy(1, "(0x10,)")), SyntaxError);
    assert.throws(() => parseNpyTensor(npy(2, "(2,)").subarray(0, 11)), {
      name: "SyntaxError",
      message: ".npy header is truncated",
    });
  });
});
