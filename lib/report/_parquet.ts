// A streaming Apache Parquet writer for the long tables: one row group at a
// time goes to the file and is let go, so that writing holds one row group
// whatever the table's size (Polars' own writers hold the whole table).
//
// What it writes (Apache Parquet format 2, data pages v1): every column
// REQUIRED (no nulls), one column chunk per column and row group, pages of
// at most PAGE_ROWS values, each page gzip-compressed. Int32 columns whose
// values span fewer than DICTIONARY_SPAN integers, and label columns, are
// dictionary-encoded (a PLAIN dictionary page, then RLE/bit-packed hybrid
// indices, RLE_DICTIONARY); other Int32 and all Float64 columns are PLAIN.
// Labels are UTF-8 strings (logical type STRING), Int32 columns carry
// min/max statistics. The file metadata is Thrift's compact protocol.
import { closeSync, openSync, writeSync } from "node:fs";
import { gzipSync } from "node:zlib";

/** A column of a table: Int32 or Float64 values, or labels by index. */
export type ParquetColumn =
  | { name: string; kind: "int32" | "float64" }
  | { name: string; kind: "label"; labels: readonly string[] };

/** Values per data page. */
const PAGE_ROWS = 1 << 17;
/** Int32 columns whose values span fewer integers than this are dictionary-encoded. */
const DICTIONARY_SPAN = 1 << 16;
/** gzip level of the pages: fast, and the pages are mostly small integers already. */
const GZIP_LEVEL = 1;

// Parquet's enumerations (parquet.thrift), by name.
const TYPE = { INT32: 1, DOUBLE: 5, BYTE_ARRAY: 6 } as const;
const ENCODING = { PLAIN: 0, RLE: 3, RLE_DICTIONARY: 8 } as const;
const PAGE = { DATA: 0, DICTIONARY: 2 } as const;
const CODEC_GZIP = 2;
const REQUIRED = 0;
const CONVERTED_UTF8 = 0;

// Thrift compact protocol: field and element type codes.
const T = {
  I32: 5,
  I64: 6,
  BINARY: 8,
  LIST: 9,
  STRUCT: 12,
} as const;

/** A growable byte buffer. */
class Bytes {
  buf: Uint8Array;
  length = 0;
  constructor(capacity = 1024) {
    this.buf = new Uint8Array(capacity);
  }
  reserve(n: number): void {
    if (this.length + n <= this.buf.length) return;
    let cap = this.buf.length * 2;
    while (cap < this.length + n) cap *= 2;
    const next = new Uint8Array(cap);
    next.set(this.buf.subarray(0, this.length));
    this.buf = next;
  }
  byte(b: number): void {
    this.reserve(1);
    this.buf[this.length++] = b;
  }
  /** Unsigned LEB128 of a non-negative integer below 2^53. */
  varint(n: number): void {
    this.reserve(8);
    while (n >= 0x80) {
      this.buf[this.length++] = (n % 0x80) | 0x80;
      n = Math.floor(n / 0x80);
    }
    this.buf[this.length++] = n;
  }
  bytes(b: Uint8Array): void {
    this.reserve(b.length);
    this.buf.set(b, this.length);
    this.length += b.length;
  }
  view(): Uint8Array {
    return this.buf.subarray(0, this.length);
  }
}

