import { describe, test } from "node:test";
import assert from "node:assert/strict";
import pl from "nodejs-polars";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  tableFrame,
  type TableSource,
  writeTableParquet,
} from "./_table_writer.ts";

// A table of 1000 rows whose every column is a known function of the row.
const ROWS = 1000;
const LABELS = ["greedy", "loss-free", "bip"];
const source: TableSource = {
  rows: ROWS,
  columns: [
    { name: "row", kind: "int32" },
    { name: "method", kind: "label", labels: LABELS },
    { name: "half", kind: "float64" },
  ],
  slice(from, to) {
    const row = new Int32Array(to - from), code = new Int32Array(to - from);
    const half = new Float64Array(to - from);
    for (let r = from; r < to; r++) {
      row[r - from] = r, code[r - from] = r % 3, half[r - from] = r / 2;
    }
    return [row, code, half];
  },
};

/** A deterministic stream of 32-bit integers (a linear congruential generator). */
function lcg(seed: number): () => number {
  let x = seed >>> 0;
  return () => (x = (Math.imul(x, 1664525) + 1013904223) >>> 0);
}

// Floats whose bits a writer could lose: NaN, -0, infinities, subnormals.
const SPECIAL = [NaN, -0, 0, Infinity, -Infinity, 5e-324, -Number.MAX_VALUE];

/**
 * A table built to reach every path of the encoder: runs of every length
 * around the RLE threshold (8) at every alignment, a constant column (a
 * dictionary of one value), a column whose values span more than the
 * dictionary limit (PLAIN), negative values, labels with multi-byte
 * UTF-8 and an empty label, floats with special bits, and more rows than
 * a data page holds (2^17). Every column is kept whole for the check.
 */
function hardTable(rows: number): {
  source: TableSource;
  columns: (Int32Array | Float64Array)[];
} {
  const next = lcg(7);
  const runs = new Int32Array(rows), constant = new Int32Array(rows).fill(-5);
  const wide = new Int32Array(rows), small = new Int32Array(rows);
  const label = new Int32Array(rows), float = new Float64Array(rows);
  for (let r = 0, len = 1, v = 0; r < rows; len = len % 19 + 1, v++) {
    for (let i = 0; i < len && r < rows; i++) runs[r++] = (v * 37) % 300 - 150;
  }
  for (let r = 0; r < rows; r++) {
    wide[r] = next() | 0;
    small[r] = next() % 5;
    label[r] = r % 1000 < 500 ? Math.floor(r / 9) % 4 : next() % 4;
    float[r] = r % 97 === 0
      ? SPECIAL[(r / 97) % SPECIAL.length]
      : (next() - 2 ** 31) / 3;
  }
  const columns = [runs, constant, wide, small, label, float];
  return {
    columns,
    source: {
      rows,
      columns: [
        { name: "runs", kind: "int32" },
        { name: "constant", kind: "int32" },
        { name: "wide", kind: "int32" },
        { name: "small", kind: "int32" },
        { name: "label", kind: "label", labels: ["a", "é-ü", "", "日本"] },
        { name: "float", kind: "float64" },
      ],
      slice: (from, to) => columns.map((c) => c.subarray(from, to)),
    },
  };
}

/** Asserts that a column read back holds `want`, floats bit for bit. */
function assertColumn(
  back: pl.Series,
  want: Int32Array | Float64Array,
  name: string,
): void {
  const got = back.toTypedArray();
  assert.equal(got.length, want.length, name);
  if (want instanceof Float64Array) {
    assert.ok(got instanceof Float64Array, name);
    const a = new BigUint64Array(got.buffer, got.byteOffset, got.length);
    const b = new BigUint64Array(want.buffer, want.byteOffset, want.length);
    for (let i = 0; i < b.length; i++) {
      if (a[i] !== b[i]) assert.fail(`${name}[${i}]: ${got[i]} != ${want[i]}`);
    }
  } else {
    assert.ok(got instanceof Int32Array, name);
    for (let i = 0; i < want.length; i++) {
      if (got[i] !== want[i]) {
        assert.fail(`${name}[${i}]: ${got[i]} != ${want[i]}`);
      }
    }
  }
}

