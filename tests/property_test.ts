// Property-based tests (fast-check): random and adversarial inputs to the
// command-line parsers, the .npy and table readers, route, the balancers'
// context checks and the exact solver. Each input gives either the answer
// of an independent twin written here, or a typed error (TypeError,
// RangeError, SyntaxError, or UsageError on the command line) whose message
// shows the offending value; never a hang, another kind of crash, or an
// allocation the input's size does not justify.
//
// Every property runs with a fixed seed, so CI sees the same cases on
// every run. On failure fast-check prints the seed and the shrunk
// counterexample; MOELAB_PROPERTY_SEED=<seed> reruns the suite from another
// seed (for example to explore, or to reproduce a reported failure).
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import fc from "fast-check";
import {
  bip,
  encodeNpy,
  greedy,
  lossFree,
  parseMethodSpec,
  parseNpy,
  quantile,
  route,
  type ScoreMatrix,
  solveBalancedAssignment,
  solveBalancedAssignmentSync,
} from "../mod.ts";
import { BALANCERS } from "../lib/route/registry.ts";
import {
  type FlagSpec,
  parseFlags,
  splitMethods,
  UsageError,
} from "../lib/cli/args.ts";
import { readLoadTable } from "../lib/workload/load_table.ts";
import { readTable } from "../lib/workload/read_table.ts";
import { parseNpyTensor } from "../lib/serving/parse_npy_tensor.ts";

const SEED = process.env.MOELAB_PROPERTY_SEED === undefined
  ? 20261130
  : Number(process.env.MOELAB_PROPERTY_SEED);

/** Runs a property from the fixed seed; fast-check reports seed and path on failure. */
function check<T>(
  property: fc.IProperty<T>,
  numRuns: number,
  offset: number,
): void {
  fc.assert(property, { seed: SEED + offset, numRuns });
}

/** The same for an asynchronous property. */
async function checkAsync<T>(
  property: fc.IAsyncProperty<T>,
  numRuns: number,
  offset: number,
): Promise<void> {
  await fc.assert(property, { seed: SEED + offset, numRuns });
}

/** How the library's messages show a value (the house style). */
function shown(value: unknown): string {
  if (typeof value === "string") return JSON.stringify(value);
  if (Array.isArray(value)) return `an array of length ${value.length}`;
  if (value !== null && typeof value === "object") return typeof value;
  return String(value);
}

/** Runs `f`; returns its result, or the error if it is one of `types`, failing otherwise. */
function outcome<T>(
  f: () => T,
  types: (new (...a: never[]) => Error)[],
): { ok: true; value: T } | { ok: false; error: Error } {
  try {
    return { ok: true, value: f() };
  } catch (e) {
    if (!types.some((t) => e instanceof t)) {
      throw new Error(`unexpected ${(e as Error)?.name ?? typeof e}: ${e}`);
    }
    return { ok: false, error: e as Error };
  }
}

/** Runs `f` and asserts it took under `ms` milliseconds. */
function quick<T>(ms: number, f: () => T): T {
  const start = performance.now();
  try {
    return f();
  } finally {
    const took = performance.now() - start;
    assert.ok(took < ms, `took ${took.toFixed(1)} ms, over ${ms} ms`);
  }
}

// ---------------------------------------------------------------------------
// Command-line flags and method lists.

const specArb: fc.Arbitrary<FlagSpec> = fc.record({
  steps: fc.constantFrom("integer", "number", "string", "boolean"),
  rate: fc.constantFrom("integer", "number", "string", "boolean"),
  out: fc.constantFrom("integer", "number", "string", "boolean"),
  quiet: fc.constantFrom("integer", "number", "string", "boolean"),
}) as fc.Arbitrary<FlagSpec>;

/** A value of the flag's type and the text a user would type for it. */
function flagValue(type: string): fc.Arbitrary<[unknown, string]> {
  switch (type) {
    case "integer":
      return fc.integer({ min: -1e9, max: 1e9 }).map((v) => [v, String(v)]);
    case "number":
      return fc.double({ noNaN: true, noDefaultInfinity: true })
        .map((v) => [Object.is(v, -0) ? 0 : v, String(v)]);
    default:
      // Values that cannot be read as a flag: they start with neither "-" nor space.
      return fc.string({ minLength: 1, maxLength: 8 })
        .filter((s) => !s.startsWith("-") && s.trim() === s && s !== "")
        .map((s) => [s, s]);
  }
}