/** Thrift compact-protocol encoder of the structures the footer and page headers need. */
class Thrift {
  readonly out = new Bytes();
  private last: number[] = [0];
  private field(id: number, type: number): void {
    const delta = id - this.last[this.last.length - 1];
    if (delta > 0 && delta <= 15) this.out.byte((delta << 4) | type);
    else {
      this.out.byte(type);
      this.zigzag(id);
    }
    this.last[this.last.length - 1] = id;
  }
  private zigzag(n: number): void {
    this.out.varint(n >= 0 ? 2 * n : -2 * n - 1);
  }
  /** An i32 or i64 field (exact below 2^53). */
  int(id: number, n: number, type: number = T.I32): this {
    this.field(id, type);
    this.zigzag(n);
    return this;
  }
  long(id: number, n: number): this {
    return this.int(id, n, T.I64);
  }
  binary(id: number, b: Uint8Array): this {
    this.field(id, T.BINARY);
    this.out.varint(b.length);
    this.out.bytes(b);
    return this;
  }
  string(id: number, s: string): this {
    return this.binary(id, new TextEncoder().encode(s));
  }
  /** A struct field whose members `body` writes. */
  struct(id: number, body: (t: this) => void): this {
    this.field(id, T.STRUCT);
    this.last.push(0);
    body(this);
    this.out.byte(0);
    this.last.pop();
    return this;
  }
  /** A list field of `items.length` elements of `type`, each written by `each`. */
  list<I>(
    id: number,
    type: number,
    items: readonly I[],
    each: (item: I) => void,
  ): this {
    this.field(id, T.LIST);
    if (items.length < 15) this.out.byte((items.length << 4) | type);
    else {
      this.out.byte(0xf0 | type);
      this.out.varint(items.length);
    }
    for (const item of items) {
      if (type === T.STRUCT) {
        this.last.push(0);
        each(item);
        this.out.byte(0);
        this.last.pop();
      } else each(item);
    }
    return this;
  }
  /** A list element: a zigzag integer. */
  element(n: number): void {
    this.zigzag(n);
  }
  /** A list element: a string. */
  elementString(s: string): void {
    const b = new TextEncoder().encode(s);
    this.out.varint(b.length);
    this.out.bytes(b);
  }
  /** Ends the top-level struct. */
  end(): Uint8Array {
    this.out.byte(0);
    return this.out.view();
  }
}

/** Bits to write the integers `[0, n)` in (at least 1). */
function bitWidth(n: number): number {
  let w = 1;
  while (w < 32 && n - 1 >= 2 ** w) w++;
  return w;
}

/** Length of the run of equal values starting at `i`, counting at most `cap`. */
function runAt(v: Int32Array, i: number, to: number, cap: number): number {
  const x = v[i];
  let j = i + 1;
  const end = Math.min(to, i + cap);
  while (j < end && v[j] === x) j++;
  return j - i;
}

/**
 * The RLE/bit-packed hybrid encoding of `v[from, to)` at `width` bits:
 * runs of 8 or more equal values as RLE runs, the rest bit-packed in
 * groups of 8 (the last group zero-padded, which only the page's end has).
 */
function encodeHybrid(
  v: Int32Array,
  from: number,
  to: number,
  width: number,
  out: Bytes,
): void {
  const valueBytes = Math.ceil(width / 8);
  let i = from;
  while (i < to) {
    const run = runAt(v, i, to, Infinity);
    if (run >= 8 || i + run === to) {
      out.varint(run * 2);
      out.reserve(valueBytes);
      for (let b = 0, x = v[i]; b < valueBytes; b++, x >>>= 8) {
        out.buf[out.length++] = x & 0xff;
      }
      i += run;
      continue;
    }
    // Bit-packed groups of 8 until a run of 8 starts at a group's start.
    const start = i;
    let groups = 0;
    do {
      i += 8;
      groups++;
    } while (i < to && runAt(v, i, to, 8) < 8);
    out.varint(groups * 2 + 1);
    out.reserve(groups * width);
    let acc = 0, bits = 0;
    for (let r = start; r < start + groups * 8; r++) {
      const x = r < to ? v[r] : 0;
      // Add `width` bits of x, LSB first, flushing whole bytes.
      for (let done = 0; done < width;) {
        const take = Math.min(width - done, 8 - bits);
        acc |= ((x >>> done) & ((1 << take) - 1)) << bits;
        bits += take;
        done += take;
        if (bits === 8) {
          out.buf[out.length++] = acc;
          acc = 0;
          bits = 0;
        }
      }
    }
    if (i > to) i = to;
  }
}

