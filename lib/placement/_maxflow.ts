// Maximum flow on the scheduling network of one placement: source ->
// expert (supply) -> GPU holding a replica (unbounded) -> sink (capacity).
// Dinic's algorithm on typed arrays; the network is built once per
// placement and every solve only resets capacities, so a solve allocates
// nothing. Capacities are integers held in float64 (exact below 2^53).
import { type Placement, replicaTable } from "./placement.ts";

/** Dinic max flow on the expert -> GPU network of a placement. */
export class ScheduleFlow {
  readonly experts: number;
  readonly gpus: number;
  readonly replicas: number;
  readonly replicaExpert: Int32Array;
  readonly replicaGpu: Int32Array;
  readonly replicaSlot: Int32Array;
  readonly replicaStart: Int32Array;
  // Arcs come in pairs a, a ^ 1. Source arcs 2e, replica arcs 2E + 2r,
  // GPU arcs 2E + 2R + 2g.
  private readonly to: Int32Array;
  private readonly cap: Float64Array;
  private readonly adjStart: Int32Array;
  private readonly adj: Int32Array;
  private readonly level: Int32Array;
  private readonly it: Int32Array;
  private readonly queue: Int32Array;
  private readonly room: Float64Array;
  private readonly sink: number;

  constructor(p: Placement) {
    const t = replicaTable(p);
    const E = p.experts, G = p.gpus, R = t.gpu.length;
    this.experts = E;
    this.gpus = G;
    this.replicas = R;
    this.replicaGpu = t.gpu;
    this.replicaSlot = t.slot;
    this.replicaStart = t.start;
    this.replicaExpert = new Int32Array(R);
    for (let e = 0; e < E; e++) {
      for (let r = t.start[e]; r < t.start[e + 1]; r++) {
        this.replicaExpert[r] = e;
      }
    }
    const N = E + G + 2, A = 2 * (E + R + G);
    this.sink = N - 1;
    const to = new Int32Array(A), from = new Int32Array(A);
    const arc = (a: number, u: number, v: number) => {
      from[a] = u, to[a] = v, from[a + 1] = v, to[a + 1] = u;
    };
    for (let e = 0; e < E; e++) arc(2 * e, 0, 1 + e);
    for (let r = 0; r < R; r++) {
      arc(2 * E + 2 * r, 1 + this.replicaExpert[r], 1 + E + t.gpu[r]);
    }
    for (let g = 0; g < G; g++) arc(2 * (E + R) + 2 * g, 1 + E + g, N - 1);
    const adjStart = new Int32Array(N + 1);
    for (let a = 0; a < A; a++) adjStart[from[a] + 1]++;
    for (let u = 0; u < N; u++) adjStart[u + 1] += adjStart[u];
    const fill = adjStart.slice(0, N), adj = new Int32Array(A);
    for (let a = 0; a < A; a++) adj[fill[from[a]]++] = a;
    this.to = to;
    this.adjStart = adjStart;
    this.adj = adj;
    this.cap = new Float64Array(A);
    this.level = new Int32Array(N);
    this.it = new Int32Array(N);
    this.queue = new Int32Array(N);
    this.room = new Float64Array(G);
  }

  /**
   * Maximum flow with `supply[e]` into each expert and `capacity[g]` out
   * of each GPU. Starts from `init` replica flows when given (they must
   * respect both bounds), else from a greedy fill. Returns the flow value.
   */
  solve(
    supply: ArrayLike<number>,
    capacity: ArrayLike<number>,
    init?: ArrayLike<number>,
  ): number {
    const E = this.experts, G = this.gpus, R = this.replicas;
    const cap = this.cap, room = this.room;
    const RB = 2 * E, GB = 2 * (E + R);
    for (let g = 0; g < G; g++) room[g] = capacity[g];
    for (let e = 0; e < E; e++) {
      let left = supply[e];
      const r0 = this.replicaStart[e], r1 = this.replicaStart[e + 1];
      for (let r = r0; r < r1; r++) {
        cap[RB + 2 * r] = Infinity;
        cap[RB + 2 * r + 1] = 0;
      }
      if (init) {
        for (let r = r0; r < r1; r++) {
          const f = init[r];
          cap[RB + 2 * r + 1] = f;
          left -= f;
          room[this.replicaGpu[r]] -= f;
        }
      } else {
        // Greedy start: the roomiest replica GPU first, so that few
        // tokens are left for augmenting paths.
        while (left > 0) {
          let best = -1;
          for (let r = r0; r < r1; r++) {
            const g = this.replicaGpu[r];
            if (
              room[g] > 0 && cap[RB + 2 * r + 1] === 0 &&
              (best < 0 || room[g] > room[this.replicaGpu[best]])
            ) best = r;
          }
          if (best < 0) break;
          const g = this.replicaGpu[best];
          const f = Math.min(left, room[g]);
          cap[RB + 2 * best + 1] = f;
          left -= f;
          room[g] -= f;
        }
      }
      cap[2 * e] = left;
      cap[2 * e + 1] = supply[e] - left;
    }
    for (let g = 0; g < G; g++) {
      cap[GB + 2 * g] = room[g];
      cap[GB + 2 * g + 1] = capacity[g] - room[g];
    }
    while (this.bfs()) {
      this.it.set(this.adjStart.subarray(0, this.it.length));
      while (this.dfs(0, Infinity) > 0) { /* augment until blocked */ }
    }
    let value = 0;
    for (let e = 0; e < E; e++) value += cap[2 * e + 1];
    return value;
  }

  /** Flow on replica `r` after {@linkcode solve}. */
  flow(r: number): number {
    return this.cap[2 * this.experts + 2 * r + 1];
  }

  /** Whether GPU `g` is reachable from the source in the last residual network (the min cut's source side). */
  reachable(g: number): boolean {
    return this.level[1 + this.experts + g] >= 0;
  }

  private bfs(): boolean {
    const { level, queue, cap, to, adj, adjStart } = this;
    level.fill(-1);
    level[0] = 0;
    let head = 0, tail = 0;
    queue[tail++] = 0;
    while (head < tail) {
      const u = queue[head++];
      for (let i = adjStart[u]; i < adjStart[u + 1]; i++) {
        const a = adj[i], v = to[a];
        if (cap[a] > 0 && level[v] < 0) {
          level[v] = level[u] + 1;
          queue[tail++] = v;
        }
      }
    }
    return level[this.sink] >= 0;
  }

  private dfs(u: number, limit: number): number {
    if (u === this.sink) return limit;
    const level = this.level, it = this.it, cap = this.cap;
    const to = this.to, adj = this.adj;
    const next = level[u] + 1, end = this.adjStart[u + 1];
    let pushed = 0;
    for (; it[u] < end; it[u]++) {
      const a = adj[it[u]], v = to[a];
      if (cap[a] <= 0 || level[v] !== next) continue;
      const d = this.dfs(v, Math.min(limit - pushed, cap[a]));
      if (d > 0) {
        cap[a] -= d;
        cap[a ^ 1] += d;
        pushed += d;
        if (pushed === limit) return pushed;
      }
    }
    // A dead end: no later search in this phase needs to enter it.
    level[u] = -1;
    return pushed;
  }
}
