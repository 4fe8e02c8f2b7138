// The tables of the HTML report: the per-method summary formatted as the
// command line prints it (percentages for the optimality gap and the score
// retention), the EP results by strategy, and other summary sections.
import { EP_STRATEGIES } from "../sim/ep_config.ts";
import { escapeXml } from "./_plot.ts";

/** How one summary field is shown: heading and cell text. */
interface Column {
  heading: string;
  format: (v: unknown) => string;
  /** Right-aligned, tabular figures. */
  num: boolean;
}

const fixed = (digits: number) => (v: unknown): string =>
  typeof v === "number" ? v.toFixed(digits) : scalar(v);
const percent = (v: unknown): string =>
  typeof v === "number" ? `${(100 * v).toFixed(2)}%` : scalar(v);

// The command line table's columns first, in its order, then the other
// batch metrics; fields not listed here get a generic column.
const COLUMNS: Record<string, Column> = {
  method: { heading: "method", format: scalar, num: false },
  causal: { heading: "causal", format: scalar, num: false },
  maxVioBatch: { heading: "MaxVio_batch", format: fixed(3), num: true },
  maxVioGlobal: { heading: "MaxVio_global", format: fixed(3), num: true },
  scoreRetention: { heading: "score retention", format: percent, num: true },
  optimalityGap: {
    heading: "optimality gap",
    format: (v) => v === null ? "-" : percent(v),
    num: true,
  },
  stepsToBalance: { heading: "steps to balance", format: scalar, num: true },
  wallMs: { heading: "wall ms", format: fixed(0), num: true },
  cv: { heading: "CV", format: fixed(3), num: true },
  maxOverMean: { heading: "max / mean", format: fixed(3), num: true },
  zeroExperts: { heading: "idle experts", format: fixed(2), num: true },
  droppedFraction: { heading: "dropped", format: percent, num: true },
  tokensWithoutExpert: {
    heading: "tokens without expert",
    format: fixed(1),
    num: true,
  },
  options: { heading: "options", format: scalar, num: false },
};

// `name` repeats `method` (the label is the spec as written, options
// included) and `ep` has a section of its own.
const HIDDEN = new Set(["name", "ep"]);

/** A field name as words: `maxVioBatch` -> `max vio batch`. */
export function heading(key: string): string {
  return COLUMNS[key]?.heading ??
    key.replace(/([a-z0-9])([A-Z])/g, "$1 $2").toLowerCase();
}

/** Any summary value as short text: never JSON, objects as `k=v` lists. */
export function scalar(v: unknown): string {
  if (v === null || v === undefined) return "never";
  if (typeof v === "boolean") return v ? "yes" : "no";
  if (typeof v === "number") {
    return Number.isInteger(v) || !Number.isFinite(v)
      ? String(v)
      : String(Number(v.toPrecision(4)));
  }
  if (Array.isArray(v)) return v.map(scalar).join(", ");
  if (typeof v === "object") {
    const entries = Object.entries(v as Record<string, unknown>);
    return entries.length === 0
      ? "-"
      : entries.map(([k, x]) =>
        `${k}=${
          x !== null && typeof x === "object" ? `(${scalar(x)})` : scalar(x)
        }`
      ).join(", ");
  }
  return String(v);
}

function row(cells: { text: string; num: boolean }[], tag = "td"): string {
  return `<tr>${
    cells.map((c) =>
      `<${tag}${c.num ? ' class="num"' : ""}>${escapeXml(c.text)}</${tag}>`
    ).join("")
  }</tr>`;
}

/**
 * The per-method summary as an HTML table, plus the fields every method
 * shares (`backend cpu`, ...) as a line under it rather than a column of
 * equal cells. Columns whose every cell is empty (`options` of methods run
 * with their defaults) are left out.
 */
export function summaryTableHtml(methods: Record<string, unknown>[]): string {
  const keys: string[] = [];
  for (const m of methods) {
    for (const k of Object.keys(m)) {
      if (!keys.includes(k) && !HIDDEN.has(k)) keys.push(k);
    }
  }
  const known = Object.keys(COLUMNS);
  keys.sort((a, b) =>
    (known.includes(a) ? known.indexOf(a) : known.length) -
    (known.includes(b) ? known.indexOf(b) : known.length)
  );
  const column = (k: string): Column =>
    COLUMNS[k] ?? {
      heading: heading(k),
      format: scalar,
      num: methods.some((m) => typeof m[k] === "number"),
    };
  const shared: string[] = [];
  const shown = keys.filter((k) => {
    const texts = methods.map((m) => k in m ? column(k).format(m[k]) : "");
    if (texts.every((t) => t === "-" || t === "")) return false;
    const unknownText = !(k in COLUMNS) && !column(k).num;
    if (unknownText && methods.length > 1 && new Set(texts).size === 1) {
      shared.push(`${heading(k)} ${texts[0]}`);
      return false;
    }
    return true;
  });
  const head = row(
    shown.map((k) => ({ text: column(k).heading, num: column(k).num })),
    "th",
  );
  const body = methods.map((m) =>
    row(shown.map((k) => ({
      text: k in m ? column(k).format(m[k]) : "",
      num: column(k).num,
    })))
  ).join("");
  const note = shared.length === 0
    ? ""
    : `<p class="note">All methods: ${escapeXml(shared.join("; "))}.</p>`;
  return `<div class="wide"><table class="summary"><thead>${head}</thead><tbody>${body}</tbody></table></div>${note}`;
}