describe("parseFlags", () => {
  test("well-formed flags parse to their values (last one wins)", () => {
    const caseArb = specArb.chain((spec) =>
      fc.tuple(
        fc.constant(spec),
        fc.array(
          fc.constantFrom(...Object.keys(spec)).chain((name) =>
            fc.tuple(
              fc.constant(name),
              spec[name] === "boolean"
                ? fc.constant<[unknown, string]>([true, ""])
                : flagValue(spec[name]),
              fc.boolean(),
            )
          ),
          { maxLength: 6 },
        ),
      )
    );
    check(
      fc.property(caseArb, ([spec, flags]) => {
        const args: string[] = [];
        const expected: Record<string, unknown> = {};
        for (const [name, [value, text], joined] of flags) {
          if (spec[name] === "boolean") args.push(`--${name}`);
          else if (joined) args.push(`--${name}=${text}`);
          else args.push(`--${name}`, text);
          expected[name] = value;
        }
        assert.deepEqual(parseFlags(args, spec), expected);
      }),
      300,
      1,
    );
  });

  test("any argument list parses consistently or is a UsageError that shows what was typed", () => {
    const token = fc.oneof(
      fc.constantFrom(
        "--",
        "-",
        "--=",
        "--steps",
        "--rate",
        "--out",
        "--quiet",
        "--quiet=1",
        "--steps=",
        "--steps=1.5",
        "--rate=1e400",
        "--rate=NaN",
        "--rate=-Infinity",
        "--steps= ",
        "--nope",
        "steps",
        "-q",
        "",
        " ",
        "0x10",
        "1e3",
        "12",
        "-3",
      ),
      fc.string({ maxLength: 6 }),
      fc.string({ maxLength: 6 }).map((s) => `--${s}`),
    );
    check(
      fc.property(specArb, fc.array(token, { maxLength: 6 }), (spec, args) => {
        const r = outcome(() => parseFlags(args, spec), [UsageError]);
        if (!r.ok) {
          // The message names a flag or quotes an argument that was typed.
          const m = r.error.message;
          assert.ok(
            args.some((a) =>
              m.includes(JSON.stringify(a)) ||
              (a.startsWith("--") && m.includes(a.split("=")[0]))
            ),
            `message shows no argument: ${m} (args ${JSON.stringify(args)})`,
          );
          return;
        }
        // Every value has its flag's type, and writing the flags back as
        // --name=value parses to the same flags.
        const again: string[] = [];
        for (const [name, value] of Object.entries(r.value)) {
          const type = spec[name];
          assert.ok(type !== undefined, `unknown flag ${name} accepted`);
          if (type === "boolean") {
            assert.equal(value, true);
            again.push(`--${name}`);
            continue;
          }
          if (type === "string") assert.equal(typeof value, "string");
          else {
            assert.ok(Number.isFinite(value), `${name} = ${value}`);
            if (type === "integer") assert.ok(Number.isInteger(value));
          }
          again.push(`--${name}=${value}`);
        }
        assert.deepEqual(parseFlags(again, spec), r.value);
      }),
      1000,
      2,
    );
  });

  test("method lists split at top-level commas only", () => {
    const method = fc.tuple(
      fc.constantFrom(...Object.keys(BALANCERS)),
      fc.array(
        fc.tuple(
          fc.constantFrom("rate", "T", "rule", "drop"),
          fc.constantFrom("1e-2", "3", "sign", "true"),
        ),
        { maxLength: 3 },
      ),
    ).map(([name, opts]) =>
      opts.length === 0
        ? name
        : `${name}(${opts.map(([k, v]) => `${k}=${v}`).join(",")})`
    );
    check(
      fc.property(
        fc.array(method, { minLength: 1, maxLength: 4 }),
        fc.constantFrom("", " "),
        (methods, pad) => {
          const text = methods.join(`${pad},${pad}`);
          assert.deepEqual(splitMethods(text), methods);
        },
      ),
      300,
      3,
    );
    check(
      fc.property(
        fc.stringMatching(/^[a-z(),= -]{0,12}$/),
        (text) => {
          const r = outcome(() => splitMethods(text), [UsageError]);
          if (!r.ok) {
            assert.ok(r.error.message.includes(JSON.stringify(text)));
            return;
          }
          // The parts, joined again, give the text back up to the blanks
          // around the commas, and none is empty.
          assert.ok(r.value.every((p) => p !== "" && p === p.trim()));
          assert.equal(
            r.value.join(",").replace(/\s/g, ""),
            text.replace(/\s/g, ""),
          );
        },
      ),
      1000,
      4,
    );
  });
});

describe("parseMethodSpec", () => {
  /** A random option value of each type, with the text that writes it. */
  const optionValue = (type: string): fc.Arbitrary<[unknown, string]> =>
    type === "number"
      ? fc.double({ noNaN: true, noDefaultInfinity: true })
        .map((v) => [Object.is(v, -0) ? 0 : v, String(v)])
      : type === "boolean"
      ? fc.boolean().map((v) => [v, String(v)])
      : fc.stringMatching(/^[a-z][a-z-]{0,8}$/)
        .filter((s) => s !== "true" && s !== "false")
        .map((s) => [s, s]);

  test("written specs parse to their name and options", () => {
    const specArb = fc.constantFrom(...Object.keys(BALANCERS)).chain((name) => {
      const opts = Object.entries(BALANCERS[name].options);
      return fc.tuple(
        fc.constant(name),
        fc.subarray(opts).chain((chosen) =>
          fc.tuple(
            ...chosen.map(([key, type]) =>
              optionValue(type).map(([v, t]) => [key, v, t] as const)
            ),
          )
        ),
        fc.constantFrom("", " "),
      );
    });
    check(
      fc.property(specArb, ([name, opts, pad]) => {
        const text = opts.length === 0 && pad === ""
          ? name
          : `${pad}${name}${pad}(${
            opts.map(([k, , t]) => `${pad}${k}${pad}=${pad}${t}${pad}`)
              .join(",")
          })${pad}`;
        const m = parseMethodSpec(text);
        assert.equal(m.name, name);
        assert.deepEqual(
          m.options,
          Object.fromEntries(opts.map(([k, v]) => [k, v])),
        );
        assert.equal(m.label, text.trim());
      }),
      500,
      5,
    );
  });

  test("any text is a valid spec or a typed error that shows the value", () => {
    const text = fc.oneof(
      fc.stringMatching(/^[a-zA-Z0-9(),=. -]{0,24}$/),
      fc.constantFrom(...Object.keys(BALANCERS)).chain((name) =>
        fc.stringMatching(/^[a-zA-Z0-9,=. ]{0,16}$/).map((inner) =>
          `${name}(${inner})`
        )
      ),
    );
    check(
      fc.property(text, (spec) => {
        const r = outcome(() => parseMethodSpec(spec), [
          SyntaxError,
          RangeError,
        ]);
        if (!r.ok) {
          assert.match(
            r.error.message,
            /current value is .+|has no option ".*"/,
          );
          return;
        }
        // Accepted: a registered method with options of the declared types.
        const entry = BALANCERS[r.value.name];
        assert.ok(entry, r.value.name);
        for (const [k, v] of Object.entries(r.value.options)) {
          assert.equal(typeof v, entry.options[k], `${k} = ${v}`);
        }
      }),
      1500,
      6,
    );
  });

  test("object specs from presets are checked field by field", () => {
    const anything = fc.oneof(
      fc.string({ maxLength: 6 }),
      fc.double(),
      fc.boolean(),
      fc.constant(null),
      fc.constant(undefined),
      fc.array(fc.integer(), { maxLength: 2 }),
    );
    const obj = fc.record({
      name: fc.oneof(fc.constantFrom(...Object.keys(BALANCERS)), anything),
      options: fc.oneof(
        fc.constant(undefined),
        fc.dictionary(
          fc.constantFrom("rate", "rule", "T", "capacityFactor", "x"),
          anything,
          { maxKeys: 3 },
        ),
        anything,
      ),
      label: fc.oneof(fc.constant(undefined), anything),
    }, { requiredKeys: [] });
    check(
      fc.property(fc.oneof(obj, anything), (spec) => {
        const r = outcome(() => parseMethodSpec(spec), [
          TypeError,
          RangeError,
          SyntaxError,
        ]);
        if (!r.ok) {
          assert.match(
            r.error.message,
            /current value is .+|has no option ".*"/,
          );
          return;
        }
        const entry = BALANCERS[r.value.name];
        assert.ok(entry);
        for (const [k, v] of Object.entries(r.value.options)) {
          assert.equal(typeof v, entry.options[k]);
        }
      }),
      1000,
      7,
    );
  });
});

