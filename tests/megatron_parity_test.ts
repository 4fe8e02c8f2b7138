// Megatron-Core's and DeepSeek-V3's router arithmetic, evaluated by
// PyTorch in data/fixtures/make_router_fixtures.py (router_fixtures.json),
// against the library: bfloat16 rounding and adds, token counters, the
// expert-bias update in float32 and bfloat16, top-K routing with every
// score function, pre/post-softmax and groups, DeepSeek-V3's gate, the
// aux, sequence-wise, global and z losses with padding, capacity and
// token dropping.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { addIn, bfloat16, roundTo } from "../lib/numeric/precision.ts";
import {
  addCount,
  lossFreeUpdateCpu,
  lossFreeUpdateOp,
} from "../lib/ops/loss_free_update.ts";
import { route } from "../lib/route/route.ts";
import {
  megatronCapacity,
  type TopKRouterOptions,
  topkRouting,
} from "../lib/route/topk_router.ts";
import {
  auxLoss,
  createGlobalAuxTracker,
  globalAuxLoss,
  zLoss,
} from "../lib/train/aux_loss.ts";
import type { Gate } from "../lib/scores/gate.ts";
import type { Precision } from "../lib/numeric/precision.ts";

// deno-lint-ignore no-explicit-any
const F: any = JSON.parse(
  readFileSync(
    new URL("../data/fixtures/router_fixtures.json", import.meta.url),
    "utf8",
  ),
);

const close = (got: number, want: number, tol: number, what: string) =>
  assert.ok(
    Math.abs(got - want) <= tol * Math.max(1, Math.abs(want)),
    `${what}: ${got} vs ${want}`,
  );

describe("bfloat16 against torch.bfloat16", () => {
  test("conversion rounds to nearest even, as torch.tensor(x, dtype=bfloat16)", () => {
    const { x, bf16 } = F.bfloat16;
    assert.ok(x.length > 200);
    for (let i = 0; i < x.length; i++) {
      assert.equal(bfloat16(x[i]), bf16[i], `bfloat16(${x[i]})`);
      assert.equal(roundTo(x[i], "bfloat16"), bf16[i]);
    }
  });
  test("an add of two bfloat16 tensors", () => {
    const { a, b, sum } = F.bfloat16Adds;
    for (let i = 0; i < a.length; i++) {
      assert.equal(addIn(a[i], b[i], "bfloat16"), sum[i], `${a[i]} + ${b[i]}`);
    }
  });
  test("a counter incremented by 1 stops at 256 (bfloat16) and 2^24 (float32)", () => {
    for (const c of F.tokenCounters) {
      assert.equal(
        addCount(c.start, c.adds, c.precision, "token"),
        c.count,
        `${c.precision} from ${c.start} + ${c.adds}`,
      );
      let n = c.start;
      for (let i = 0; i < c.adds; i++) n = addIn(n, 1, c.precision);
      assert.equal(n, c.count);
    }
  });
});

describe("get_updated_expert_bias in float32 and bfloat16", () => {
  for (const u of F.biasUpdates) {
    test(u.name, () => {
      const E = u.experts;
      const counts = new Float64Array(E);
      const bias = Float64Array.from(u.bias);
      const pc = u.countPrecision as Precision;
      const pb = u.biasPrecision as Precision;
      u.loads.forEach((l: number[], m: number) => {
        const apply = m === u.loads.length - 1;
        if (apply) {
          // Megatron's accumulated counts, before the update zeroes them.
          const before = Float64Array.from(counts);
          for (let j = 0; j < E; j++) {
            before[j] = addCount(before[j], l[j], pc, "batch");
          }
          assert.deepEqual([...before], u.counts, "accumulated counts");
        }
        lossFreeUpdateCpu(lossFreeUpdateOp.validate({
          bias,
          loads: Int32Array.from(l),
          rate: u.rate,
          rule: "sign",
          center: false,
          biasPrecision: pb,
          countPrecision: pc,
          counts,
          apply,
        }));
      });
      assert.deepEqual([...bias], u.updated);
      assert.deepEqual([...counts], new Array(E).fill(0));
    });
  }
  test("bf16 counts change the update's signs where fp32 counts do not", () => {
    const u = F.biasUpdates[0];
    let exact = 0, differ = 0;
    for (let j = 0; j < u.experts; j++) {
      let sum = 0, total = 0;
      for (const l of u.loads) sum += l[j];
      for (const l of u.loads) for (const x of l) total += x;
      const want = Math.sign(total / u.experts - sum);
      const got = Math.sign(u.updated[j] - u.bias[j]);
      if (got === want) exact++;
      else differ++;
    }
    assert.ok(differ > 0, "some expert's bias moved the wrong way");
    assert.ok(exact > differ);
  });
});