/** Per-method EP results from the summaries (`ep` of each method), or "". */
export function epTableHtml(methods: Record<string, unknown>[]): string {
  type Ep = Record<
    string,
    {
      gpuMaxOverMean: number;
      stepTimeMs: number;
      throughputGain: number;
      interNodeGB?: number;
    }
  >;
  const withEp = methods.filter((m) => m.ep !== undefined && m.ep !== null);
  if (withEp.length === 0) return "";
  // The strategies the run compared, in its order (static first).
  const names = Object.keys(withEp[0].ep as Ep).filter((s) =>
    (EP_STRATEGIES as readonly string[]).includes(s)
  );
  const others = names.filter((s) => s !== "static");
  const strategies = names.map((s) => ({ text: s, num: true }));
  // Several nodes: the network gigabytes of a step too.
  const network = withEp.some((m) =>
    names.some((s) => ((m.ep as Ep)[s].interNodeGB ?? 0) > 0)
  );
  const head =
    `<tr><th></th><th colspan="${strategies.length}" class="group">busiest GPU / mean</th><th colspan="${strategies.length}" class="group">step time (ms)</th><th colspan="${others.length}" class="group">gain over static</th>${
      network
        ? `<th colspan="${strategies.length}" class="group">network GB / step</th>`
        : ""
    }</tr>` +
    row(
      [
        { text: "method", num: false },
        ...strategies,
        ...strategies,
        ...others.map((s) => ({ text: s, num: true })),
        ...(network ? strategies : []),
      ],
      "th",
    );
  const body = withEp.map((m) => {
    const ep = m.ep as Ep;
    return row([
      { text: String(m.method), num: false },
      ...names.map((s) => ({
        text: ep[s].gpuMaxOverMean.toFixed(3),
        num: true,
      })),
      ...names.map((s) => ({
        text: ep[s].stepTimeMs.toFixed(2),
        num: true,
      })),
      ...others.map((s) => ({
        text: `${(100 * ep[s].throughputGain).toFixed(1)}%`,
        num: true,
      })),
      ...(network
        ? names.map((s) => ({
          text: (ep[s].interNodeGB ?? 0).toFixed(2),
          num: true,
        }))
        : []),
    ]);
  }).join("");
  return `<div class="wide"><table class="summary"><thead>${head}</thead><tbody>${body}</tbody></table></div>`;
}

/** Another top-level summary entry (added by a later feature) as a section. */
export function extraSectionHtml(title: string, value: unknown): string {
  let body: string;
  if (
    Array.isArray(value) &&
    value.every((v) => v !== null && typeof v === "object")
  ) {
    body = summaryTableHtml(value as Record<string, unknown>[]);
  } else if (
    value !== null && typeof value === "object" && !Array.isArray(value)
  ) {
    body = `<table>${
      Object.entries(value as Record<string, unknown>).map(([k, v]) =>
        row([{ text: heading(k), num: false }, {
          text: scalar(v),
          num: typeof v === "number",
        }])
      ).join("")
    }</table>`;
  } else {
    body = `<p>${escapeXml(scalar(value))}</p>`;
  }
  return `<section><h2>${escapeXml(title)}</h2>${body}</section>`;
}

/** Sorted step numbers as ranges: `[1, 2, 3, 7]` -> `1-3, 7`. */
export function stepRanges(steps: readonly number[]): string {
  const sorted = [...steps].sort((a, b) => a - b);
  const parts: string[] = [];
  for (let i = 0; i < sorted.length;) {
    let j = i;
    while (j + 1 < sorted.length && sorted[j + 1] === sorted[j] + 1) j++;
    parts.push(i === j ? String(sorted[i]) : `${sorted[i]}–${sorted[j]}`);
    i = j + 1;
  }
  return parts.join(", ");
}
