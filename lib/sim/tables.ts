// The simulator's long tables, columnar: one row per (step, layer, method,
// expert) for loads and biases, per (step, layer, method, metric) for the
// per-batch metrics.
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

/**
 * Tables for `steps x layers` cells of `methods` methods and `experts`
 * experts, rows ordered (step, layer, method, expert | metric). `layers`
 * is the number of layers held, which a worker sets to its own share.
 */
export function allocateTables(
  steps: number,
  layers: number,
  methods: number,
  experts: number,
): SimTables {
  const loadRows = steps * layers * methods * experts;
  const metricRows = steps * layers * methods * BATCH_METRICS.length;
  return {
    loads: {
      step: new Int32Array(loadRows),
      layer: new Int32Array(loadRows),
      method: new Int32Array(loadRows),
      expert: new Int32Array(loadRows),
      load: new Int32Array(loadRows),
    },
    biases: {
      step: new Int32Array(loadRows),
      layer: new Int32Array(loadRows),
      method: new Int32Array(loadRows),
      expert: new Int32Array(loadRows),
      bias: new Float64Array(loadRows),
    },
    metrics: {
      step: new Int32Array(metricRows),
      layer: new Int32Array(metricRows),
      method: new Int32Array(metricRows),
      metric: new Int32Array(metricRows),
      value: new Float64Array(metricRows),
    },
  };
}

/** Every column of the tables, for transferring them to another thread. */
export function tableBuffers(tables: SimTables): ArrayBuffer[] {
  return [
    ...Object.values(tables.loads),
    ...Object.values(tables.biases),
    ...Object.values(tables.metrics),
  ].map((a) => (a as ArrayBufferView).buffer as ArrayBuffer);
}
