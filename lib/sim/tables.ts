// The simulator's long tables, columnar: one row per (step, layer, method,
// expert) for loads and biases, per (step, layer, method, metric) for the
// per-batch metrics. Only the value columns are stored as the run fills
// them (12 bytes per load row instead of 44); the index columns follow
// from a row's position and are built on first access, once, and shared
// by the loads and biases tables.
import { BATCH_METRICS } from "../metrics/batch_metrics.ts";

/** Long tables of a run, columnar, with the method as an index into `labels`. */
export interface SimTables {
  /** `loads(step, layer, method, expert, load)`. */
  loads: {
    step: Int32Array;
    layer: Int32Array;
    method: Int32Array;
    expert: Int32Array;
    load: Int32Array;
  };
  /** `biases(step, layer, method, expert, bias)`: the bias used to route the batch. */
  biases: {
    step: Int32Array;
    layer: Int32Array;
    method: Int32Array;
    expert: Int32Array;
    bias: Float64Array;
  };
  /** `metrics(step, layer, method, metric, value)`, metric an index into {@linkcode BATCH_METRICS}. */
  metrics: {
    step: Int32Array;
    layer: Int32Array;
    method: Int32Array;
    metric: Int32Array;
    value: Float64Array;
  };
}

/** The value columns of {@linkcode SimTables}, which a run fills. */
export interface TableValues {
  load: Int32Array;
  bias: Float64Array;
  value: Float64Array;
}

/**
 * The index columns of rows ordered (step, held layer, method, inner),
 * `inner` running over `width` values: the `step`, the real `layer`
 * (`layers[h]`), the `method` and the inner index, at `[from, to)` of the
 * rows (default all of them).
 */
export function indexColumns(
  steps: number,
  layers: readonly number[],
  methods: number,
  width: number,
  from = 0,
  to = steps * layers.length * methods * width,
): {
  step: Int32Array;
  layer: Int32Array;
  method: Int32Array;
  inner: Int32Array;
} {
  const n = to - from;
  const step = new Int32Array(n), layer = new Int32Array(n);
  const method = new Int32Array(n), inner = new Int32Array(n);
  const L = layers.length;
  let r = from;
  const q = Math.floor(r / width), c = Math.floor(q / methods);
  let j = r % width, m = q % methods;
  let h = c % L, s = Math.floor(c / L);
  for (let i = 0; i < n; i++, r++) {
    step[i] = s, layer[i] = layers[h], method[i] = m, inner[i] = j;
    if (++j === width) {
      j = 0;
      if (++m === methods) {
        m = 0;
        if (++h === L) h = 0, s++;
      }
    }
  }
  return { step, layer, method, inner };
}

/**
 * Tables over the value columns `values`, rows ordered (step, held layer,
 * method, expert | metric), where `layers` are the real numbers of the held
 * layers (a worker holds its own share). The index columns are built on
 * first access.
 */
export function tablesOf(
  steps: number,
  layers: readonly number[],
  methods: number,
  experts: number,
  values: TableValues,
): SimTables {
  const held = [...layers];
  let loadIndex: ReturnType<typeof indexColumns> | undefined;
  let metricIndex: ReturnType<typeof indexColumns> | undefined;
  const li = () => loadIndex ??= indexColumns(steps, held, methods, experts);
  const mi = () =>
    metricIndex ??= indexColumns(steps, held, methods, BATCH_METRICS.length);
  const lazy = <T extends object>(
    target: T,
    index: () => ReturnType<typeof indexColumns>,
    inner: string,
  ): T => {
    for (
      const [name, key] of [
        ["step", "step"],
        ["layer", "layer"],
        ["method", "method"],
        [inner, "inner"],
      ] as const
    ) {
      Object.defineProperty(target, name, {
        enumerable: true,
        configurable: true,
        get: () => index()[key],
      });
    }
    return target;
  };
  return {
    loads: lazy({ load: values.load }, li, "expert") as SimTables["loads"],
    biases: lazy({ bias: values.bias }, li, "expert") as SimTables["biases"],
    metrics: lazy({ value: values.value }, mi, "metric") as SimTables[
      "metrics"
    ],
  };
}

/**
 * Tables for `steps x layers` cells of `methods` methods and `experts`
 * experts, rows ordered (step, layer, method, expert | metric). `layers`
 * is the list of layers held (a worker holds its own share), or their
 * number (all of them, in order).
 */
export function allocateTables(
  steps: number,
  layers: number | readonly number[],
  methods: number,
  experts: number,
): SimTables {
  const held = typeof layers === "number"
    ? Array.from({ length: layers }, (_, l) => l)
    : layers;
  const loadRows = steps * held.length * methods * experts;
  const metricRows = steps * held.length * methods * BATCH_METRICS.length;
  return tablesOf(steps, held, methods, experts, {
    load: new Int32Array(loadRows),
    bias: new Float64Array(loadRows),
    value: new Float64Array(metricRows),
  });
}

/** The value columns of tables (no index column is built). */
export function tableValues(tables: SimTables): TableValues {
  return {
    load: tables.loads.load,
    bias: tables.biases.bias,
    value: tables.metrics.value,
  };
}

/**
 * Every column of the tables, for transferring them to another thread
 * (builds the index columns; loads and biases share theirs, so a buffer
 * may appear twice). Columns on shared memory (a parallel run's) are left
 * out: they reach another thread without a transfer.
 */
export function tableBuffers(tables: SimTables): ArrayBuffer[] {
  return [
    ...Object.values(tables.loads),
    ...Object.values(tables.biases),
    ...Object.values(tables.metrics),
  ].map((a) => (a as ArrayBufferView).buffer)
    .filter((b): b is ArrayBuffer => b instanceof ArrayBuffer);
}
