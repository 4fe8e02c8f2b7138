// One forward and backward pass of the MoE transformer over a batch of
// sequences: pre-norm blocks x += attn(norm(x)); x += ffn(norm(x)), with
// the FFN a dense net or routed experts plus an optional shared expert.
import type { Routing, ScoreMatrix } from "../../types.ts";
import { auxLoss, zLoss } from "../aux_loss.ts";
import { type LmKernels, lmKernels, type MatmulArgs } from "./_kernels.ts";
import {
  isMoeBlock,
  type LmBackend,
  type ResolvedTransformerConfig,
  sharedWidth,
  type TransformerModel,
  type TransformerParams,
  transformerViews,
} from "./model.ts";
import { fdlibmExp, fdlibmLog } from "../../numeric/fdlibm.ts";

/** Saved activations of one block. */
interface BlockBuffers {
  /** Block input (the residual stream), `N x d`. */
  xIn: Float32Array;
  a1: Float32Array;
  rstd1: Float32Array;
  /** Projections in token layout, `N x d`. */
  q: Float32Array;
  k: Float32Array;
  v: Float32Array;
  /** The same in head layout, `(B, H, T, D)`. */
  qh: Float32Array;
  kh: Float32Array;
  vh: Float32Array;
  oh: Float32Array;
  probs: Float32Array;
  /** Attention output in token layout, `N x d`. */
  o: Float32Array;
  xMid: Float32Array;
  a2: Float32Array;
  rstd2: Float32Array;
  /** Router logits and scores, `N x E`. */
  r: Float32Array;
  s: Float32Array;
  s64: Float64Array;
  /** Selected experts, `N x slots`, and their gate weights. */
  sel: Int32Array;
  slots: number;
  gate: Float64Array;
  /** Float32 copy of `gate`, as the combine kernel takes it. */
  gate32: Float32Array;
  /** Dispatch: rows grouped by expert (`offsets`), and each slot's row (`slotOf`, -1: none). */
  offsets: Int32Array;
  slotOf: Int32Array;
  xe: Float32Array;
  /** Experts' hidden pre-activations and their SiLU, `rows x hidden`. */
  hpre: Float32Array;
  he: Float32Array;
  ye: Float32Array;
  /** Shared expert / dense FFN pre-activations `N x sh`, and its hidden after SiLU. */
  spre: Float32Array;
  sh: Float32Array;
  routing?: Routing;
}

/** Buffers for batches of up to `capacity` sequences, allocated once per run. */
export interface TransformerWorkspace {
  /** Sequences the buffers hold. */
  readonly capacity: number;
  /** Input tokens, `capacity x seqLen`; the caller fills them. */
  readonly tokens: Int32Array;
  /** Next-token targets, `capacity x seqLen`; the caller fills them. */
  readonly targets: Int32Array;
  /** Gradient of every parameter, laid out as the model's `params`. */
  readonly grads: Float32Array;
  /** Named views into `grads`. */
  readonly gradViews: TransformerParams;
  /** The kernels the step runs. */
  readonly kernels: LmKernels;
  /** Allocates a float32 buffer where the kernels want it. */
  readonly f32: (n: number) => Float32Array;
  blocks: BlockBuffers[];
  xF: Float32Array;
  f: Float32Array;
  rstdF: Float32Array;
  logits: Float32Array;
  dx: Float32Array;
  dy: Float32Array;
  da: Float32Array;
  dq: Float32Array;
  dk: Float32Array;
  dv: Float32Array;
  dqh: Float32Array;
  dkh: Float32Array;
  dvh: Float32Array;
  doh: Float32Array;
  dye: Float32Array;
  dhe: Float32Array;
  dxe: Float32Array;
  dsh: Float32Array;
  ds64: Float64Array;
  dr64: Float64Array;
  dr: Float32Array;
  dgate32: Float32Array;
}

/**
 * Allocates a {@linkcode TransformerWorkspace} for `model`, batches of up
 * to `capacity` sequences and the kernels of `backend`.
 */
