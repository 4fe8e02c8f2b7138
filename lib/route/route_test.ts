import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { createRouting, route } from "./route.ts";
import { Rng } from "../scores/rng.ts";
import type { ScoreMatrix } from "../types.ts";

/** Brute-force twin: sort every expert by (value desc, index asc). */
function bruteTopK(values: Float64Array, k: number): number[] {
  const idx = Array.from(values, (_, j) => j);
  idx.sort((a, b) => {
    const va = values[a], vb = values[b];
    if (va === vb) return a - b;
    return vb > va ? 1 : -1;
  });
  return idx.slice(0, k);
}

function randomScores(
  rng: Rng,
  tokens: number,
  experts: number,
  ties: boolean,
  masked: number,
) {
  const data = new Float32Array(tokens * experts);
  for (let i = 0; i < data.length; i++) {
    data[i] = ties ? Math.floor(rng.uniform() * 4) / 4 : rng.uniform();
    if (rng.uniform() < masked) data[i] = -Infinity;
  }
  return { data, tokens, experts };
}

/** Checks route() against the brute-force twin on every token. */
function checkTwin(scores: ScoreMatrix, k: number, bias?: number[]): void {
  const { tokens, experts } = scores;
  const r = route(scores, { k, bias });
  const loads = new Array(experts).fill(0);
  for (let i = 0; i < tokens; i++) {
    const v = new Float64Array(experts);
    for (let j = 0; j < experts; j++) {
      v[j] = scores.data[i * experts + j] + (bias ? bias[j] : 0);
    }
    const want = bruteTopK(v, k);
    assert.deepEqual(
      [...r.experts.subarray(i * k, (i + 1) * k)],
      want,
      `token ${i}`,
    );
    for (let q = 0; q < k; q++) {
      const s = scores.data[i * experts + want[q]];
      assert.equal(r.weights[i * k + q], s > -Infinity ? s : 0);
      loads[want[q]]++;
    }
  }
  assert.deepEqual([...r.loads], loads);
  assert.equal(loads.reduce((a, b) => a + b, 0), tokens * k);
}

