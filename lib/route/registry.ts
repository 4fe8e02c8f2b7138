import { show } from "../validate.ts";
import type { Balancer, BalancerContext } from "./balancer.ts";
import { greedy } from "./greedy.ts";
import { lossFree } from "./loss_free.ts";
import { bip } from "./bip.ts";
import { quantile } from "./quantile.ts";
import { sinkhorn } from "./sinkhorn.ts";
import { expertChoice } from "./expert_choice.ts";
import { capacity } from "./capacity.ts";
import { exact } from "./exact.ts";

/** A registered balancing method: how to build it and what it accepts. */
export interface BalancerEntry {
  /** One line of what the method is. */
  description: string;
  /** Accepted option names and their types. */
  options: Record<string, "number" | "string" | "boolean">;
  /** Builds the balancer. */
  create(context: BalancerContext, options: Record<string, unknown>): Balancer;
}

/**
 * The balancing methods the simulator can run, by name. New methods
 * register here.
 */
export const BALANCERS: Record<string, BalancerEntry> = {
  "greedy": {
    description: "plain top-K, no balancing",
    options: {},
    create: (ctx) => greedy(ctx),
  },
  "loss-free": {
    description:
      "Loss-Free Balancing: expert biases with a sign (or proportional) update",
    options: {
      rate: "number",
      rule: "string",
      multiplicative: "boolean",
      center: "boolean",
      microBatches: "number",
      schedule: "string",
      scheduleSteps: "number",
      finalRate: "number",
      stepFactor: "number",
      biasPrecision: "string",
      countPrecision: "string",
      countAdd: "string",
    },
    create: (ctx, o) => lossFree(ctx, o),
  },
  "bip": {
    description:
      "BIP-Based Balancing: T exact dual coordinate rounds on each batch (not causal)",
    options: {
      T: "number",
      capacityFactor: "number",
      clipTokenPrices: "boolean",
    },
    create: (ctx, o) => bip(ctx, o),
  },
  "quantile": {
    description:
      "Quantile Balancing: one exact dual step from the previous batch (causal)",
    options: {},
    create: (ctx) => quantile(ctx),
  },
  "sinkhorn": {
    description: "Sinkhorn (S-BASE) scaling for selection (not causal)",
    options: {
      tolerance: "number",
      maxIterations: "number",
      temperature: "number",
    },
    create: (ctx, o) => sinkhorn(ctx, o),
  },
  "expert-choice": {
    description:
      "Expert Choice: each expert takes its top ceil(N*K/E) tokens (not causal)",
    options: { capacityFactor: "number" },
    create: (ctx, o) => expertChoice(ctx, o),
  },
  "capacity": {
    description:
      "greedy top-K with a capacity factor, dropping by score or position",
    options: {
      capacityFactor: "number",
      drop: "string",
      minCapacity: "number",
    },
    create: (ctx, o) => capacity(ctx, o),
  },
  "exact": {
    description:
      "the exact balanced optimum of each batch, an oracle (not causal; bracketed under a group limit)",
    options: { capacityFactor: "number", groupLimit: "string" },
    create: (ctx, o) => exact(ctx, o),
  },
};

/** A method chosen for a run: its registered name, options and display label. */
export interface MethodSpec {
  /** Registered name, a key of {@linkcode BALANCERS}. */
  name: string;
  /** Options passed to the method. */
  options: Record<string, unknown>;
  /** The label shown in tables and files (default: the spec as written). */
  label: string;
}

/**
 * Parses a method spec: a name, optionally followed by options in
 * parentheses, as in `loss-free(rate=1e-2,rule=proportional)`; or an
 * object `{ name, options?, label? }` from a preset.
 *
 * @throws {RangeError} If the name or an option is unknown, or a value has the wrong type.
 * @throws {SyntaxError} If the text is malformed.
 *
 * @example
 * ```ts
 * import { parseMethodSpec } from "@moelab/balance";
 * import assert from "node:assert/strict";
 *
 * const m = parseMethodSpec("loss-free(rate=1e-2,rule=proportional)");
 * assert.equal(m.name, "loss-free");
 * assert.deepEqual(m.options, { rate: 0.01, rule: "proportional" });
 * assert.throws(() => parseMethodSpec("no-such-method"), RangeError);
 * ```
 */