/** A Thrift compact-protocol struct, decoded: field id to value. */
type ThriftStruct = Map<number, unknown>;

/**
 * Decodes the Thrift compact-protocol struct at `at.pos` of `b` (a reader
 * written from the protocol's specification, for the tests: integers
 * zigzag-decoded, binaries as bytes, lists as arrays, structs as maps).
 */
function readStruct(b: Uint8Array, at: { pos: number }): ThriftStruct {
  const varint = () => {
    let n = 0, scale = 1;
    for (;;) {
      const byte = b[at.pos++];
      n += (byte & 0x7f) * scale;
      if (byte < 0x80) return n;
      scale *= 128;
    }
  };
  const zigzag = () => {
    const n = varint();
    return n % 2 === 0 ? n / 2 : -(n + 1) / 2;
  };
  const value = (type: number): unknown => {
    switch (type) {
      case 1:
        return true;
      case 2:
        return false;
      case 3:
        return b[at.pos++];
      case 4:
      case 5:
      case 6:
        return zigzag();
      case 8: {
        const n = varint();
        at.pos += n;
        return b.subarray(at.pos - n, at.pos);
      }
      case 9: {
        const head = b[at.pos++];
        const size = head >> 4 === 15 ? varint() : head >> 4;
        return Array.from(
          { length: size },
          () => (head & 15) === 1 ? b[at.pos++] === 1 : value(head & 15),
        );
      }
      case 12:
        return readStruct(b, at);
      default:
        throw new Error(`unexpected Thrift type ${type}`);
    }
  };
  const fields: ThriftStruct = new Map();
  let last = 0;
  for (;;) {
    const head = b[at.pos++];
    if (head === 0) return fields;
    const id = head >> 4 === 0 ? zigzag() : last + (head >> 4);
    fields.set(id, value(head & 15));
    last = id;
  }
}

/** The footer (FileMetaData) of the parquet file `path`, decoded. */
function footer(path: string): ThriftStruct {
  const file = readFileSync(path);
  const n = file.length;
  assert.equal(file.subarray(n - 4).toString(), "PAR1");
  const len = file.readUInt32LE(n - 8);
  return readStruct(new Uint8Array(file.subarray(n - 8 - len, n - 8)), {
    pos: 0,
  });
}

