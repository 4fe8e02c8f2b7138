/** Timing helpers shared by the benchmark suites. */

/** Runs `fn` `warmup` times, then `repeats` times, and returns the median in ms. */
export function medianMs(fn: () => void, repeats = 7, warmup = 2): number {
  for (let i = 0; i < warmup; i++) fn();
  const times: number[] = [];
  for (let i = 0; i < repeats; i++) {
    const t0 = performance.now();
    fn();
    times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  return times[Math.floor(times.length / 2)];
}

/** Async version of {@linkcode medianMs}. */
export async function medianMsAsync(
  fn: () => Promise<void>,
  repeats = 7,
  warmup = 2,
): Promise<number> {
  for (let i = 0; i < warmup; i++) await fn();
  const times: number[] = [];
  for (let i = 0; i < repeats; i++) {
    const t0 = performance.now();
    await fn();
    times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  return times[Math.floor(times.length / 2)];
}

/** Prints rows as a Markdown table. */
export function printTable(
  header: string[],
  rows: (string | number)[][],
): void {
  const cells = rows.map((r) => r.map(String));
  const widths = header.map((h, c) =>
    Math.max(h.length, ...cells.map((r) => r[c].length))
  );
  const line = (r: string[]) =>
    "| " + r.map((x, c) => x.padEnd(widths[c])).join(" | ") + " |";
  console.log(line(header));
  console.log("| " + widths.map((w) => "-".repeat(w)).join(" | ") + " |");
  for (const r of cells) console.log(line(r));
}
