/** Command-line flag parsing shared by the subcommands. */
import { withMessage } from "../validate.ts";

/** A usage mistake on the command line (exit code 2). */
export class UsageError extends Error {
  override name = "UsageError";
}

/** The type of each flag a command accepts. */
export type FlagSpec = Record<
  string,
  "string" | "strings" | "boolean" | "integer" | "number"
>;

/** Parsed flags: values by flag name (without the dashes). */
export type Flags = Record<
  string,
  string | string[] | number | boolean | undefined
>;

/** A decimal number as a user types it: `12`, `-0.5`, `1e-3`, `.5`. */
const DECIMAL = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/;

/**
 * Parses `--name value`, `--name=value` and boolean `--name` flags; a
 * `"strings"` flag may be repeated, its values collected in order.
 * Integers must be whole numbers written in decimal; sizes are checked by
 * the configuration afterwards.
 *
 * @throws {UsageError} On an unknown flag, a missing value, a stray
 * argument or a value of the wrong type.
 */
export function parseFlags(args: string[], spec: FlagSpec): Flags {
  const flags: Flags = {};
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    if (!arg.startsWith("--")) {
      throw new UsageError(`unexpected argument ${JSON.stringify(arg)}`);
    }
    const eq = arg.indexOf("=");
    const name = eq < 0 ? arg.slice(2) : arg.slice(2, eq);
    const type = spec[name];
    if (!type) throw new UsageError(`unknown flag --${name} (see --help)`);
    if (type === "boolean") {
      if (eq >= 0) throw new UsageError(`flag --${name} takes no value`);
      flags[name] = true;
      continue;
    }
    let text: string;
    if (eq >= 0) text = arg.slice(eq + 1);
    else {
      if (i + 1 >= args.length) {
        throw new UsageError(`flag --${name} needs a value`);
      }
      text = args[++i];
      // `--out --quiet` forgot the value: a flag is never taken as one
      // (write `--name=--value` for a value that starts with dashes).
      if (text.startsWith("--")) {
        throw new UsageError(
          `flag --${name} needs a value: the next argument is the flag ${text}`,
        );
      }
    }
    if (type === "string") {
      flags[name] = text;
    } else if (type === "strings") {
      flags[name] = [...(flags[name] as string[] | undefined ?? []), text];
    } else {
      const value = Number(text);
      // Decimal only: Number() would also take " 12 ", "0x10" and "0b11".
      if (!DECIMAL.test(text) || !Number.isFinite(value)) {
        throw new UsageError(
          `--${name} must be a number: current value is ${
            JSON.stringify(text)
          }`,
        );
      }
      if (type === "integer" && !Number.isInteger(value)) {
        throw new UsageError(
          `--${name} must be an integer: current value is ${text}`,
        );
      }
      flags[name] = value;
    }
  }
  return flags;
}

/**
 * Splits a comma-separated method list, keeping commas inside parentheses:
 * `greedy,loss-free(rate=1e-2,rule=sign)` gives two methods.
 */
export function splitMethods(text: string): string[] {
  const out: string[] = [];
  let depth = 0, start = 0;
  for (let i = 0; i <= text.length; i++) {
    const ch = text[i];
    if (ch === "(") depth++;
    else if (ch === ")") depth--;
    else if ((ch === "," && depth === 0) || i === text.length) {
      const part = text.slice(start, i).trim();
      if (part === "") {
        throw new UsageError(
          `--methods has an empty entry: ${JSON.stringify(text)}`,
        );
      }
      out.push(part);
      start = i + 1;
    }
  }
  return out;
}

/**
 * An error from a library call whose message starts with an argument that
 * a flag set (`replicas must be ...`), speaking of the flag instead
 * (`--replicas must be ...`); `names` maps argument names to flags.
 */
export function asFlagError(
  e: unknown,
  names: Record<string, string>,
): unknown {
  const m = e instanceof Error ? /^([A-Za-z][\w.]*)\b/.exec(e.message) : null;
  const flag = m ? names[m[1]] : undefined;
  if (flag === undefined) return e;
  // The condition may name other settings too ("a multiple of replicas");
  // the value shown after the first ": " is left as it is.
  return withMessage(e, (message) => {
    const rest = message.slice(m![1].length);
    const cut = rest.indexOf(": ");
    const condition = cut < 0 ? rest : rest.slice(0, cut);
    const named = condition.replace(
      /(?<![\w.-])([A-Za-z][\w.]*)\b/g,
      (word: string) => Object.hasOwn(names, word) ? names[word] : word,
    );
    return flag + named + (cut < 0 ? "" : rest.slice(cut));
  });
}

/**
 * An error about one of the `--methods` entries, speaking of the entry as
 * typed: `--methods loss-free(rate=-1): rate must be ...`. An error about
 * a method's name or an option of `specs` is prefixed; any other is kept.
 */
export function asMethodsError(
  e: unknown,
  specs: { text: string; options: string[] }[],
): unknown {
  const word = e instanceof Error
    ? /^([\w-]+)\b/.exec(e.message)?.[1]
    : undefined;
  if (word === "method") return withMessage(e, (m) => `--methods: ${m}`);
  // The entry whose option or method the message starts with ("rate must
  // be ...", "sinkhorn has no option ..."), else the only entry with
  // options (an option it needs but did not write, "scheduleSteps must be
  // set ..."), else the only entry.
  const name = (s: { text: string }) => s.text.split("(")[0].trim();
  const withOptions = specs.filter((s) => s.options.length > 0);
  const only = withOptions.length === 1
    ? withOptions[0]
    : specs.length === 1
    ? specs[0]
    : undefined;
  const spec =
    specs.find((s) =>
      word !== undefined && (s.options.includes(word) || name(s) === word)
    ) ?? only;
  return spec ? withMessage(e, (m) => `--methods ${spec.text}: ${m}`) : e;
}

/** The option names written in a method entry: `aux(alpha=1)` gives alpha. */
export function methodOptionNames(text: string): string[] {
  const inner = /\((.*)\)\s*$/.exec(text)?.[1] ?? "";
  return inner.split(",").map((kv) => kv.split("=")[0].trim())
    .filter((k) => k !== "");
}