describe("writeTableParquet", () => {
  test("row groups, streamed into one file, give every row in order with labels decoded", () => {
    const dir = mkdtempSync(join(tmpdir(), "moelab-table-"));
    try {
      for (const group of [ROWS, 128, 7]) {
        const path = join(dir, `t${group}.parquet`);
        writeTableParquet(path, source, group);
        const back = pl.readParquet(path);
        assert.deepEqual(back.columns, ["row", "method", "half"]);
        assert.ok(back.getColumn("method").dtype.equals(pl.String));
        assert.ok(back.getColumn("row").dtype.equals(pl.Int32));
        assert.ok(back.getColumn("half").dtype.equals(pl.Float64));
        const rows = back.toRecords();
        assert.equal(rows.length, ROWS);
        rows.forEach((r, i) => {
          assert.equal(r.row, i);
          assert.equal(r.method, LABELS[i % 3]);
          assert.equal(r.half, i / 2);
        });
      }
      assert.equal(readdirSync(dir).length, 3, "nothing but the files");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("every encoding path reads back exactly, and equals Polars' own in-memory frame", () => {
    const dir = mkdtempSync(join(tmpdir(), "moelab-table-"));
    try {
      const rows = (1 << 17) + 4099;
      const { source: hard, columns } = hardTable(rows);
      const labels = (hard.columns[4] as { labels: readonly string[] }).labels;
      const wantLabels = Array.from(columns[4], (c) => labels[c]);
      const reference = tableFrame(hard);
      for (const group of [rows, 50000, 4093]) {
        const path = join(dir, `hard${group}.parquet`);
        writeTableParquet(path, hard, group);
        const back = pl.readParquet(path);
        assert.deepEqual(back.columns, hard.columns.map((c) => c.name));
        hard.columns.forEach((c, i) => {
          if (c.kind !== "label") {
            assertColumn(back.getColumn(c.name), columns[i], c.name);
          }
        });
        assert.deepEqual(back.getColumn("label").toArray(), wantLabels);
        assert.ok(back.getColumn("label").dtype.equals(pl.String));
        // Polars' frame of the same source (equality ignores NaN's bits, checked above).
        assert.ok(back.frameEqual(reference, true), `group ${group}`);
        // A lazy scan (row-group statistics may prune) finds the same rows.
        const picked = pl.scanParquet(path)
          .filter(pl.col("runs").gtEq(140).and(pl.col("small").eq(3)))
          .collectSync().height;
        let want = 0;
        for (let r = 0; r < rows; r++) {
          if (columns[0][r] >= 140 && columns[3][r] === 3) want++;
        }
        assert.equal(picked, want);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("the footer gives each row group's rows, and each Int32 column chunk its exact min and max", () => {
    const dir = mkdtempSync(join(tmpdir(), "moelab-table-"));
    try {
      const rows = 20000, group = 6000;
      const { source: hard, columns } = hardTable(rows);
      const path = join(dir, "stats.parquet");
      writeTableParquet(path, hard, group);
      const meta = footer(path);
      assert.equal(meta.get(3), rows);
      const groups = meta.get(4) as ThriftStruct[];
      assert.equal(groups.length, Math.ceil(rows / group));
      groups.forEach((g, gi) => {
        const from = gi * group, to = Math.min(rows, from + group);
        assert.equal(g.get(3), to - from);
        const chunks = g.get(1) as ThriftStruct[];
        assert.equal(chunks.length, hard.columns.length);
        hard.columns.forEach((c, ci) => {
          const m = chunks[ci].get(3) as ThriftStruct;
          assert.equal(m.get(5), to - from, "values");
          const stats = m.get(12) as ThriftStruct;
          if (c.kind !== "int32") {
            assert.ok(!stats.has(5) && !stats.has(6), c.name);
            return;
          }
          const v = columns[ci].subarray(from, to);
          const int = (bytes: unknown) =>
            new DataView((bytes as Uint8Array).slice().buffer).getInt32(
              0,
              true,
            );
          assert.equal(int(stats.get(6)), Math.min(...v), `${c.name} min`);
          assert.equal(int(stats.get(5)), Math.max(...v), `${c.name} max`);
        });
      });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("an empty table is a valid file with the columns' types", () => {
    const dir = mkdtempSync(join(tmpdir(), "moelab-table-"));
    try {
      const path = join(dir, "empty.parquet");
      writeTableParquet(path, { ...source, rows: 0 });
      const back = pl.readParquet(path);
      assert.equal(back.height, 0);
      assert.deepEqual(back.columns, ["row", "method", "half"]);
      assert.ok(back.getColumn("method").dtype.equals(pl.String));
      assert.equal(readFileSync(path).subarray(0, 4).toString(), "PAR1");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("a label index out of range is refused, naming the column and row", () => {
    const dir = mkdtempSync(join(tmpdir(), "moelab-table-"));
    try {
      const bad: TableSource = {
        ...source,
        slice(from, to) {
          const [row, code, half] = source.slice(from, to);
          if (from <= 500 && 500 < to) code[500 - from] = 3;
          return [row, code, half];
        },
      };
      assert.throws(
        () => writeTableParquet(join(dir, "bad.parquet"), bad, 300),
        /method must hold label indices in \[0, 3\): row 500 is 3/,
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