export function createTransformerWorkspace(
  model: TransformerModel,
  capacity: number,
  backend: LmBackend = "cpu",
  env: { threads?: number; gpu?: unknown } = {},
): TransformerWorkspace {
  const c = model.config, T = c.seqLen, d = c.dim, N = capacity * T;
  const E = c.experts, H = c.heads;
  // The "cpu-threads" kernels read and write shared memory in place.
  const f32 = backend === "cpu-threads"
    ? (n: number) => new Float32Array(new SharedArrayBuffer(4 * n))
    : (n: number) => new Float32Array(n);
  const rows = N * c.topK;
  const blocks: BlockBuffers[] = [];
  let maxSh = 1;
  for (let l = 0; l < c.layers; l++) {
    const sh = sharedWidth(c, l);
    maxSh = Math.max(maxSh, sh);
    blocks.push({
      xIn: f32(N * d),
      a1: f32(N * d),
      rstd1: f32(N),
      q: f32(N * d),
      k: f32(N * d),
      v: f32(N * d),
      qh: f32(N * d),
      kh: f32(N * d),
      vh: f32(N * d),
      oh: f32(N * d),
      probs: f32(capacity * H * T * T),
      o: f32(N * d),
      xMid: f32(N * d),
      a2: f32(N * d),
      rstd2: f32(N),
      r: f32(N * E),
      s: f32(N * E),
      s64: new Float64Array(N * E),
      sel: new Int32Array(N * c.topK),
      slots: c.topK,
      gate: new Float64Array(N * c.topK),
      gate32: f32(rows),
      offsets: new Int32Array(E + 1),
      slotOf: new Int32Array(rows),
      xe: f32(rows * d),
      hpre: f32(rows * c.hidden),
      he: f32(rows * c.hidden),
      ye: f32(rows * d),
      spre: f32(N * sh),
      sh: f32(N * sh),
    });
  }
  const grads = f32(model.params.length);
  return {
    capacity,
    tokens: new Int32Array(N),
    targets: new Int32Array(N),
    grads,
    gradViews: transformerViews(grads, c),
    kernels: lmKernels(backend, env),
    f32,
    blocks,
    xF: f32(N * d),
    f: f32(N * d),
    rstdF: f32(N),
    logits: f32(N * c.vocab),
    dx: f32(N * d),
    dy: f32(N * d),
    da: f32(N * d),
    dq: f32(N * d),
    dk: f32(N * d),
    dv: f32(N * d),
    dqh: f32(N * d),
    dkh: f32(N * d),
    dvh: f32(N * d),
    doh: f32(N * d),
    dye: f32(rows * d),
    dhe: f32(rows * c.hidden),
    dxe: f32(rows * d),
    dsh: f32(N * maxSh),
    ds64: new Float64Array(N * E),
    dr64: new Float64Array(N * E),
    dr: f32(N * E),
    dgate32: f32(rows),
  };
}

/** A loss added to the language-model loss to shape the routers (summed over MoE blocks). */
export type LmRouterObjective =
  | { kind: "aux"; alpha: number; seqLen?: number }
  | { kind: "z-loss"; coef: number };

/**
 * Chooses the experts of MoE block `moeLayer` (0 for the first MoE block)
 * from its router scores (`N x E`, float32). The selection is a constant
 * for the gradient.
 */
export type LmSelect = (
  moeLayer: number,
  scores: ScoreMatrix,
) => Routing | Promise<Routing>;

/** What {@linkcode transformerStep} measured. */
export interface LmStepResult {
  /** Mean cross-entropy over the batch, nats per token. */
  ce: number;
  /** The router objective's value, summed over the MoE blocks (0 without one). */
  aux: number;
  /** The routing of each MoE block. */
  routings: Routing[];
}

// ---------------------------------------------------------------------------
// Layers (CPU loops for the cheap element-wise parts; matmul and attention go
// through the kernels).

// (B, T, H, D) token layout <-> (B, H, T, D) head layout: `intoHeads`
// copies token rows into head rows, otherwise head rows back into tokens.
function copyHeads(
  src: Float32Array,
  dst: Float32Array,
  B: number,
  T: number,
  H: number,
  D: number,
  intoHeads: boolean,
): void {
  for (let b = 0; b < B; b++) {
    for (let t = 0; t < T; t++) {
      for (let h = 0; h < H; h++) {
        const token = ((b * T + t) * H + h) * D;
        const head = ((b * H + h) * T + t) * D;
        const s = intoHeads ? token : head, o = intoHeads ? head : token;
        for (let e = 0; e < D; e++) dst[o + e] = src[s + e];
      }
    }
  }
}

const INTO_HEADS = true, INTO_TOKENS = false;

