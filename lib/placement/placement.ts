import { checkInteger, show } from "../validate.ts";

/**
 * Where the expert replicas live under expert parallelism: every GPU has
 * `slotsPerGpu` local slots and each slot holds one expert (or `-1`).
 *
 * `slots` is `Int32Array (gpus x slotsPerGpu)`, row-major:
 * `slots[g * slotsPerGpu + s]` is the expert in local slot `s` of GPU `g`.
 * The builders for MicroMoE scheduling (static, symmetric, random) put
 * every replica of an expert at the same local slot index, so that the
 * replicas of one slot form the gradient all-reduce groups; see
 * {@linkcode isSlotAligned}. EPLB and the asymmetric builder give experts
 * different replica counts and do not keep that alignment.
 */
export interface Placement {
  /** Number of GPUs (`G`). */
  readonly gpus: number;
  /** Number of logical experts (`E`). */
  readonly experts: number;
  /** Expert slots on each GPU (`S`). */
  readonly slotsPerGpu: number;
  /** `Int32Array (gpus x slotsPerGpu)`: expert held by each slot, `-1` for none. */
  readonly slots: Int32Array;
}

/**
 * Checks a placement: sizes, expert ids in range, every expert held at
 * least once.
 *
 * @throws {TypeError} If the shape is wrong.
 * @throws {RangeError} If an expert id is out of range or an expert has no replica.
 */
export function checkPlacement(name: string, p: unknown): Placement {
  if (p === null || typeof p !== "object") {
    throw new TypeError(
      `${name} must be a Placement: current value is ${show(p)}`,
    );
  }
  const q = p as Placement;
  checkInteger(`${name}.gpus`, q.gpus, 1);
  checkInteger(`${name}.experts`, q.experts, 1);
  checkInteger(`${name}.slotsPerGpu`, q.slotsPerGpu, 1);
  if (
    !(q.slots instanceof Int32Array) ||
    q.slots.length !== q.gpus * q.slotsPerGpu
  ) {
    throw new TypeError(
      `${name}.slots must be an Int32Array of gpus x slotsPerGpu = ${
        q.gpus * q.slotsPerGpu
      } entries: current value is ${show(q.slots)}`,
    );
  }
  const seen = new Uint8Array(q.experts);
  for (let i = 0; i < q.slots.length; i++) {
    const e = q.slots[i];
    if (e === -1) continue;
    if (e < 0 || e >= q.experts) {
      throw new RangeError(
        `${name}.slots must hold expert ids in [0, ${
          q.experts - 1
        }] or -1: value at GPU ${Math.floor(i / q.slotsPerGpu)}, slot ${
          i % q.slotsPerGpu
        } is ${e}`,
      );
    }
    seen[e] = 1;
  }
  const missing = seen.indexOf(0);
  if (missing >= 0) {
    throw new RangeError(
      `${name} must hold every expert at least once: expert ${missing} has no replica`,
    );
  }
  return q;
}

/**
 * Static expert parallelism: expert `j` on GPU `floor(j / (E / G))`, one
 * replica each (docs/algorithms.md section 11).
 *
 * @param experts Number of experts `E`.
 * @param gpus Number of GPUs `G`, a divisor of `E`.
 * @returns A {@linkcode Placement} with `E / G` slots per GPU.
 * @throws {RangeError} If `G` does not divide `E`.
 *
 * @example
 * ```ts
 * import { staticPlacement } from "@moelab/balance";
 * import assert from "node:assert/strict";
 *
 * const p = staticPlacement(4, 2);
 * assert.deepEqual([...p.slots], [0, 1, 2, 3]);
 * ```
 */
export function staticPlacement(experts: number, gpus: number): Placement {
  checkInteger("experts", experts, 1);
  checkInteger("gpus", gpus, 1);
  if (experts % gpus !== 0) {
    throw new RangeError(
      `gpus must divide the number of experts (${experts}): current value is ${gpus}`,
    );
  }
  const slots = new Int32Array(experts);
  for (let j = 0; j < experts; j++) slots[j] = j;
  return { gpus, experts, slotsPerGpu: experts / gpus, slots };
}