// ---------------------------------------------------------------------------
// The .npy reader.

/** A .npy file written here, independently of encodeNpy, with a chosen header. */
function npyBytes(
  version: 1 | 2 | 3,
  header: string,
  payload: Uint8Array,
): Uint8Array {
  const prefix = version === 1 ? 10 : 12;
  const padded = header +
    " ".repeat((64 - (prefix + header.length + 1) % 64) % 64) +
    "\n";
  const out = new Uint8Array(prefix + padded.length + payload.length);
  out.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, version, 0]);
  const view = new DataView(out.buffer);
  if (version === 1) view.setUint16(8, padded.length, true);
  else view.setUint32(8, padded.length, true);
  for (let i = 0; i < padded.length; i++) {
    out[prefix + i] = padded.charCodeAt(i);
  }
  out.set(payload, prefix + padded.length);
  return out;
}

function shapeText(shape: readonly (number | string)[]): string {
  return shape.length === 1 ? `(${shape[0]},)` : `(${shape.join(", ")})`;
}

const f32 = fc.float({ noNaN: false }).map((v) => Math.fround(v));

describe("parseNpy", () => {
  test("arrays written with any header layout read back exactly", () => {
    const arb = fc.array(fc.integer({ min: 0, max: 4 }), { maxLength: 4 })
      .chain((shape) => {
        const count = shape.reduce((a, b) => a * b, 1);
        return fc.record({
          shape: fc.constant(shape),
          values: fc.array(f32, { minLength: count, maxLength: count }),
          version: fc.constantFrom<1 | 2 | 3>(1, 2, 3),
          descr: fc.constantFrom("<f4", "=f4"),
          order: fc.constantFrom(0, 1, 2),
          space: fc.constantFrom("", " ", "  "),
        });
      });
    check(
      fc.property(arb, ({ shape, values, version, descr, order, space }) => {
        const fields = [
          `'descr':${space}'${descr}'`,
          `'fortran_order':${space}False`,
          `'shape':${space}${shapeText(shape)}`,
        ];
        const rotated = [...fields.slice(order), ...fields.slice(0, order)];
        const data = Float32Array.from(values);
        const bytes = npyBytes(
          version,
          `{${rotated.join(`,${space}`)}, }`,
          new Uint8Array(data.buffer),
        );
        const a = parseNpy(bytes);
        assert.deepEqual(a.shape, shape);
        assert.deepEqual(
          new Uint8Array(a.data.buffer),
          new Uint8Array(data.buffer),
        );
        // encodeNpy's output reads back the same.
        const b = parseNpy(encodeNpy(data, shape));
        assert.deepEqual(b.shape, shape);
        assert.deepEqual(
          new Uint8Array(b.data.buffer),
          new Uint8Array(data.buffer),
        );
      }),
      300,
      8,
    );
  });

  test("adversarial headers, shapes, dtypes and truncations: a typed error, fast, before allocating", () => {
    const dim = fc.oneof(
      fc.integer({ min: 0, max: 5 }).map(String),
      fc.constantFrom(
        "1000000000000",
        "9007199254740993",
        "99999999999999999999999",
        "4294967296",
        "-1",
        "1.5",
        "1e3",
        "0x10",
        "",
        " ",
        "None",
      ),
    );
    const arb = fc.record({
      version: fc.constantFrom(0, 1, 2, 3, 4, 255),
      descr: fc.constantFrom(
        "<f4",
        "=f4",
        ">f4",
        "<f8",
        "|u1",
        "<i4",
        "f4",
        "",
        "<f4'",
      ),
      fortran: fc.constantFrom("False", "True", "false", "0"),
      shape: fc.array(dim, { maxLength: 4 }),
      payload: fc.integer({ min: 0, max: 64 }),
      cut: fc.option(fc.integer({ min: 0, max: 200 })),
      flip: fc.option(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 }))),
      noise: fc.option(fc.uint8Array({ maxLength: 40 })),
    });
    check(
      fc.property(arb, (c) => {
        let bytes: Uint8Array;
        if (c.noise !== null) bytes = c.noise;
        else {
          bytes = npyBytes(
            (c.version === 2 || c.version === 3 ? c.version : 1) as 1 | 2 | 3,
            `{'descr': '${c.descr}', 'fortran_order': ${c.fortran}, 'shape': ${
              shapeText(c.shape)
            }, }`,
            new Uint8Array(c.payload),
          );
          bytes[6] = c.version;
          if (c.cut !== null) bytes = bytes.subarray(0, c.cut);
          if (c.flip !== null && bytes.length > 0) {
            bytes = bytes.slice();
            bytes[c.flip[0] % bytes.length] = c.flip[1];
          }
        }
        const r = quick(
          250,
          () =>
            outcome(() => parseNpy(bytes), [
              SyntaxError,
              TypeError,
              RangeError,
            ]),
        );
        if (!r.ok) {
          // The reader's own message, not an engine's allocation failure.
          assert.match(r.error.message, /\.npy|bytes must/);
          return;
        }
        // Accepted: a float32 array whose payload is exactly the shape's size.
        const count = r.value.shape.reduce((a, b) => a * b, 1);
        assert.ok(
          r.value.shape.every((d) => Number.isSafeInteger(d) && d >= 0),
        );
        assert.equal(r.value.data.length, count);
        assert.ok(count * 4 <= bytes.length);
      }),
      1500,
      9,
    );
  });

  test("the serving tensor reader: the same adversarial files give a tensor of the shape's size or a typed error", () => {
    const arb = fc.record({
      version: fc.constantFrom(1, 2, 3, 7),
      descr: fc.constantFrom(
        "<f4",
        "<f8",
        "<i4",
        "<i8",
        "|u1",
        "|b1",
        "=i2",
        ">f4",
        "<c8",
      ),
      fortran: fc.constantFrom("False", "True"),
      shape: fc.array(
        fc.oneof(
          fc.integer({ min: 0, max: 4 }).map(String),
          fc.constantFrom("1000000000000", "0x10", "1e3", "-1", "1.5"),
        ),
        { maxLength: 3 },
      ),
      payload: fc.integer({ min: 0, max: 80 }),
      cut: fc.option(fc.integer({ min: 0, max: 140 })),
    });
    check(
      fc.property(arb, (c) => {
        let bytes = npyBytes(
          (c.version === 2 || c.version === 3 ? c.version : 1) as 1 | 2 | 3,
          `{'descr': '${c.descr}', 'fortran_order': ${c.fortran}, 'shape': ${
            shapeText(c.shape)
          }, }`,
          new Uint8Array(c.payload),
        );
        bytes[6] = c.version;
        if (c.cut !== null) bytes = bytes.subarray(0, c.cut);
        const r = quick(
          250,
          () =>
            outcome(() => parseNpyTensor(bytes), [
              SyntaxError,
              TypeError,
              RangeError,
            ]),
        );
        if (!r.ok) {
          assert.match(r.error.message, /\.npy/);
          return;
        }
        const count = r.value.shape.reduce((a, b) => a * b, 1);
        assert.equal(r.value.data.length, count);
        // Each size is written in decimal digits in the header.
        assert.deepEqual(
          r.value.shape.map(String),
          c.shape.map((d) => d.trim()),
        );
      }),
      1000,
      21,
    );
  });

  test("a header claiming 1e12 elements or more is refused at once, naming the shape", () => {
    for (
      const dims of [["1000000", "1000000"], ["1000000000000"], [
        "4294967296",
        "4294967296",
      ]]
    ) {
      const bytes = npyBytes(
        1,
        `{'descr': '<f4', 'fortran_order': False, 'shape': ${
          shapeText(dims)
        }, }`,
        new Uint8Array(16),
      );
      const r = quick(100, () => outcome(() => parseNpy(bytes), [RangeError]));
      assert.ok(!r.ok);
      assert.match(r.error.message, /shape \[/);
    }
  });

  test("a wrong dtype is a TypeError that shows it", () => {
    check(
      fc.property(
        fc.stringMatching(/^[<>|=][a-zA-Z][0-9]{1,2}$/).filter((d) =>
          d !== "<f4" && d !== "=f4"
        ),
        (descr) => {
          const bytes = npyBytes(
            1,
            `{'descr': '${descr}', 'fortran_order': False, 'shape': (1,), }`,
            new Uint8Array(4),
          );
          assert.throws(
            () => parseNpy(bytes),
            (e: Error) =>
              e instanceof TypeError && e.message.includes(`'${descr}'`),
          );
        },
      ),
      200,
      10,
    );
  });
});