/** SiLU (swish): `out = x * sigmoid(x)`. */
function silu(x: Float32Array, out: Float32Array, len: number): void {
  for (let i = 0; i < len; i++) out[i] = x[i] / (1 + fdlibmExp(-x[i]));
}

/** Multiplies `d` by SiLU's derivative at `x`: `s (1 + x (1 - s))`, `s = sigmoid(x)`. */
function siluBackward(x: Float32Array, d: Float32Array, len: number): void {
  for (let i = 0; i < len; i++) {
    const s = 1 / (1 + fdlibmExp(-x[i]));
    d[i] *= s * (1 + x[i] * (1 - s));
  }
}

/** Gate weights of the selected experts from float64 scores. */
function gateForward(
  c: ResolvedTransformerConfig,
  n: number,
  s: Float64Array,
  sel: Int32Array,
  slots: number,
  gate: Float64Array,
): void {
  const E = c.experts;
  for (let i = 0; i < n; i++) {
    let sum = 0;
    for (let k = 0; k < slots; k++) {
      const j = sel[i * slots + k];
      sum += gate[i * slots + k] = j < 0 ? 0 : s[i * E + j];
    }
    if (c.normalize && sum > 0) {
      for (let k = 0; k < slots; k++) gate[i * slots + k] /= sum;
    }
  }
}

function gateBackward(
  c: ResolvedTransformerConfig,
  n: number,
  s: Float64Array,
  sel: Int32Array,
  slots: number,
  gate: Float64Array,
  dgate: Float64Array,
  ds: Float64Array,
): void {
  const E = c.experts;
  for (let i = 0; i < n; i++) {
    const kb = i * slots;
    if (c.normalize) {
      let sum = 0, dot = 0;
      for (let k = 0; k < slots; k++) {
        const j = sel[kb + k];
        if (j < 0) continue;
        sum += s[i * E + j];
        dot += dgate[kb + k] * gate[kb + k];
      }
      if (!(sum > 0)) continue;
      for (let k = 0; k < slots; k++) {
        const j = sel[kb + k];
        if (j >= 0) ds[i * E + j] += (dgate[kb + k] - dot) / sum;
      }
    } else {
      for (let k = 0; k < slots; k++) {
        const j = sel[kb + k];
        if (j >= 0) ds[i * E + j] += dgate[kb + k];
      }
    }
  }
}

// The kernels see exactly the operands' extents (the workspace is sized for
// the largest batch).
function trimMatmul(x: MatmulArgs): MatmulArgs {
  const sa = x.m * x.k, sb = x.k * x.n, so = x.m * x.n;
  return {
    ...x,
    a: x.a.length === sa ? x.a : x.a.subarray(0, sa),
    b: x.b.length === sb ? x.b : x.b.subarray(0, sb),
    out: x.out.length === so ? x.out : x.out.subarray(0, so),
  };
}

// Grows the dispatch buffers to `n * slots` rows (Expert Choice routes
// with one slot per expert).
function ensureRows(
  ws: TransformerWorkspace,
  bb: BlockBuffers,
  c: ResolvedTransformerConfig,
  n: number,
  slots: number,
): void {
  const d = c.dim, h = c.hidden, rows = n * slots;
  const f32 = ws.f32;
  if (bb.slotOf.length < rows) {
    bb.slotOf = new Int32Array(rows);
    bb.sel = new Int32Array(rows);
    bb.gate = new Float64Array(rows);
    bb.gate32 = f32(rows);
    bb.xe = f32(rows * d);
    bb.hpre = f32(rows * h);
    bb.he = f32(rows * h);
    bb.ye = f32(rows * d);
  }
  if (ws.dgate32.length < rows) {
    ws.dgate32 = f32(rows);
    ws.dye = f32(rows * d);
    ws.dhe = f32(rows * h);
    ws.dxe = f32(rows * d);
  }
}

/**
 * Forward pass over the first `seqs` sequences of the workspace (`tokens`,
 * `targets` filled by the caller) and, when `backward` is set, the backward
 * pass of `ce + objective` into `ws.grads` (overwritten).
 *
 * @returns Cross-entropy, the objective's value, and each MoE block's routing.
 */
