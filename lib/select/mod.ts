/**
 * Selection: the bottom layer under routing, the balancers and the exact
 * solver. Order statistics of a row (a token over experts: the top `k` by
 * insertion, with a running guess of the row's threshold) and of a column
 * (an expert over tokens: quickselect), the capacity rule
 * `ceil(N * K * capacityFactor / E)`, and the {@linkcode Routing}
 * constructor. No allocation inside the loops; callers own the scratch.
 * Ties go to the lowest index everywhere.
 *
 * Imports nothing but the shared types and argument checks.
 *
 * @module
 */
export {
  insert,
  rankTop,
  type RowFilter,
  rowFilter,
  rowTop,
  trackRowValue,
} from "./top.ts";
export { keepThreshold, selectAscending } from "./order.ts";
export { capacityOf } from "./capacity.ts";
export { createRouting } from "./routing.ts";