/** A page about to be written: header fields and its uncompressed body. */
interface PageBody {
  type: number;
  values: number;
  encoding: number;
  body: Uint8Array;
}

/** One column chunk, encoded: its pages and its metadata's figures. */
interface EncodedChunk {
  pages: PageBody[];
  encodings: number[];
  stats?: { min: number; max: number };
}

const LE = true;

/** Whether typed arrays hold their values little-endian, as PLAIN does. */
const LITTLE_ENDIAN = new Uint8Array(Uint16Array.of(1).buffer)[0] === 1;

/** PLAIN bytes of Int32 values (a copy). */
function plainInt32(v: Int32Array): Uint8Array {
  if (LITTLE_ENDIAN) return new Uint8Array(v.slice().buffer);
  const out = new Uint8Array(v.length * 4);
  const dv = new DataView(out.buffer);
  for (let i = 0; i < v.length; i++) dv.setInt32(4 * i, v[i], LE);
  return out;
}

/** PLAIN bytes of Float64 values (a copy: on little-endian hosts, bit for bit). */
function plainFloat64(v: Float64Array): Uint8Array {
  if (LITTLE_ENDIAN) return new Uint8Array(v.slice().buffer);
  const out = new Uint8Array(v.length * 8);
  const dv = new DataView(out.buffer);
  for (let i = 0; i < v.length; i++) dv.setFloat64(8 * i, v[i], LE);
  return out;
}

/** Data pages of dictionary indices `idx` over a dictionary of `size` entries. */
function indexPages(idx: Int32Array, size: number): PageBody[] {
  const width = bitWidth(size);
  const pages: PageBody[] = [];
  for (let from = 0; from < idx.length || from === 0; from += PAGE_ROWS) {
    const to = Math.min(idx.length, from + PAGE_ROWS);
    const out = new Bytes(Math.max(64, ((to - from) * width) / 8 + 64));
    out.byte(width);
    encodeHybrid(idx, from, to, width, out);
    pages.push({
      type: PAGE.DATA,
      values: to - from,
      encoding: ENCODING.RLE_DICTIONARY,
      body: out.view(),
    });
    if (to === idx.length) break;
  }
  return pages;
}

/** PLAIN data pages of `v`, `bytes` per value. */
function plainPages(
  v: Int32Array | Float64Array,
  plain: (v: never) => Uint8Array,
): PageBody[] {
  const pages: PageBody[] = [];
  for (let from = 0;; from += PAGE_ROWS) {
    const to = Math.min(v.length, from + PAGE_ROWS);
    pages.push({
      type: PAGE.DATA,
      values: to - from,
      encoding: ENCODING.PLAIN,
      body: plain(v.subarray(from, to) as never),
    });
    if (to >= v.length) break;
  }
  return pages;
}