export async function transformerStep(
  model: TransformerModel,
  ws: TransformerWorkspace,
  seqs: number,
  select: LmSelect,
  objective?: LmRouterObjective,
  backward = true,
): Promise<LmStepResult> {
  const c = model.config, p = model.views, K = ws.kernels;
  const T = c.seqLen, d = c.dim, H = c.heads, D = d / H, E = c.experts;
  const V = c.vocab, n = seqs * T, hdn = c.hidden;
  const routings: Routing[] = [];
  const mm = (x: MatmulArgs) => K.matmul(trimMatmul(x));
  // out (m x n) = (accumulate ? out : 0) + op(a) · op(b), after matmulOp;
  // the suffix names the transposed operand: `mmAtB` reads a stored k x m,
  // `mmABt` reads b stored n x k.
  type Mm = (
    a: Float32Array,
    b: Float32Array,
    out: Float32Array,
    m: number,
    n: number,
    k: number,
    accumulate: boolean,
  ) => ReturnType<typeof mm>;
  const mmAB: Mm = (a, b, out, m, n, k, accumulate) =>
    mm({ a, b, out, m, n, k, transA: false, transB: false, accumulate });
  const mmAtB: Mm = (a, b, out, m, n, k, accumulate) =>
    mm({ a, b, out, m, n, k, transA: true, transB: false, accumulate });
  const mmABt: Mm = (a, b, out, m, n, k, accumulate) =>
    mm({ a, b, out, m, n, k, transA: false, transB: true, accumulate });
  // Embedding.
  {
    const x = ws.blocks[0]?.xIn ?? ws.xF;
    for (let i = 0; i < n; i++) {
      const tb = ws.tokens[i] * d, pb = (i % T) * d, xb = i * d;
      for (let m = 0; m < d; m++) {
        x[xb + m] = p.tokEmb[tb + m] + p.posEmb[pb + m];
      }
    }
  }
  let moeLayer = 0;
  for (let l = 0; l < c.layers; l++) {
    const bp = p.blocks[l], bb = ws.blocks[l];
    const xOut = l + 1 < c.layers ? ws.blocks[l + 1].xIn : ws.xF;
    // Attention.
    await K.rmsNorm({
      x: bb.xIn.subarray(0, n * d),
      gain: bp.norm1,
      out: bb.a1.subarray(0, n * d),
      rstd: bb.rstd1.subarray(0, n),
      rows: n,
      dim: d,
      eps: c.eps,
    });
    for (const [w, y] of [[bp.wq, bb.q], [bp.wk, bb.k], [bp.wv, bb.v]]) {
      await mmABt(bb.a1, w, y, n, d, d, false);
    }
    copyHeads(bb.q, bb.qh, seqs, T, H, D, INTO_HEADS);
    copyHeads(bb.k, bb.kh, seqs, T, H, D, INTO_HEADS);
    copyHeads(bb.v, bb.vh, seqs, T, H, D, INTO_HEADS);
    await K.attention({
      q: bb.qh.subarray(0, n * d),
      k: bb.kh.subarray(0, n * d),
      v: bb.vh.subarray(0, n * d),
      out: bb.oh.subarray(0, n * d),
      probs: bb.probs.subarray(0, seqs * H * T * T),
      batch: seqs,
      heads: H,
      seq: T,
      headDim: D,
    });
    copyHeads(bb.oh, bb.o, seqs, T, H, D, INTO_TOKENS);
    bb.xMid.set(bb.xIn.subarray(0, n * d));
    await mmABt(bb.o, bp.wo, bb.xMid, n, d, d, true);
    // FFN.
    await K.rmsNorm({
      x: bb.xMid.subarray(0, n * d),
      gain: bp.norm2,
      out: bb.a2.subarray(0, n * d),
      rstd: bb.rstd2.subarray(0, n),
      rows: n,
      dim: d,
      eps: c.eps,
    });
    xOut.set(bb.xMid.subarray(0, n * d));
    const sh = sharedWidth(c, l);
    if (sh > 0) {
      await mmABt(bb.a2, bp.sw1, bb.spre, n, sh, d, false);
      silu(bb.spre, bb.sh, n * sh);
      await mmABt(bb.sh, bp.sw2, xOut, n, d, sh, true);
    }
    if (!isMoeBlock(c, l)) continue;
    await mmABt(bb.a2, bp.router, bb.r, n, E, d, false);
    const ne = n * E;
    for (let i = 0; i < n; i++) {
      const rb = i * E;
      if (c.gate === "softmax") {
        let max = -Infinity;
        for (let j = 0; j < E; j++) max = Math.max(max, bb.r[rb + j]);
        let z = 0;
        for (let j = 0; j < E; j++) {
          z += bb.s64[rb + j] = fdlibmExp(bb.r[rb + j] - max);
        }
        for (let j = 0; j < E; j++) bb.s64[rb + j] /= z;
      } else {
        for (let j = 0; j < E; j++) {
          bb.s64[rb + j] = 1 / (1 + fdlibmExp(-bb.r[rb + j]));
        }
      }
    }
    for (let i = 0; i < ne; i++) bb.s[i] = bb.s64[i];
    const routing = await select(moeLayer, {
      data: bb.s.subarray(0, ne),
      tokens: n,
      experts: E,
    });
    routings.push(routing);
    bb.routing = routing;
    moeLayer++;
    const slots = routing.k, ns = n * slots;
    ensureRows(ws, bb, c, n, slots);
    bb.slots = slots;
    bb.sel.set(routing.experts.subarray(0, ns));
    gateForward(c, n, bb.s64, bb.sel, slots, bb.gate);
    for (let i = 0; i < ns; i++) bb.gate32[i] = bb.gate[i];
    // Dispatch: rows grouped by expert, tokens ascending within an expert.
    const disp = await K.dispatch({
      x: bb.a2.subarray(0, n * d),
      experts: bb.sel.subarray(0, ns),
      tokens: n,
      k: slots,
      dim: d,
      numExperts: E,
      out: bb.xe.subarray(0, ns * d),
      offsets: bb.offsets,
      slotOf: bb.slotOf.subarray(0, ns),
    });
    if (disp.offsets !== bb.offsets) bb.offsets.set(disp.offsets);
    if (disp.slotOf.buffer !== bb.slotOf.buffer) bb.slotOf.set(disp.slotOf);
    const off = bb.offsets;
    for (let e = 0; e < E; e++) {
      const r0 = off[e], ne_ = off[e + 1] - r0;
      if (ne_ === 0) continue;
      const he = bb.he.subarray(r0 * hdn, (r0 + ne_) * hdn);
      const hpre = bb.hpre.subarray(r0 * hdn, (r0 + ne_) * hdn);
      await mmABt(
        bb.xe.subarray(r0 * d, (r0 + ne_) * d),
        bp.w1.subarray(e * hdn * d, (e + 1) * hdn * d),
        hpre,
        ne_,
        hdn,
        d,
        false,
      );
      silu(hpre, he, he.length);
      await mmABt(
        he,
        bp.w2.subarray(e * d * hdn, (e + 1) * d * hdn),
        bb.ye.subarray(r0 * d, (r0 + ne_) * d),
        ne_,
        d,
        hdn,
        false,
      );
    }
    await K.combine({
      y: bb.ye.subarray(0, ns * d),
      weights: bb.gate32.subarray(0, ns),
      slotOf: bb.slotOf.subarray(0, ns),
      tokens: n,
      k: slots,
      dim: d,
      out: xOut.subarray(0, n * d),
      accumulate: true,
    });
  }
  // Output.
  await K.rmsNorm({
    x: ws.xF.subarray(0, n * d),
    gain: p.normF,
    out: ws.f.subarray(0, n * d),
    rstd: ws.rstdF.subarray(0, n),
    rows: n,
    dim: d,
    eps: c.eps,
  });
  await mmABt(ws.f, p.out, ws.logits, n, V, d, false);
  let ce = 0;
  const lg = ws.logits;
  for (let i = 0; i < n; i++) {
    const b = i * V;
    let max = -Infinity;
    for (let v = 0; v < V; v++) if (lg[b + v] > max) max = lg[b + v];
    let z = 0;
    for (let v = 0; v < V; v++) z += fdlibmExp(lg[b + v] - max);
    const lse = max + fdlibmLog(z);
    ce += lse - lg[b + ws.targets[i]];
    if (backward) {
      // d ce / d logits = (softmax - onehot) / n.
      for (let v = 0; v < V; v++) lg[b + v] = fdlibmExp(lg[b + v] - lse) / n;
      lg[b + ws.targets[i]] -= 1 / n;
    }
  }
  ce /= n;
  if (!backward) return { ce, aux: 0, routings };

  // ---------------- backward ----------------
  const g = ws.gradViews;
  ws.grads.fill(0);
  await mmAtB(lg, ws.f, g.out, V, d, n, true);
  await mmAB(lg, p.out, ws.da, n, d, V, false);
  const dx = ws.dx;
  dx.fill(0, 0, n * d);
  await K.rmsNormBackward({
    x: ws.xF.subarray(0, n * d),
    gain: p.normF,
    rstd: ws.rstdF.subarray(0, n),
    dOut: ws.da.subarray(0, n * d),
    dx: dx.subarray(0, n * d),
    accumulate: true,
    dGain: g.normF,
    rows: n,
    dim: d,
  });
  let aux = 0;
  moeLayer = routings.length;
  for (let l = c.layers - 1; l >= 0; l--) {
    const bp = p.blocks[l], bb = ws.blocks[l], gb = g.blocks[l];
    // dx holds d loss / d xOut. FFN input gradient accumulates in da.
    const da = ws.da;
    da.fill(0, 0, n * d);
    const sh = sharedWidth(c, l);
    if (sh > 0) {
      await mmAtB(dx, bb.sh, gb.sw2, d, sh, n, true);
      const dsh = ws.dsh.subarray(0, n * sh);
      await mmAB(dx, bp.sw2, dsh, n, sh, d, false);
      siluBackward(bb.spre, dsh, n * sh);
      await mmAtB(dsh, bb.a2, gb.sw1, sh, d, n, true);
      await mmAB(dsh, bp.sw1, da, n, d, sh, true);
    }
    if (isMoeBlock(c, l)) {
      moeLayer--;
      const slots = bb.slots, off = bb.offsets, ns = n * slots;
      const slotOf = bb.slotOf.subarray(0, ns);
      const dyeAll = ws.dye.subarray(0, ns * d);
      const cb = await K.combineBackward({
        y: bb.ye.subarray(0, ns * d),
        weights: bb.gate32.subarray(0, ns),
        slotOf,
        tokens: n,
        k: slots,
        dim: d,
        dOut: dx.subarray(0, n * d),
        dy: dyeAll,
        dWeights: ws.dgate32.subarray(0, ns),
      });
      if (cb.dy.buffer !== dyeAll.buffer) dyeAll.set(cb.dy);
      const dgate = Float64Array.from(cb.dWeights);
      for (let e = 0; e < E; e++) {
        const r0 = off[e], ne_ = off[e + 1] - r0;
        if (ne_ === 0) continue;
        const dye = ws.dye.subarray(r0 * d, (r0 + ne_) * d);
        const he = bb.he.subarray(r0 * hdn, (r0 + ne_) * hdn);
        const dhe = ws.dhe.subarray(r0 * hdn, (r0 + ne_) * hdn);
        const xe = bb.xe.subarray(r0 * d, (r0 + ne_) * d);
        const w1 = bp.w1.subarray(e * hdn * d, (e + 1) * hdn * d);
        const w2 = bp.w2.subarray(e * d * hdn, (e + 1) * d * hdn);
        await mmAtB(
          dye,
          he,
          gb.w2.subarray(e * d * hdn, (e + 1) * d * hdn),
          d,
          hdn,
          ne_,
          true,
        );
        await mmAB(dye, w2, dhe, ne_, hdn, d, false);
        siluBackward(
          bb.hpre.subarray(r0 * hdn, (r0 + ne_) * hdn),
          dhe,
          dhe.length,
        );
        await mmAtB(
          dhe,
          xe,
          gb.w1.subarray(e * hdn * d, (e + 1) * hdn * d),
          hdn,
          d,
          ne_,
          true,
        );
        await mmAB(
          dhe,
          w1,
          ws.dxe.subarray(r0 * d, (r0 + ne_) * d),
          ne_,
          d,
          hdn,
          false,
        );
      }
      await K.dispatchBackward({
        dRows: ws.dxe.subarray(0, ns * d),
        slotOf,
        tokens: n,
        k: slots,
        dim: d,
        dx: da.subarray(0, n * d),
        accumulate: true,
      });
      // Router.
      const ne = n * E;
      const ds = ws.ds64.subarray(0, ne);
      ds.fill(0);
      gateBackward(c, n, bb.s64, bb.sel, slots, bb.gate, dgate, ds);
      const s64 = bb.s64.subarray(0, ne);
      let dr64: Float64Array | undefined;
      if (objective?.kind === "aux") {
        aux += auxLoss({
          scores: s64,
          tokens: n,
          experts: E,
          selected: bb.sel.subarray(0, n * slots),
          k: slots,
        }, {
          alpha: objective.alpha,
          seqLen: objective.seqLen,
          normalize: c.gate === "sigmoid",
          grad: ds,
        });
      } else if (objective?.kind === "z-loss") {
        dr64 = ws.dr64.subarray(0, ne);
        dr64.fill(0);
        const r64 = Float64Array.from(bb.r.subarray(0, ne));
        aux += zLoss({ scores: r64, tokens: n, experts: E }, {
          coef: objective.coef,
          grad: dr64,
        });
      }
      for (let i = 0; i < n; i++) {
        const rb = i * E;
        if (c.gate === "softmax") {
          let dot = 0;
          for (let j = 0; j < E; j++) dot += bb.s64[rb + j] * ds[rb + j];
          for (let j = 0; j < E; j++) {
            ds[rb + j] = bb.s64[rb + j] * (ds[rb + j] - dot);
          }
        } else {
          for (let j = 0; j < E; j++) {
            const v = bb.s64[rb + j];
            ds[rb + j] *= v * (1 - v);
          }
        }
      }
      for (let i = 0; i < ne; i++) {
        ws.dr[i] = ds[i] + (dr64 === undefined ? 0 : dr64[i]);
      }
      await mmAtB(ws.dr, bb.a2, gb.router, E, d, n, true);
      await mmAB(ws.dr, bp.router, da, n, d, E, true);
    }
    // dx stays as the residual path; add the FFN norm's input gradient.
    await K.rmsNormBackward({
      x: bb.xMid.subarray(0, n * d),
      gain: bp.norm2,
      rstd: bb.rstd2.subarray(0, n),
      dOut: da.subarray(0, n * d),
      dx: dx.subarray(0, n * d),
      accumulate: true,
      dGain: gb.norm2,
      rows: n,
      dim: d,
    });
    // Attention: dx is now d loss / d xMid.
    await mmAtB(dx, bb.o, gb.wo, d, d, n, true);
    await mmAB(dx, bp.wo, ws.dy, n, d, d, false);
    copyHeads(ws.dy, ws.doh, seqs, T, H, D, INTO_HEADS);
    await K.attentionBackward({
      q: bb.qh.subarray(0, n * d),
      k: bb.kh.subarray(0, n * d),
      v: bb.vh.subarray(0, n * d),
      probs: bb.probs.subarray(0, seqs * H * T * T),
      dOut: ws.doh.subarray(0, n * d),
      dq: ws.dqh.subarray(0, n * d),
      dk: ws.dkh.subarray(0, n * d),
      dv: ws.dvh.subarray(0, n * d),
      batch: seqs,
      heads: H,
      seq: T,
      headDim: D,
    });
    copyHeads(ws.dqh, ws.dq, seqs, T, H, D, INTO_TOKENS);
    copyHeads(ws.dkh, ws.dk, seqs, T, H, D, INTO_TOKENS);
    copyHeads(ws.dvh, ws.dv, seqs, T, H, D, INTO_TOKENS);
    da.fill(0, 0, n * d);
    for (
      const [dp, w, gw] of [
        [ws.dq, bp.wq, gb.wq],
        [ws.dk, bp.wk, gb.wk],
        [ws.dv, bp.wv, gb.wv],
      ]
    ) {
      await mmAtB(dp, bb.a1, gw, d, d, n, true);
      await mmAB(dp, w, da, n, d, d, true);
    }
    await K.rmsNormBackward({
      x: bb.xIn.subarray(0, n * d),
      gain: bp.norm1,
      rstd: bb.rstd1.subarray(0, n),
      dOut: da.subarray(0, n * d),
      dx: dx.subarray(0, n * d),
      accumulate: true,
      dGain: gb.norm1,
      rows: n,
      dim: d,
    });
  }
  // Embedding.
  for (let i = 0; i < n; i++) {
    const tb = ws.tokens[i] * d, pb = (i % T) * d, xb = i * d;
    for (let m = 0; m < d; m++) {
      g.tokEmb[tb + m] += dx[xb + m];
      g.posEmb[pb + m] += dx[xb + m];
    }
  }
  return { ce, aux, routings };
}