// ---------------------------------------------------------------------------
// route against a brute-force twin.

interface RouteCase {
  tokens: number;
  experts: number;
  k: number;
  groups: number;
  topGroups: number;
  values: number[];
  bias: number[] | undefined;
  multiply: boolean;
  normalize: boolean;
  scale: number;
}

/** Divisors of n. */
function divisors(n: number): number[] {
  const out: number[] = [];
  for (let d = 1; d <= n; d++) if (n % d === 0) out.push(d);
  return out;
}

/**
 * Scores drawn from few values (many ties), -Infinity only where asked;
 * group settings valid by construction.
 */
function routeCase(masks: boolean, grouped: boolean): fc.Arbitrary<RouteCase> {
  return fc.record({
    tokens: fc.integer({ min: 0, max: 6 }),
    experts: fc.integer({ min: 1, max: 12 }),
  }).chain(({ tokens, experts }) =>
    fc.constantFrom(...(grouped ? divisors(experts) : [1])).chain((groups) =>
      fc.integer({ min: 1, max: groups }).chain((topGroups) =>
        fc.record({
          tokens: fc.constant(tokens),
          experts: fc.constant(experts),
          groups: fc.constant(groups),
          topGroups: fc.constant(topGroups),
          k: fc.integer({ min: 1, max: topGroups * (experts / groups) }),
          values: fc.array(
            masks
              ? fc.oneof(
                {
                  weight: 5,
                  arbitrary: fc.integer({ min: -4, max: 4 }).map((v) => v / 4),
                },
                { weight: 1, arbitrary: fc.constant(-Infinity) },
              )
              : fc.oneof(
                fc.integer({ min: -4, max: 4 }).map((v) => v / 4),
                f32.filter(Number.isFinite),
              ),
            { minLength: tokens * experts, maxLength: tokens * experts },
          ),
          multiply: fc.boolean(),
          bias: fc.option(
            fc.array(fc.integer({ min: -4, max: 4 }).map((v) => v / 8), {
              minLength: experts,
              maxLength: experts,
            }),
            { nil: undefined },
          ),
          normalize: fc.boolean(),
          scale: fc.constantFrom(1, 2.5, 0.5),
        })
      )
    )
  );
}