function megatronOptions(o: Record<string, unknown>): TopKRouterOptions {
  return {
    topk: o.topk as number,
    scoreFunction: (o.score_function as Gate | undefined) ?? "softmax",
    preSoftmax: o.pre_softmax as boolean | undefined,
    numGroups: o.num_groups as number | undefined,
    groupTopk: o.group_topk as number | undefined,
    scalingFactor: o.scaling_factor as number | undefined,
  };
}

/** Each token's experts in increasing order, with their weights. */
function perToken(
  experts: Int32Array,
  weights: Float32Array,
  k: number,
  i: number,
): [number[], number[]] {
  const slots = Array.from({ length: k }, (_, r) => i * k + r)
    .filter((s) => experts[s] >= 0)
    .sort((a, b) => experts[a] - experts[b]);
  return [slots.map((s) => experts[s]), slots.map((s) => weights[s])];
}

const matrix = (data: number[], tokens: number, experts: number) => ({
  data: Float32Array.from(data),
  tokens,
  experts,
});

describe("topk_routing_with_score_function", () => {
  for (const c of F.routing) {
    test(c.name, () => {
      const r = topkRouting(matrix(c.logits, c.tokens, c.experts), {
        ...megatronOptions(c.options),
        expertBias: c.expertBias ?? undefined,
      });
      for (let i = 0; i < c.tokens; i++) {
        const [wantE, wantW] = c.selected[i];
        const [gotE, gotW] = perToken(
          r.routing.experts,
          r.routing.weights,
          r.routing.k,
          i,
        );
        assert.deepEqual(gotE, wantE, `token ${i}`);
        gotW.forEach((w, n) => close(w, wantW[n], 2e-6, `token ${i} weight`));
      }
    });
  }
  test("pre- and post-softmax keep different groups on some token", () => {
    const post = F.routing.find((c: { name: string }) =>
      c.name === "softmax post groups 4 keep 2"
    );
    const pre = F.routing.find((c: { name: string }) =>
      c.name === "softmax pre groups 4 keep 2"
    );
    assert.ok(post && pre);
    // Different logits in the two cases: route the post case's logits both ways.
    const logits = matrix(post.logits, post.tokens, post.experts);
    const o = { topk: 4, numGroups: 4, groupTopk: 2 };
    const a = topkRouting(logits, o).routing.experts;
    const b = topkRouting(logits, { ...o, preSoftmax: true }).routing.experts;
    const sets = (x: Int32Array) =>
      Array.from(
        { length: post.tokens },
        (_, i) => [...x.subarray(i * 4, i * 4 + 4)].sort().join(),
      );
    assert.notDeepEqual(sets(a), sets(b));
  });
});

describe("DeepSeek-V3's Gate: groups by top-2 sum with a bias, by maximum without", () => {
  for (const g of F.deepseekGate) {
    const how = g.bias ? "v3" : "v2";
    test(`${g.groups} groups keep ${g.topGroups}, k = ${g.topk}, ${how}`, () => {
      const logits = Float32Array.from(g.logits);
      const s = new Float32Array(logits.length);
      for (let i = 0; i < s.length; i++) s[i] = 1 / (1 + Math.exp(-logits[i]));
      const r = route({ data: s, tokens: g.tokens, experts: g.experts }, {
        k: g.topk,
        bias: g.bias ?? undefined,
        groups: g.groups,
        topGroups: g.topGroups,
        groupScore: how,
        normalize: true,
        scale: 2.5,
      });
      for (let i = 0; i < g.tokens; i++) {
        const k = g.topk;
        const want = g.indices.slice(i * k, (i + 1) * k);
        const wantW = g.weights.slice(i * k, (i + 1) * k);
        const order = want.map((_: number, r: number) => r).sort((
          a: number,
          b: number,
        ) => want[a] - want[b]);
        const [gotE, gotW] = perToken(r.experts, r.weights, k, i);
        assert.deepEqual(gotE, order.map((r: number) => want[r]), `token ${i}`);
        gotW.forEach((w, n) =>
          close(w, wantW[order[n]], 4e-6, `token ${i} weight`)
        );
      }
    });
  }
});

/** Megatron's [seq, bsz] token order to consecutive sequences. */
function bySequence(
  x: ArrayLike<number>,
  seq: number,
  bsz: number,
  width: number,
): number[] {
  const out: number[] = [];
  for (let b = 0; b < bsz; b++) {
    for (let s = 0; s < seq; s++) {
      for (let w = 0; w < width; w++) out.push(x[(s * bsz + b) * width + w]);
    }
  }
  return out;
}