describe("route", () => {
  test("matches a brute-force sort with ties, -Infinity and biases", () => {
    const rng = new Rng(11);
    for (let trial = 0; trial < 200; trial++) {
      const experts = 1 + rng.int(40);
      const k = 1 + rng.int(Math.min(experts, 9));
      const tokens = 1 + rng.int(30);
      const scores = randomScores(
        rng,
        tokens,
        experts,
        trial % 2 === 0,
        trial % 3 === 0 ? 0.3 : 0,
      );
      const bias = trial % 4 === 0 ? undefined : Array.from(
        { length: experts },
        () => Math.floor(rng.uniform() * 3) / 8 - 0.125,
      );
      checkTwin(scores, k, bias);
    }
  });

  test("every path of the row kernel matches the brute-force twin", () => {
    // 256 experts, k = 8, one kind of row per block of 100: uniform scores
    // (candidates ranked, the near ones or all), four-valued scores (more
    // tied candidates than ranking takes: insertion), and every 10th row
    // of the third block scaled down by 10 (fewer than k entries pass the
    // threshold guessed from the rows before: full scan).
    const rng = new Rng(23);
    const experts = 256, tokens = 300;
    const data = new Float32Array(tokens * experts);
    for (let i = 0; i < tokens; i++) {
      for (let j = 0; j < experts; j++) {
        const u = rng.uniform();
        data[i * experts + j] = i < 100
          ? u
          : i < 200
          ? Math.floor(u * 4) / 4
          : i % 10 === 0
          ? u / 10
          : u;
      }
    }
    const bias = Array.from({ length: experts }, () => rng.uniform() / 100);
    for (const b of [undefined, bias]) {
      checkTwin({ data, tokens, experts }, 8, b);
    }
  });

  test("ties go to the lowest expert index", () => {
    const r = route({
      data: new Float32Array([0.5, 0.5, 0.5, 0.5]),
      tokens: 1,
      experts: 4,
    }, {
      k: 2,
    });
    assert.deepEqual([...r.experts], [0, 1]);
  });

  test("multiplicative bias selects on score * bias", () => {
    const scores = {
      data: new Float32Array([0.6, 0.5, 0.1]),
      tokens: 1,
      experts: 3,
    };
    const r = route(scores, { k: 1, bias: [0.5, 1, 1], biasMode: "multiply" });
    assert.deepEqual([...r.experts], [1]);
    assert.equal(r.weights[0], Math.fround(0.5));
  });

  test("normalised weights sum to the scale", () => {
    const rng = new Rng(3);
    const scores = randomScores(rng, 50, 16, false, 0);
    const r = route(scores, { k: 4, normalize: true, scale: 2.5 });
    for (let i = 0; i < 50; i++) {
      let s = 0;
      for (let q = 0; q < 4; q++) s += r.weights[i * 4 + q];
      assert.ok(Math.abs(s - 2.5) < 1e-5, `token ${i}: ${s}`);
    }
  });

  test("group-limited routing matches a brute-force twin", () => {
    const rng = new Rng(5);
    for (let trial = 0; trial < 100; trial++) {
      const groups = [2, 4, 8][trial % 3];
      const experts = groups * (2 + rng.int(4));
      const topGroups = 1 + rng.int(groups);
      const k = 1 + rng.int(Math.min(8, topGroups * (experts / groups)));
      const tokens = 20;
      const scores = randomScores(rng, tokens, experts, trial % 2 === 0, 0);
      const r = route(scores, { k, groups, topGroups });
      const size = experts / groups;
      const per = Math.max(1, Math.min(size, Math.floor(k / topGroups)));
      for (let i = 0; i < tokens; i++) {
        const row = Float64Array.from(
          scores.data.subarray(i * experts, (i + 1) * experts),
        );
        const groupScores = new Float64Array(groups);
        for (let g = 0; g < groups; g++) {
          const top = bruteTopK(row.slice(g * size, (g + 1) * size), per);
          groupScores[g] = top.reduce((a, j) => a + row[g * size + j], 0);
        }
        const kept = new Set(bruteTopK(groupScores, topGroups));
        for (let j = 0; j < experts; j++) {
          if (!kept.has(Math.floor(j / size))) row[j] = -Infinity;
        }
        assert.deepEqual(
          [...r.experts.subarray(i * k, (i + 1) * k)],
          bruteTopK(row, k),
        );
      }
    }
  });

  test("group-limited routing over many rows (the guessed threshold warm, scale jumps, ties, -Infinity, bias) matches the twin", () => {
    const rng = new Rng(17);
    for (
      const [experts, groups, topGroups, k] of [
        [256, 8, 4, 8],
        [64, 8, 3, 6],
        [48, 4, 2, 1],
        [32, 4, 1, 8],
      ]
    ) {
      const tokens = 1500;
      const data = new Float32Array(tokens * experts);
      for (let i = 0; i < tokens; i++) {
        // The scale jumps every 100 rows, so the running guess is sometimes
        // far off; some stretches are tied or partly masked.
        const scale = 10 ** ((Math.floor(i / 100) % 5) - 2);
        const tied = Math.floor(i / 37) % 4 === 1;
        const masked = Math.floor(i / 53) % 5 === 2 ? 0.9 : 0;
        for (let j = 0; j < experts; j++) {
          const u = rng.uniform();
          data[i * experts + j] = rng.uniform() < masked
            ? -Infinity
            : tied
            ? Math.floor(u * 3) * scale
            : u * scale;
        }
      }
      const scores = { data, tokens, experts };
      const bias = Float64Array.from(
        { length: experts },
        (_, j) => j % 3 === 0 ? 0 : (rng.uniform() - 0.5) * 1e-3,
      );
      const size = experts / groups;
      for (
        const [groupScore, count] of [
          ["megatron", Math.floor(k / topGroups)],
          ["v3", 2],
          ["v2", 1],
        ] as const
      ) {
        const per = Math.max(1, Math.min(size, count));
        for (const b of [undefined, bias]) {
          const r = route(scores, {
            k,
            groups,
            topGroups,
            bias: b,
            groupScore,
          });
          for (let i = 0; i < tokens; i++) {
            const row = Float64Array.from(
              { length: experts },
              (_, j) => data[i * experts + j] + (b ? b[j] : 0),
            );
            const groupScores = new Float64Array(groups);
            for (let g = 0; g < groups; g++) {
              const top = bruteTopK(row.slice(g * size, (g + 1) * size), per);
              const sum = top.reduce((a, j) => a + row[g * size + j], 0);
              groupScores[g] = sum !== sum ? -Infinity : sum;
            }
            const kept = new Set(bruteTopK(groupScores, topGroups));
            for (let j = 0; j < experts; j++) {
              if (!kept.has(Math.floor(j / size))) row[j] = -Infinity;
            }
            assert.deepEqual(
              [...r.experts.subarray(i * k, (i + 1) * k)],
              bruteTopK(row, k),
              `${experts} experts, ${groups}/${topGroups} groups, k = ${k}, ${groupScore}, row ${i}`,
            );
          }
        }
      }
    }
  });

  test("DeepSeek-V3 shape: 256 experts, 8 groups, 4 kept, top-8 stays inside kept groups", () => {
    const rng = new Rng(9);
    const scores = randomScores(rng, 64, 256, false, 0);
    const r = route(scores, {
      k: 8,
      groups: 8,
      topGroups: 4,
      normalize: true,
      scale: 2.5,
    });
    for (let i = 0; i < 64; i++) {
      const groups = new Set(
        [...r.experts.subarray(i * 8, i * 8 + 8)].map((j) => j >> 5),
      );
      assert.ok(groups.size <= 4);
    }
  });

  test("reuses the out buffers", () => {
    const scores = {
      data: new Float32Array([0.1, 0.9]),
      tokens: 1,
      experts: 2,
    };
    const out = createRouting(1, 1, 2);
    assert.equal(route(scores, { k: 1, out }), out);
    assert.deepEqual([...out.loads], [0, 1]);
  });

  test("rejects bad input with the value shown", () => {
    const scores = {
      data: new Float32Array([0.1, 0.9]),
      tokens: 1,
      experts: 2,
    };
    assert.throws(() => route(scores, { k: 3 }), {
      name: "RangeError",
      message:
        /k must be at most the number of experts \(2\): current value is 3/,
    });
    assert.throws(() => route(scores, { k: 0 }), RangeError);
    assert.throws(() => route(scores, { k: 1.5 }), RangeError);
    assert.throws(
      () =>
        route({ data: new Float32Array([NaN, 1]), tokens: 1, experts: 2 }, {
          k: 1,
        }),
      { name: "RangeError", message: /NaN/ },
    );
    assert.throws(
      () =>
        route({ data: new Float32Array(3), tokens: 1, experts: 2 }, { k: 1 }),
      TypeError,
    );
    assert.throws(() => route(scores, { k: 1, bias: [0] }), TypeError);
    assert.throws(() => route(scores, { k: 1, bias: [0, NaN] }), RangeError);
    assert.throws(() => route(scores, { k: 1, groups: 3 }), RangeError);
  });
});