/** The pages of one column chunk of `column`. */
function encodeChunk(
  column: ParquetColumn,
  v: Int32Array | Float64Array,
  firstRow: number,
): EncodedChunk {
  if (column.kind === "float64") {
    if (!(v instanceof Float64Array)) {
      throw new TypeError(`column ${column.name} must be a Float64Array`);
    }
    return { pages: plainPages(v, plainFloat64), encodings: [ENCODING.PLAIN] };
  }
  if (!(v instanceof Int32Array)) {
    throw new TypeError(`column ${column.name} must be an Int32Array`);
  }
  if (column.kind === "label") {
    const n = column.labels.length;
    for (let i = 0; i < v.length; i++) {
      if (!(v[i] >= 0 && v[i] < n)) {
        throw new RangeError(
          `column ${column.name} must hold label indices in [0, ${n}): row ${
            firstRow + i
          } is ${v[i]}`,
        );
      }
    }
    const dict = new Bytes();
    for (const label of column.labels) {
      const b = new TextEncoder().encode(label);
      dict.reserve(4 + b.length);
      new DataView(dict.buf.buffer).setInt32(dict.length, b.length, LE);
      dict.length += 4;
      dict.bytes(b);
    }
    return {
      pages: [
        {
          type: PAGE.DICTIONARY,
          values: n,
          encoding: ENCODING.PLAIN,
          body: dict.view(),
        },
        ...indexPages(v, n),
      ],
      encodings: [ENCODING.PLAIN, ENCODING.RLE, ENCODING.RLE_DICTIONARY],
    };
  }
  let min = 0, max = 0;
  if (v.length > 0) {
    min = max = v[0];
    for (let i = 1; i < v.length; i++) {
      const x = v[i];
      if (x < min) min = x;
      else if (x > max) max = x;
    }
  }
  const stats = v.length > 0 ? { min, max } : undefined;
  if (max - min >= DICTIONARY_SPAN) {
    return {
      pages: plainPages(v, plainInt32),
      encodings: [ENCODING.PLAIN],
      stats,
    };
  }
  // Dictionary: the values present, ascending; an index per row.
  const slot = new Int32Array(max - min + 1).fill(-1);
  for (let i = 0; i < v.length; i++) slot[v[i] - min] = 0;
  let size = 0;
  for (let s = 0; s < slot.length; s++) if (slot[s] === 0) slot[s] = size++;
  const values = new Int32Array(size);
  for (let s = 0; s < slot.length; s++) {
    if (slot[s] >= 0) values[slot[s]] = s + min;
  }
  const idx = new Int32Array(v.length);
  for (let i = 0; i < v.length; i++) idx[i] = slot[v[i] - min];
  return {
    pages: [
      {
        type: PAGE.DICTIONARY,
        values: size,
        encoding: ENCODING.PLAIN,
        body: plainInt32(values),
      },
      ...indexPages(idx, size),
    ],
    encodings: [ENCODING.PLAIN, ENCODING.RLE, ENCODING.RLE_DICTIONARY],
    stats,
  };
}

/** A column chunk's metadata, once its pages are in the file. */
interface ChunkMeta {
  column: ParquetColumn;
  encodings: number[];
  values: number;
  offset: number;
  dictionaryOffset: number | null;
  dataOffset: number;
  uncompressed: number;
  compressed: number;
  stats?: { min: number; max: number };
}

/** A row group's metadata. */
interface GroupMeta {
  rows: number;
  chunks: ChunkMeta[];
}

function physicalType(column: ParquetColumn): number {
  return column.kind === "int32"
    ? TYPE.INT32
    : column.kind === "float64"
    ? TYPE.DOUBLE
    : TYPE.BYTE_ARRAY;
}

const MAGIC = new TextEncoder().encode("PAR1");

/**
 * Writes a parquet file one row group at a time: open with the columns,
 * {@linkcode ParquetWriter.writeRowGroup} as often as needed (each call's
 * columns are encoded, written and let go), then
 * {@linkcode ParquetWriter.close} to write the footer.
 */
export class ParquetWriter {
  private fd: number;
  private offset = 0;
  private groups: GroupMeta[] = [];
  private rows = 0;

  /** Creates (or truncates) the file at `path` for a table of `columns`. */
  constructor(path: string, readonly columns: readonly ParquetColumn[]) {
    this.fd = openSync(path, "w");
    this.write(MAGIC);
  }

  private write(b: Uint8Array): void {
    let done = 0;
    while (done < b.length) {
      done += writeSync(this.fd, b, done, b.length - done, this.offset + done);
    }
    this.offset += b.length;
  }