function auxScores(logits: number[], E: number, fn: string): Float64Array {
  const s = new Float64Array(logits.length);
  for (let b = 0; b < logits.length; b += E) {
    const row = logits.slice(b, b + E).map(Math.fround);
    if (fn === "softmax") {
      const max = Math.max(...row);
      const e = row.map((x) => Math.exp(x - max));
      const z = e.reduce((a, x) => a + x, 0);
      e.forEach((x, j) => s[b + j] = x / z);
    } else {
      row.forEach((x, j) => s[b + j] = 1 / (1 + Math.exp(-x)));
    }
  }
  return s;
}

describe("aux, sequence-wise and z losses with padding masks", () => {
  for (const c of F.losses) {
    test(c.name, () => {
      const { seq, bsz, experts: E, topk: K } = c;
      const n = seq * bsz;
      const logits = bySequence(c.logits, seq, bsz, E);
      const selected = Int32Array.from(bySequence(c.selected, seq, bsz, K));
      const padding = c.padding
        ? Uint8Array.from(bySequence(c.padding, seq, bsz, 1))
        : undefined;
      const scores = auxScores(logits, E, c.scoreFunction);
      const batch = { scores, tokens: n, experts: E, selected, k: K };
      const normalize = c.scoreFunction === "sigmoid";
      close(
        auxLoss(batch, { alpha: c.coeff, normalize, padding }),
        c.aux,
        1e-6,
        "aux",
      );
      close(
        auxLoss(batch, { alpha: c.coeff, normalize, padding, seqLen: seq }),
        c.seqAux,
        1e-6,
        "seq aux",
      );
      const r = Float64Array.from(logits, Math.fround);
      close(
        zLoss({ scores: r, tokens: n, experts: E }, { coef: c.coeff, padding }),
        c.z,
        1e-6,
        "z",
      );
    });
  }
  test("padding a token changes the losses as removing it does", () => {
    const E = 4, K = 1;
    const scores = new Float64Array([
      0.7,
      0.1,
      0.1,
      0.1,
      0.1,
      0.7,
      0.1,
      0.1,
      0.25,
      0.25,
      0.25,
      0.25,
    ]);
    const selected = new Int32Array([0, 1, 3]);
    const padded = auxLoss(
      { scores, tokens: 3, experts: E, selected, k: K },
      { alpha: 1, padding: new Uint8Array([0, 0, 1]) },
    );
    const removed = auxLoss(
      {
        scores: scores.subarray(0, 8),
        tokens: 2,
        experts: E,
        selected: selected.subarray(0, 2),
        k: K,
      },
      { alpha: 1 },
    );
    // By hand: f = [2, 2, 0, 0], P = [0.4, 0.4, 0.1, 0.1]: 1.6.
    close(removed, 1.6, 1e-15, "removed");
    close(padded, removed, 1e-15, "padded");
  });
});

describe("the global-batch aux loss (global_aux_loss)", () => {
  for (const g of F.globalAux) {
    test(g.name, () => {
      const tracker = createGlobalAuxTracker(g.experts);
      for (const [m, b] of g.microBatches.entries()) {
        const scores = auxScores(b.logits, g.experts, g.scoreFunction);
        const loss = globalAuxLoss({
          scores,
          tokens: g.tokens,
          experts: g.experts,
          selected: Int32Array.from(b.selected),
          k: g.topk,
        }, { alpha: g.coeff, tracker });
        close(loss, b.loss, 1e-6, `micro-batch ${m}`);
      }
      assert.equal(tracker.steps, g.microBatches.length);
    });
  }
});

describe("capacity and token dropping", () => {
  test("get_capacity", () => {
    for (const [n, e, cf, mc, want] of F.capacity.getCapacity) {
      assert.equal(
        megatronCapacity(n, e, cf, mc ?? undefined),
        want,
        `${n} ${e} ${cf}`,
      );
    }
  });
  for (const c of F.capacity.dropping) {
    test(`apply_router_token_dropping: ${c.name}`, () => {
      const r = topkRouting(matrix(c.logits, c.tokens, c.experts), {
        topk: c.topk,
        scoreFunction: c.scoreFunction,
        preSoftmax: c.scoreFunction === "softmax" ? true : undefined,
        capacityFactor: c.capacityFactor,
        dropPolicy: c.dropPolicy,
        padToCapacity: c.padToCapacity,
      });
      assert.equal(r.capacity, c.capacity);
      for (let i = 0; i < c.tokens; i++) {
        const [got] = perToken(r.routing.experts, r.routing.weights, c.topk, i);
        assert.deepEqual(got, c.kept[i], `token ${i}`);
      }
      assert.deepEqual(
        [...r.expertTokens],
        c.padToCapacity ? c.rowsPerExpert : [...r.routing.loads],
      );
      if (c.padToCapacity) return;
      assert.deepEqual([...r.routing.loads], c.rowsPerExpert);
    });
  }
});