/** The twin: every row sorted by its key, ties to the lowest index, within the kept groups. */
function routeTwin(c: RouteCase) {
  const { tokens, experts: E, k, groups, topGroups } = c;
  const data = Float32Array.from(c.values);
  const experts: number[] = [];
  const weights: number[] = [];
  const loads = new Array<number>(E).fill(0);
  const size = E / groups;
  for (let i = 0; i < tokens; i++) {
    const key = (j: number) => {
      const s = data[i * E + j];
      if (c.bias === undefined) return s;
      const b = c.multiply ? 1 + Math.abs(c.bias[j]) : c.bias[j];
      return c.multiply ? s * b : s + b;
    };
    const sorted = (ids: number[]) =>
      ids.sort((a, b) => key(a) === key(b) ? a - b : key(b) > key(a) ? 1 : -1);
    // Group score: the sum of the group's top max(1, floor(k / M)) keys.
    const per = Math.max(1, Math.min(size, Math.floor(k / topGroups)));
    const groupScore = (g: number) => {
      const top = sorted(
        Array.from({ length: size }, (_, r) => g * size + r),
      ).slice(0, per);
      const s = top.reduce((a, j) => a + key(j), 0);
      return Number.isNaN(s) ? -Infinity : s;
    };
    const kept = Array.from({ length: groups }, (_, g) => g)
      .map((g) => [g, groupScore(g)] as const)
      .sort((a, b) => (a[1] === b[1] ? a[0] - b[0] : b[1] > a[1] ? 1 : -1))
      .slice(0, topGroups)
      .map(([g]) => g);
    const eligible = Array.from({ length: E }, (_, j) => j).filter((j) =>
      groups === topGroups || kept.includes(Math.floor(j / size))
    );
    const pick = sorted(eligible).slice(0, k);
    let sum = 0;
    const w = pick.map((j) => {
      const x = data[i * E + j];
      const v = x > -Infinity ? x : 0;
      sum += v;
      return v;
    });
    const f = c.normalize && sum > 0 ? c.scale / sum : c.scale;
    for (let r = 0; r < k; r++) {
      experts.push(pick[r]);
      weights.push(Math.fround(w[r] * f));
      loads[pick[r]]++;
    }
  }
  return { experts, weights, loads };
}

function runRoute(c: RouteCase) {
  const scores: ScoreMatrix = {
    data: Float32Array.from(c.values),
    tokens: c.tokens,
    experts: c.experts,
  };
  return route(scores, {
    k: c.k,
    groups: c.groups,
    topGroups: c.topGroups,
    bias: c.bias === undefined
      ? undefined
      : c.multiply
      ? c.bias.map((b) => 1 + Math.abs(b))
      : c.bias,
    biasMode: c.multiply ? "multiply" : "add",
    normalize: c.normalize,
    scale: c.scale,
  });
}

describe("route", () => {
  test("matches the sorted-row twin: ties to the lowest index, masks, bias, normalise, scale", () => {
    check(
      fc.property(routeCase(true, false), (c) => {
        const r = runRoute(c);
        const t = routeTwin(c);
        assert.deepEqual([...r.experts], t.experts);
        assert.deepEqual([...r.loads], t.loads);
        assert.deepEqual([...r.weights], t.weights);
      }),
      1500,
      11,
    );
  });

  test("group-limited routing matches the twin (finite scores)", () => {
    check(
      fc.property(routeCase(false, true), (c) => {
        const r = runRoute(c);
        const t = routeTwin(c);
        assert.deepEqual([...r.experts], t.experts);
        assert.deepEqual([...r.loads], t.loads);
        assert.deepEqual([...r.weights], t.weights);
      }),
      1500,
      12,
    );
  });

  test(
    "with groups, a masked expert is taken from a kept group, never from a dropped one",
    {
      skip:
        "open: the CPU kernel masks dropped groups to -Infinity like masked experts, so when the kept groups hold fewer than k finite scores the lowest-index -Infinity expert is taken even from a dropped group (here expert 0, weight 0.5)",
    },
    () => {
      const r = route({
        data: new Float32Array([0.5, 0.5, 5, -Infinity, 4, -Infinity, 0, 0]),
        tokens: 1,
        experts: 8,
      }, { k: 3, groups: 4, topGroups: 2 });
      // Groups 1 and 2 are kept; their third expert is a masked one, 3.
      assert.deepEqual([...r.experts], [2, 4, 3]);
    },
  );

  test("bad options and scores are typed errors that show the value", () => {
    const bad = fc.oneof(
      fc.constantFrom(0, -1, 1.5, NaN, Infinity, 1e9, 2 ** 53),
      fc.constantFrom("2", null, true, [2], {}),
    );
    const arb = fc.record({
      tokens: fc.integer({ min: 0, max: 3 }),
      experts: fc.integer({ min: 1, max: 6 }),
      field: fc.constantFrom(
        "k",
        "groups",
        "topGroups",
        "scale",
        "bias",
        "biasMode",
        "score",
      ),
      value: fc.oneof(bad, fc.integer({ min: 0, max: 8 })),
      at: fc.nat(),
    });
    check(
      fc.property(arb, ({ tokens, experts, field, value, at }) => {
        const data = new Float32Array(tokens * experts).fill(0.5);
        const options: Record<string, unknown> = { k: 1 };
        if (field === "score") {
          if (data.length === 0 || typeof value !== "number") return;
          data[at % data.length] = Number.isNaN(value) ? NaN : Infinity;
        } else if (field === "bias") {
          options.bias = typeof value === "number"
            ? new Array(experts).fill(0).map((
              _,
              j,
            ) => (j === at % experts ? value : 0))
            : value;
        } else options[field] = value;
        const r = outcome(
          () => route({ data, tokens, experts }, options as never),
          [TypeError, RangeError],
        );
        if (r.ok) {
          assert.equal(r.value.experts.length, tokens * r.value.k);
          assert.equal(
            r.value.loads.reduce((a, b) => a + b, 0),
            tokens * r.value.k,
          );
          return;
        }
        const m = r.error.message;
        if (field === "score") assert.match(m, /NaN|Infinity/);
        else if (field === "bias" && typeof value === "number") {
          assert.ok(m.includes(String(value)), m);
        } else {
          assert.ok(m.includes(field) || m.includes(shown(value)), m);
          assert.ok(m.includes(shown(value)) || /current value is/.test(m), m);
        }
      }),
      800,
      13,
    );
  });
});

