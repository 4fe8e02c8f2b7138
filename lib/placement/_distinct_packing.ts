// EPLB's balanced packing with one constraint: no pack holds two items of
// one label (two replicas of one expert on one GPU).

// EPLB computes in float32; round the same way.
const f32 = Math.fround;

/**
 * Balanced packing where no pack holds two items of one label: the
 * heaviest item goes to the lightest pack with room that lacks its label;
 * when every such pack is full, an item of another label moves from one of
 * them to a pack with room (one always exists while each label has at
 * most `packs` items), choosing the move with the smallest larger load.
 */
export function distinctPacking(
  weight: number[],
  packs: number,
  labels: ArrayLike<number>,
): { pack: Int32Array; rank: Int32Array } {
  const n = weight.length, per = n / packs;
  const order = Array.from({ length: n }, (_, i) => i)
    .sort((a, b) => weight[b] - weight[a] || a - b);
  const load = new Float64Array(packs);
  const members: number[][] = Array.from({ length: packs }, () => []);
  const pack = new Int32Array(n).fill(-1);
  const holds = (k: number, label: number) =>
    members[k].some((i) => labels[i] === label);
  for (const i of order) {
    let best = -1;
    for (let k = 0; k < packs; k++) {
      if (members[k].length >= per || holds(k, labels[i])) continue;
      if (best < 0 || load[k] < load[best]) best = k;
    }
    if (best < 0) {
      // Every pack lacking the label is full: move an item x from such a
      // pack q to the lightest pack p with room that does not hold x.
      let p = -1;
      for (let k = 0; k < packs; k++) {
        if (members[k].length < per && (p < 0 || load[k] < load[p])) p = k;
      }
      let move: [number, number] | null = null, cost = Infinity;
      for (let q = 0; q < packs; q++) {
        if (holds(q, labels[i])) continue;
        for (const x of members[q]) {
          if (holds(p, labels[x])) continue;
          const c = Math.max(
            load[p] + weight[x],
            load[q] - weight[x] + weight[i],
          );
          if (c < cost) cost = c, move = [q, x];
        }
      }
      const [q, x] = move!;
      members[q].splice(members[q].indexOf(x), 1);
      load[q] = f32(load[q] - weight[x]);
      members[p].push(x);
      pack[x] = p;
      load[p] = f32(load[p] + weight[x]);
      best = q;
    }
    members[best].push(i);
    pack[i] = best;
    load[best] = f32(load[best] + weight[i]);
  }
  const rank = new Int32Array(n);
  for (const m of members) m.forEach((i, r) => rank[i] = r);
  return { pack, rank };
}