  /** Writes a row group: one array per column, all of one length. */
  writeRowGroup(values: readonly (Int32Array | Float64Array)[]): void {
    if (values.length !== this.columns.length) {
      throw new RangeError(
        `values must hold ${this.columns.length} columns: it has ${values.length}`,
      );
    }
    const rows = values[0]?.length ?? 0;
    values.forEach((v, c) => {
      if (v.length !== rows) {
        throw new RangeError(
          `every column of a row group must have ${rows} rows: ${
            this.columns[c].name
          } has ${v.length}`,
        );
      }
    });
    const chunks: ChunkMeta[] = [];
    this.columns.forEach((column, c) => {
      const chunk = encodeChunk(column, values[c], this.rows);
      const meta: ChunkMeta = {
        column,
        encodings: chunk.encodings,
        values: rows,
        offset: this.offset,
        dictionaryOffset: null,
        dataOffset: -1,
        uncompressed: 0,
        compressed: 0,
        stats: chunk.stats,
      };
      for (const page of chunk.pages) {
        if (page.type === PAGE.DICTIONARY) meta.dictionaryOffset = this.offset;
        else if (meta.dataOffset < 0) meta.dataOffset = this.offset;
        const body = gzipSync(page.body, { level: GZIP_LEVEL });
        const header = new Thrift()
          .int(1, page.type)
          .int(2, page.body.length)
          .int(3, body.length);
        if (page.type === PAGE.DICTIONARY) {
          header.struct(7, (t) => t.int(1, page.values).int(2, page.encoding));
        } else {
          header.struct(5, (t) =>
            t.int(1, page.values)
              .int(2, page.encoding)
              .int(3, ENCODING.RLE)
              .int(4, ENCODING.RLE));
        }
        const head = header.end();
        this.write(head);
        this.write(body);
        meta.uncompressed += head.length + page.body.length;
        meta.compressed += head.length + body.length;
      }
      chunks.push(meta);
    });
    this.groups.push({ rows, chunks });
    this.rows += rows;
  }

  /** Writes the footer and closes the file. */
  close(): void {
    try {
      const t = new Thrift();
      t.int(1, 2);
      const schema: { name: string; column?: ParquetColumn }[] = [
        { name: "root" },
        ...this.columns.map((column) => ({ name: column.name, column })),
      ];
      t.list(2, T.STRUCT, schema, ({ name, column }) => {
        if (!column) {
          t.string(4, name).int(5, this.columns.length);
          return;
        }
        t.int(1, physicalType(column)).int(3, REQUIRED).string(4, name);
        if (column.kind === "label") {
          t.int(6, CONVERTED_UTF8).struct(10, (l) => l.struct(1, () => {}));
        }
      });
      t.long(3, this.rows);
      t.list(4, T.STRUCT, this.groups, (g) => {
        t.list(1, T.STRUCT, g.chunks, (c) => {
          t.long(2, c.offset);
          t.struct(3, (m) => {
            m.int(1, physicalType(c.column));
            m.list(2, T.I32, c.encodings, (e) => m.element(e));
            m.list(3, T.BINARY, [c.column.name], (n) => m.elementString(n));
            m.int(4, CODEC_GZIP);
            m.long(5, c.values);
            m.long(6, c.uncompressed);
            m.long(7, c.compressed);
            m.long(9, c.dataOffset);
            if (c.dictionaryOffset !== null) m.long(11, c.dictionaryOffset);
            m.struct(12, (s) => {
              s.long(3, 0);
              if (c.stats) {
                s.binary(5, plainInt32(Int32Array.of(c.stats.max)));
                s.binary(6, plainInt32(Int32Array.of(c.stats.min)));
              }
            });
          });
        });
        const size = g.chunks.reduce((a, c) => a + c.uncompressed, 0);
        t.long(2, size);
        t.long(3, g.rows);
        if (g.chunks.length > 0) t.long(5, g.chunks[0].offset);
        t.long(6, g.chunks.reduce((a, c) => a + c.compressed, 0));
      });
      t.string(6, "moelab");
      const footer = t.end();
      this.write(footer);
      const len = new Uint8Array(4);
      new DataView(len.buffer).setUint32(0, footer.length, LE);
      this.write(len);
      this.write(MAGIC);
    } finally {
      closeSync(this.fd);
    }
  }

  /** Closes the file without a footer (after a failure; the file is not valid parquet). */
  abandon(): void {
    closeSync(this.fd);
  }
}