// ---------------------------------------------------------------------------
// The balancers' context checks.

const CONTEXT_KEYS = ["layers", "experts", "k", "groups", "topGroups"] as const;

/** Why a context is invalid (the field and its value), or null: the checks written out here. */
function contextFault(
  ctx: Record<string, unknown>,
): [string, unknown] | null {
  const int = (v: unknown, min: number, max = Infinity) =>
    typeof v === "number" && Number.isSafeInteger(v) && v >= min && v <= max;
  for (const key of ["layers", "experts", "k"] as const) {
    if (!int(ctx[key], 1)) return [key, ctx[key]];
  }
  const experts = ctx.experts as number;
  if ((ctx.k as number) > experts) return ["k", ctx.k];
  const groups = ctx.groups ?? 1;
  if (!int(groups, 1, experts) || experts % (groups as number) !== 0) {
    return ["groups", groups];
  }
  const topGroups = ctx.topGroups ?? groups;
  if (!int(topGroups, 1, groups as number)) return ["topGroups", topGroups];
  // The kept groups must hold at least k experts (the route op's rule).
  if (
    (topGroups as number) * (experts / (groups as number)) <
      (ctx.k as number)
  ) return ["topGroups", topGroups];
  return null;
}

describe("balancer contexts", () => {
  const field = fc.oneof(
    { weight: 6, arbitrary: fc.integer({ min: 1, max: 16 }) },
    {
      weight: 1,
      arbitrary: fc.constantFrom(
        0,
        -1,
        2.5,
        NaN,
        Infinity,
        2 ** 53,
        "4",
        null,
        true,
        undefined,
      ),
    },
  );
  const ctxArb = fc.record({
    layers: field,
    experts: field,
    k: field,
    groups: fc.option(field, { nil: undefined }),
    topGroups: fc.option(field, { nil: undefined }),
  }, { requiredKeys: ["layers", "experts", "k"] });

  test("every balancer accepts a valid context and refuses an invalid one, showing the value", () => {
    const makers = { greedy, lossFree, quantile, bip } as const;
    check(
      fc.property(
        ctxArb,
        fc.constantFrom(...Object.keys(makers) as (keyof typeof makers)[]),
        (ctx, name) => {
          const fault = contextFault(ctx as Record<string, unknown>);
          const r = quick(
            1000,
            () =>
              outcome(() => makers[name](ctx as never), [
                TypeError,
                RangeError,
              ]),
          );
          if (fault === null) {
            assert.ok(
              r.ok,
              `refused a valid context ${JSON.stringify(ctx)}: ${
                !r.ok && r.error.message
              }`,
            );
            return;
          }
          assert.ok(!r.ok, `accepted ${fault[0]} = ${shown(fault[1])}`);
          const m = r.error.message;
          assert.ok(
            CONTEXT_KEYS.some((key) => m.includes(key)),
            `message names no field: ${m}`,
          );
          assert.ok(m.includes(`current value is ${shown(fault[1])}`), m);
        },
      ),
      1500,
      14,
    );
  });

  test("a context whose kept groups hold fewer than k experts is refused", () => {
    assert.throws(
      () => greedy({ layers: 1, experts: 8, k: 4, groups: 4, topGroups: 1 }),
      RangeError,
    );
  });
});

// ---------------------------------------------------------------------------
// The exact solver: brute force on tiny instances, glpk.js on small ones.

interface SolveCase {
  tokens: number;
  experts: number;
  k: number;
  factor: number;
  values: number[];
}

function solveCase(
  maxTokens: number,
  maxExperts: number,
  masks: boolean,
): fc.Arbitrary<SolveCase> {
  return fc.record({
    tokens: fc.integer({ min: 1, max: maxTokens }),
    experts: fc.integer({ min: 1, max: maxExperts }),
  }).chain(({ tokens, experts }) =>
    fc.record({
      tokens: fc.constant(tokens),
      experts: fc.constant(experts),
      k: fc.integer({ min: 1, max: Math.min(experts, 2) }),
      factor: fc.constantFrom(1, 1.25, 1.5, 2, 1e9),
      values: fc.array(
        fc.oneof(
          {
            weight: 4,
            arbitrary: fc.integer({ min: 0, max: 8 }).map((v) => v / 8),
          },
          { weight: 4, arbitrary: fc.float({ min: -4, max: 4, noNaN: true }) },
          { weight: masks ? 1 : 0, arbitrary: fc.constant(-Infinity) },
        ),
        { minLength: tokens * experts, maxLength: tokens * experts },
      ),
    })
  );
}

/** The best objective over every assignment (null if none is feasible), by enumeration. */
function bruteForce(c: SolveCase, capacity: number): number | null {
  const data = Float32Array.from(c.values);
  const { tokens, experts: E, k } = c;
  const subsets: number[][] = [];
  const grow = (from: number, set: number[]) => {
    if (set.length === k) return void subsets.push([...set]);
    for (let j = from; j < E; j++) grow(j + 1, [...set, j]);
  };
  grow(0, []);
  const load = new Array<number>(E).fill(0);
  let best: number | null = null;
  const visit = (i: number, total: number) => {
    if (i === tokens) {
      if (best === null || total > best) best = total;
      return;
    }
    for (const set of subsets) {
      if (
        set.some((j) => data[i * E + j] === -Infinity || load[j] >= capacity)
      ) continue;
      for (const j of set) load[j]++;
      visit(i + 1, total + set.reduce((a, j) => a + data[i * E + j], 0));
      for (const j of set) load[j]--;
    }
  };
  visit(0, 0);
  return best;
}