export function parseMethodSpec(spec: unknown): MethodSpec {
  const { name, options, label } = readMethodSpec(spec);
  const entry = BALANCERS[name];
  if (!entry) {
    throw new RangeError(
      `method must be one of ${
        Object.keys(BALANCERS).join(", ")
      }: current value is ${show(name)}`,
    );
  }
  for (const [key, value] of Object.entries(options)) {
    const type = entry.options[key];
    if (!type) {
      const known = Object.keys(entry.options);
      throw new RangeError(
        `${name} has no option ${show(key)}${
          known.length ? ` (options: ${known.join(", ")})` : " (it takes none)"
        }`,
      );
    }
    const actual: string = typeof value;
    if (actual !== type) {
      throw new RangeError(
        `${name} option ${key} must be a ${type}: current value is ${
          show(value)
        }`,
      );
    }
  }
  return { name, options, label };
}

/**
 * Builds a balancer from a method spec (see {@linkcode parseMethodSpec}).
 *
 * @example
 * ```ts
 * import { createBalancer } from "@moelab/balance";
 * import assert from "node:assert/strict";
 *
 * const b = createBalancer("loss-free(rate=0.01)", { layers: 2, experts: 8, k: 2 });
 * assert.equal(b.name, "loss-free");
 * assert.equal(b.causal, true);
 * ```
 */
export function createBalancer(
  spec: string | MethodSpec,
  context: BalancerContext,
): Balancer {
  const m = typeof spec === "string" ? parseMethodSpec(spec) : spec;
  return BALANCERS[m.name].create(context, m.options);
}

/**
 * The syntax of a method spec, shared by every parser of methods: a name
 * with options in parentheses (`name(key=value,...)`, values read as
 * booleans, numbers or strings), or an object `{ name, options?, label? }`.
 * The label defaults to the spec as written. Names and options are not
 * checked here.
 *
 * @throws {SyntaxError} If the text is malformed.
 * @throws {TypeError} If the object's fields have the wrong types.
 */
export function readMethodSpec(spec: unknown): MethodSpec {
  if (typeof spec === "string") {
    const m = /^\s*([a-z0-9-]+)\s*(?:\((.*)\))?\s*$/.exec(spec);
    if (!m) {
      throw new SyntaxError(
        `method spec is malformed: current value is ${show(spec)}`,
      );
    }
    const options: Record<string, unknown> = {};
    for (const part of (m[2] ?? "").split(",")) {
      if (part.trim() === "") continue;
      const kv = /^\s*([A-Za-z]\w*)\s*=\s*([^=]+?)\s*$/.exec(part);
      if (!kv) {
        throw new SyntaxError(
          `method option must look like name=value: current value is ${
            show(part)
          }`,
        );
      }
      const raw = kv[2];
      options[kv[1]] = raw === "true"
        ? true
        : raw === "false"
        ? false
        : raw !== "" && Number.isFinite(Number(raw))
        ? Number(raw)
        : raw;
    }
    return { name: m[1], options, label: spec.trim() };
  }
  if (spec === null || typeof spec !== "object" || Array.isArray(spec)) {
    throw new TypeError(
      `method must be a string or an object: current value is ${show(spec)}`,
    );
  }
  const o = spec as Record<string, unknown>;
  if (typeof o.name !== "string") {
    throw new TypeError(
      `method.name must be a string: current value is ${show(o.name)}`,
    );
  }
  if (
    o.options !== undefined &&
    (o.options === null || typeof o.options !== "object" ||
      Array.isArray(o.options))
  ) {
    throw new TypeError(
      `method.options must be an object: current value is ${show(o.options)}`,
    );
  }
  return {
    name: o.name,
    options: { ...(o.options as Record<string, unknown> | undefined) },
    label: typeof o.label === "string" ? o.label : o.name,
  };
}