/**
 * A placement from EPLB's `phy2log` row: physical expert `i` (of
 * `gpus * slotsPerGpu`) sits on GPU `floor(i / slotsPerGpu)`, slot
 * `i % slotsPerGpu`.
 *
 * @param phy2log Logical expert of each physical slot, length a multiple of `gpus`.
 * @param experts Number of logical experts.
 * @param gpus Number of GPUs.
 * @returns The {@linkcode Placement}.
 * @throws {RangeError} If `gpus` does not divide the length or an expert is missing.
 *
 * @example
 * ```ts
 * import { placementFromPhy2log } from "@moelab/balance";
 * import assert from "node:assert/strict";
 *
 * const p = placementFromPhy2log([0, 1, 1, 2], 3, 2);
 * assert.equal(p.slotsPerGpu, 2);
 * assert.deepEqual([...p.slots], [0, 1, 1, 2]);
 * ```
 */
export function placementFromPhy2log(
  phy2log: ArrayLike<number>,
  experts: number,
  gpus: number,
): Placement {
  checkInteger("gpus", gpus, 1);
  if (phy2log.length === 0 || phy2log.length % gpus !== 0) {
    throw new RangeError(
      `phy2log length must be a positive multiple of gpus (${gpus}): current value is ${phy2log.length}`,
    );
  }
  return checkPlacement("placement", {
    gpus,
    experts,
    slotsPerGpu: phy2log.length / gpus,
    slots: Int32Array.from(phy2log),
  });
}

/**
 * Whether every expert's replicas sit at the same local slot index on
 * their GPUs (the MicroMoE layout: each slot index is a partition of the
 * GPUs into replica groups).
 *
 * @param placement The placement.
 * @returns `true` if each expert appears at one slot index only.
 * @throws {TypeError | RangeError} If the placement is malformed.
 *
 * @example
 * ```ts
 * import { isSlotAligned, staticPlacement, symmetricPlacement } from "@moelab/balance";
 * import assert from "node:assert/strict";
 *
 * assert.ok(isSlotAligned(staticPlacement(8, 4)));
 * assert.ok(isSlotAligned(symmetricPlacement(8, 4, { replicas: 2 })));
 * ```
 */
export function isSlotAligned(placement: Placement): boolean {
  const p = checkPlacement("placement", placement);
  const slotOf = new Int32Array(p.experts).fill(-1);
  for (let i = 0; i < p.slots.length; i++) {
    const e = p.slots[i];
    if (e < 0) continue;
    const s = i % p.slotsPerGpu;
    if (slotOf[e] >= 0 && slotOf[e] !== s) return false;
    slotOf[e] = s;
  }
  return true;
}

/** Replicas of each expert, CSR: `gpu[start[e]..start[e+1])`, `slot` the flat slot index. */
export interface ReplicaTable {
  start: Int32Array;
  gpu: Int32Array;
  slot: Int32Array;
}

const TABLES = new WeakMap<Placement, ReplicaTable>();

/** The replica table of a placement (cached per placement object). */
export function replicaTable(p: Placement): ReplicaTable {
  let t = TABLES.get(p);
  if (t) return t;
  const E = p.experts, S = p.slotsPerGpu;
  const start = new Int32Array(E + 1);
  for (let i = 0; i < p.slots.length; i++) {
    if (p.slots[i] >= 0) start[p.slots[i] + 1]++;
  }
  for (let e = 0; e < E; e++) start[e + 1] += start[e];
  const fill = start.slice(0, E);
  const R = start[E];
  const gpu = new Int32Array(R), slot = new Int32Array(R);
  for (let i = 0; i < p.slots.length; i++) {
    const e = p.slots[i];
    if (e < 0) continue;
    const r = fill[e]++;
    gpu[r] = Math.floor(i / S);
    slot[r] = i;
  }
  t = { start, gpu, slot };
  TABLES.set(p, t);
  return t;
}

/**
 * Throws a RangeError where an expert has more replicas than there are
 * GPUs (each replica of an expert sits on its own GPU), naming the two
 * settings as the caller's user wrote them (`--replicas` and `--gpus`,
 * or `ep.replicas` and `ep.gpus`); `isDefault` says that the user did not
 * set `replicas`.
 */
export function checkReplicasFit(
  replicasName: string,
  replicas: number,
  gpusName: string,
  gpus: number,
  isDefault: boolean,
): void {
  if (replicas > gpus) {
    throw new RangeError(
      `${replicasName} must be at most ${gpusName} (${gpus}: each replica of an expert on its own GPU): current value is ${replicas}${
        isDefault ? " (the default)" : ""
      }`,
    );
  }
}