/**
 * `ceil(tokens * k / experts * factor)`, where a product within 1e-9
 * (relative) of an integer counts as that integer (so that 1.1 x 10 is 11).
 */
function balancedCapacity(c: SolveCase): number {
  const exact = c.tokens * c.k / c.experts * c.factor;
  const near = Math.round(exact);
  return Math.abs(exact - near) <= 1e-9 * Math.max(1, near)
    ? near
    : Math.ceil(exact);
}

function close(a: number, b: number): boolean {
  return Math.abs(a - b) <= 1e-9 * Math.max(1, Math.abs(b));
}

describe("exact solver", () => {
  test("solveBalancedAssignmentSync reaches the brute-force optimum or refuses an infeasible batch", () => {
    check(
      fc.property(
        solveCase(4, 4, true),
        fc.option(
          fc.oneof(
            fc.integer({ min: 0, max: 5 }),
            fc.constantFrom(1e10, 2 ** 53 - 1),
          ),
          { nil: undefined },
        ),
        (c, given) => {
          // Capacities far above the tokens must cost no more than `tokens`.
          const capacity = given ?? balancedCapacity(c);
          const best = bruteForce(c, capacity);
          const scores = {
            data: Float32Array.from(c.values),
            tokens: c.tokens,
            experts: c.experts,
          };
          const r = outcome(
            () =>
              solveBalancedAssignmentSync(
                scores,
                given === undefined
                  ? { k: c.k, capacityFactor: c.factor }
                  : { k: c.k, capacity: given },
              ),
            [RangeError],
          );
          if (best === null) {
            assert.ok(
              !r.ok,
              `solved an infeasible batch: ${r.ok && r.value.objective}`,
            );
            return;
          }
          assert.ok(
            r.ok,
            `refused a feasible batch (best ${best}): ${
              !r.ok && r.error.message
            }`,
          );
          const a = r.value;
          assert.equal(a.capacity, capacity);
          assert.ok(
            close(a.objective, best),
            `objective ${a.objective}, brute force ${best}`,
          );
          // The assignment itself: k distinct unmasked experts per token, loads within capacity.
          const loads = new Array<number>(c.experts).fill(0);
          let total = 0;
          for (let i = 0; i < c.tokens; i++) {
            const row = [...a.experts.subarray(i * c.k, (i + 1) * c.k)];
            assert.equal(new Set(row).size, c.k);
            for (const j of row) {
              loads[j]++;
              total += scores.data[i * c.experts + j];
            }
          }
          assert.deepEqual([...a.loads], loads);
          assert.ok(
            a.dualityGap <= 1e-9 * Math.max(1, Math.abs(a.objective)),
            `duality gap ${a.dualityGap}`,
          );
          assert.ok(loads.every((l) => l <= capacity));
          assert.ok(close(total, best));
        },
      ),
      600,
      15,
    );
  });

  test("glpk.js and the specialised solver give the same objective (within 1e-9 relative)", async () => {
    await checkAsync(
      fc.asyncProperty(solveCase(10, 6, false), async (c) => {
        const scores = {
          data: Float32Array.from(c.values),
          tokens: c.tokens,
          experts: c.experts,
        };
        const options = { k: c.k, capacityFactor: c.factor };
        const ssp = solveBalancedAssignmentSync(scores, options);
        const glpk = await solveBalancedAssignment(scores, {
          ...options,
          solver: "glpk",
        });
        assert.equal(glpk.solver, "glpk");
        assert.ok(
          close(ssp.objective, glpk.objective),
          `ssp ${ssp.objective}, glpk ${glpk.objective}`,
        );
      }),
      150,
      16,
    );
  });

  test("bad solver options are typed errors that show the value", () => {
    const value = fc.constantFrom(
      0,
      -1,
      1.5,
      NaN,
      Infinity,
      1e9,
      "2",
      null,
      0.5,
      3,
    );
    check(
      fc.property(
        fc.constantFrom(
          "k",
          "capacity",
          "capacityFactor",
          "solver",
          "expertPrices",
        ),
        value,
        (key, v) => {
          const scores = {
            data: new Float32Array([1, 0, 0, 1, 0.5, 0.5]),
            tokens: 3,
            experts: 2,
          };
          const r = quick(
            1000,
            () =>
              outcome(
                () =>
                  solveBalancedAssignmentSync(
                    scores,
                    { k: 1, [key]: v } as never,
                  ),
                [TypeError, RangeError],
              ),
          );
          if (r.ok) {
            assert.ok(r.value.loads.every((l) => l <= r.value.capacity));
            return;
          }
          // An infeasible capacity shows the product that it fails.
          assert.ok(
            r.error.message.includes(shown(v)) ||
              /infeasible: tokens x k = .* exceeds/.test(r.error.message),
            r.error.message,
          );
        },
      ),
      300,
      17,
    );
  });
});

// ---------------------------------------------------------------------------
// Load tables written to files and read back.

interface TableCase {
  rows: number[][]; // step, layer, expert, load
  wide: number;
  format: "csv" | "json" | "jsonl";
}

