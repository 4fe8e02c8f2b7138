// The row kernel of the matmul op, shared by the "cpu" kernel (all rows)
// and the "cpu-threads" kernel (blocks of rows per thread): out rows
// [from, to) of out = (accumulate ? out : 0) + op(a) op(b).
//
// Every output entry is one float64 sum over p = 0, 1, ..., k - 1 of
// exact products of float32 values, rounded once to float32 when stored.
// The sum order does not depend on the blocking or on the rows a thread
// takes, so every split gives the same bits.
//
// Layout: entry (i, p) of op(a) is a[i * aRow + p * aCol] and entry (p, j)
// of op(b) is b[p * bRow + j * bCol]; a transpose only swaps the strides.
// op(a) is read in place; op(b) is packed once per call into strips of
// four columns, each contiguous (k x 4, p-major), so that the inner loop
// reads it in order whatever its layout (as BLIS packs its B panel). Rows
// go in blocks whose part of op(a) stays in cache while every strip passes
// over it; registers hold a 4 x 4 block of out.

/** The sizes and layout of one matmul, as the row kernel reads them. */
export interface MatmulShape {
  m: number;
  n: number;
  k: number;
  transA: boolean;
  transB: boolean;
  accumulate: boolean;
}

/** Rows of `out` a micro-tile covers (the row blocks of threads are multiples of it). */
export const TILE_ROWS = 4;
const TILE_COLS = 4;
/** Floats of op(a) a block of rows may span (64 KiB: within L2). */
const BLOCK_FLOATS = 16384;

let packed = new Float32Array(0);

/** Computes rows `[from, to)` of `out` (see the module comment). */
export function matmulRows(
  a: Float32Array,
  b: Float32Array,
  out: Float32Array,
  shape: MatmulShape,
  from: number,
  to: number,
): void {
  const { m, n, k, transA, transB, accumulate } = shape;
  if (from >= to || n === 0) return;
  const aRow = transA ? 1 : k, aCol = transA ? m : 1;
  const bRow = transB ? 1 : n, bCol = transB ? k : 1;
  const strips = n - (n % TILE_COLS);
  if (packed.length < strips * k) packed = new Float32Array(strips * k);
  const pk = packed;
  const rows = to - from;
  const iEnd = from + rows - (rows % TILE_ROWS);
  const jEnd = n - (n % TILE_COLS);
  // Pack every full strip of four columns of op(b), p-major within a strip.
  for (let j = 0; j < jEnd; j += TILE_COLS) {
    for (let p = 0, s = j * bCol, q = j * k; p < k; p++, s += bRow, q += 4) {
      pk[q] = b[s];
      pk[q + 1] = b[s + bCol];
      pk[q + 2] = b[s + 2 * bCol];
      pk[q + 3] = b[s + 3 * bCol];
    }
  }
  // Blocks of rows whose part of op(a) stays in cache across the strips.
  const blockRows = Math.max(
    TILE_ROWS,
    Math.floor(BLOCK_FLOATS / Math.max(1, k) / TILE_ROWS) * TILE_ROWS,
  );
  for (let i0 = from; i0 < iEnd; i0 += blockRows) {
    const i1 = Math.min(iEnd, i0 + blockRows);
    for (let j = 0; j < jEnd; j += TILE_COLS) {
      const q0 = j * k;
      for (let i = i0; i < i1; i += TILE_ROWS) {
        const a0 = i * aRow, a1 = a0 + aRow, a2 = a1 + aRow, a3 = a2 + aRow;
        let c00 = 0, c01 = 0, c02 = 0, c03 = 0;
        let c10 = 0, c11 = 0, c12 = 0, c13 = 0;
        let c20 = 0, c21 = 0, c22 = 0, c23 = 0;
        let c30 = 0, c31 = 0, c32 = 0, c33 = 0;
        for (let p = 0, pa = 0, q = q0; p < k; p++, pa += aCol, q += 4) {
          const x0 = a[a0 + pa], x1 = a[a1 + pa];
          const x2 = a[a2 + pa], x3 = a[a3 + pa];
          const y0 = pk[q], y1 = pk[q + 1], y2 = pk[q + 2], y3 = pk[q + 3];
          c00 += x0 * y0;
          c01 += x0 * y1;
          c02 += x0 * y2;
          c03 += x0 * y3;
          c10 += x1 * y0;
          c11 += x1 * y1;
          c12 += x1 * y2;
          c13 += x1 * y3;
          c20 += x2 * y0;
          c21 += x2 * y1;
          c22 += x2 * y2;
          c23 += x2 * y3;
          c30 += x3 * y0;
          c31 += x3 * y1;
          c32 += x3 * y2;
          c33 += x3 * y3;
        }
        const o0 = i * n + j, o1 = o0 + n, o2 = o1 + n, o3 = o2 + n;
        if (accumulate) {
          // Add the old value last: (sum + old) rounds once, as in edge().
          c00 += out[o0];
          c01 += out[o0 + 1];
          c02 += out[o0 + 2];
          c03 += out[o0 + 3];
          c10 += out[o1];
          c11 += out[o1 + 1];
          c12 += out[o1 + 2];
          c13 += out[o1 + 3];
          c20 += out[o2];
          c21 += out[o2 + 1];
          c22 += out[o2 + 2];
          c23 += out[o2 + 3];
          c30 += out[o3];
          c31 += out[o3 + 1];
          c32 += out[o3 + 2];
          c33 += out[o3 + 3];
        }
        out[o0] = c00;
        out[o0 + 1] = c01;
        out[o0 + 2] = c02;
        out[o0 + 3] = c03;
        out[o1] = c10;
        out[o1 + 1] = c11;
        out[o1 + 2] = c12;
        out[o1 + 3] = c13;
        out[o2] = c20;
        out[o2 + 1] = c21;
        out[o2 + 2] = c22;
        out[o2 + 3] = c23;
        out[o3] = c30;
        out[o3 + 1] = c31;
        out[o3 + 2] = c32;
        out[o3 + 3] = c33;
      }
    }
  }
  // Rows left over below the last full tile.
  for (let i = iEnd; i < to; i++) {
    for (let j = 0; j < jEnd; j++) {
      edge(a, b, out, i, j, k, n, aRow, aCol, bRow, bCol, accumulate);
    }
  }
  // Columns left over right of the last full tile.
  for (let i = from; i < to; i++) {
    for (let j = jEnd; j < n; j++) {
      edge(a, b, out, i, j, k, n, aRow, aCol, bRow, bCol, accumulate);
    }
  }
}

/** One entry of out, summed in the same order as the tiles. */
function edge(
  a: Float32Array,
  b: Float32Array,
  out: Float32Array,
  i: number,
  j: number,
  k: number,
  n: number,
  aRow: number,
  aCol: number,
  bRow: number,
  bCol: number,
  accumulate: boolean,
): void {
  let s = 0;
  for (let p = 0; p < k; p++) {
    s += a[i * aRow + p * aCol] * b[p * bRow + j * bCol];
  }
  const o = i * n + j;
  out[o] = accumulate ? s + out[o] : s;
}