describe("load tables", () => {
  const dir = mkdtempSync(join(tmpdir(), "moelab-property-"));
  let file = 0;

  /** Writes a table (a header and rows of cells) in the given format. */
  function write(
    header: string[],
    cells: (string | number)[][],
    format: string,
  ): string {
    // One JSON table in three under a bare name, read by content.
    const bare = format !== "csv" && file % 3 === 0;
    const path = join(dir, bare ? `t${file++}` : `t${file++}.${format}`);
    const record = (row: (string | number)[]) =>
      Object.fromEntries(header.map((h, c) => [h, row[c]]));
    const text = format === "csv"
      ? [header.join(","), ...cells.map((r) => r.join(","))].join("\n") + "\n"
      : format === "json"
      ? JSON.stringify(cells.map(record))
      : cells.map((r) => JSON.stringify(record(r))).join("\n") + "\n";
    writeFileSync(path, text);
    return path;
  }

  const small = fc.integer({ min: 0, max: 3 });
  const load = fc.oneof(
    fc.integer({ min: 0, max: 1000 }),
    fc.constantFrom(0, 2 ** 31 - 1, 2 ** 31, 2 ** 40),
  );

  test("long and wide tables read back as the rows written", () => {
    const arb = fc.record({
      rows: fc.array(
        fc.tuple(small, small, fc.integer({ min: 0, max: 7 }), load),
        {
          minLength: 1,
          maxLength: 8,
        },
      ),
      wide: fc.integer({ min: 0, max: 3 }),
      format: fc.constantFrom<"csv" | "json" | "jsonl">("csv", "json", "jsonl"),
    });
    check(
      fc.property(arb, ({ rows, wide, format }: TableCase) => {
        if (wide === 0) {
          const path = write(["step", "layer", "expert", "load"], rows, format);
          const t = readLoadTable(path);
          assert.deepEqual(t.columns, ["step", "layer", "expert", "load"]);
          for (
            const [c, name] of ["step", "layer", "expert", "load"].entries()
          ) {
            assert.deepEqual(
              [...t.getColumn(name)].map(Number),
              rows.map((r) => r[c]),
              name,
            );
          }
          return;
        }
        // Wide: step, layer, then one column per expert holding the loads.
        const names = Array.from({ length: wide }, (_, j) => `e${j}`);
        const cells = rows.map((
          r,
        ) => [r[0], r[1], ...names.map((_, j) => r[3] + j)]);
        const path = write(["step", "layer", ...names], cells, format);
        const t = readLoadTable(path, { experts: "rest" });
        const expected = cells.flatMap((r) =>
          names.map((_, j) => [r[0], r[1], j, r[2 + j]])
        );
        for (const [c, name] of ["step", "layer", "expert", "load"].entries()) {
          assert.deepEqual(
            [...t.getColumn(name)].map(Number),
            expected.map((r) => r[c]),
            name,
          );
        }
      }),
      60,
      18,
    );
  });

  test("a bad cell is a typed error naming its column, or read as written", () => {
    const badCell = fc.constantFrom<string | number>(
      "",
      "x",
      -1,
      1.5,
      "NaN",
      "1e300",
      2 ** 31,
      " 7 ",
      "-0",
      "[1]",
      "4294967296",
      "9007199254740991",
      "9007199254740993",
      "18446744073709551616",
      "-18446744073709551616",
      "1" + "0".repeat(40),
      "1e400",
    );
    const arb = fc.record({
      rows: fc.array(
        fc.tuple(small, small, fc.integer({ min: 0, max: 7 }), load),
        {
          minLength: 1,
          maxLength: 5,
        },
      ),
      column: fc.integer({ min: 0, max: 3 }),
      at: fc.nat(),
      cell: badCell,
      format: fc.constantFrom("csv", "json", "jsonl"),
    });
    const header = ["step", "layer", "expert", "load"];
    check(
      fc.property(arb, ({ rows, column, at, cell, format }) => {
        const cells: (string | number)[][] = rows.map((r) => [...r]);
        const row = at % cells.length;
        cells[row][column] = cell;
        const path = write(header, cells, format);
        const r = quick(
          2000,
          () =>
            outcome(() => readLoadTable(path), [
              TypeError,
              RangeError,
              SyntaxError,
            ]),
        );
        if (!r.ok) {
          assert.ok(
            r.error.message.includes(JSON.stringify(header[column])),
            r.error.message,
          );
          return;
        }
        // Accepted: the cell reads as the number written, an id as an integer.
        const raw = [...r.value.getColumn(header[column])][row];
        const got = Number(raw);
        const text = String(cell).trim();
        if (/^\d+$/.test(text) && BigInt(text) <= Number.MAX_SAFE_INTEGER) {
          // A whole number up to 2^53 - 1 is read exactly, never rounded
          // (above, a load is the nearest float64, as the column's type says).
          assert.ok(
            Number.isInteger(got) && BigInt(raw) === BigInt(text),
            `${text} read as ${raw}`,
          );
        } else {
          const want = Number(text);
          assert.ok(
            Object.is(got, want) || (got === 0 && want === 0),
            `${cell} read as ${got}`,
          );
        }
        if (column < 3) assert.ok(Number.isInteger(got) && got >= 0);
      }),
      150,
      19,
    );
  });

  test("any file content is a table or a typed error, under any name", () => {
    const content = fc.oneof(
      fc.string({ maxLength: 40 }),
      fc.stringMatching(/^[\[\]{}",:0-9a-z\n -]{0,40}$/),
      fc.uint8Array({ maxLength: 40 }).map((b) => new TextDecoder().decode(b)),
      fc.constantFrom(
        "PAR1",
        "PAR1xxxxPAR1",
        "[",
        "{",
        '[{"a":1},{"a":"x"}]',
        "a,b\n1,2,3\n",
      ),
    );
    check(
      fc.property(
        content,
        fc.constantFrom(".csv", ".tsv", ".json", ".jsonl", ".parquet", ""),
        (text, ext) => {
          const path = join(dir, `any${file++}${ext}`);
          writeFileSync(path, text);
          const r = quick(
            2000,
            () =>
              outcome(() => readTable(path), [
                TypeError,
                RangeError,
                SyntaxError,
              ]),
          );
          if (!r.ok) {
            assert.ok(r.error.message.length > 0);
            return;
          }
          assert.ok(r.value.height >= 0);
        },
      ),
      300,
      20,
    );
  });

  process.on("exit", () => rmSync(dir, { recursive: true, force: true }));
});
