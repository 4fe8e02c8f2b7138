// The sim's report.html in headless Chromium (Debian `chromium`), driven
// over the DevTools protocol: the page must load without console errors,
// uncaught exceptions or any network request, and its layout must hold
// (no horizontal overflow, every figure drawn at a real size, the tables
// free of raw JSON, the configuration folded). A full-page screenshot is
// left in out/report-check/report.png for a human to look at. Skipped,
// with the reason printed, where no chromium is installed.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { setTimeout as sleep } from "node:timers/promises";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { runSimulation } from "../lib/sim/run.ts";
import { simSummary } from "../lib/sim/summary_table.ts";
import { writeSimOutputs } from "../lib/report/sim_outputs.ts";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const browser = ["chromium", "chromium-browser"].find((b) =>
  spawnSync(b, ["--version"], { stdio: "ignore" }).status === 0
);

interface Message {
  id?: number;
  method?: string;
  sessionId?: string;
  params?: Record<string, unknown>;
  result?: Record<string, unknown>;
  error?: { message: string };
}

/** What the page reports about its own layout (see `LAYOUT` below). */
interface Layout {
  viewportWidth: number;
  pageWidth: number;
  overflowing: string[];
  figures: { alt: string; width: number; height: number; loaded: boolean }[];
  cells: string[];
  configOpen: boolean;
  configTextVisible: boolean;
}

// Evaluated in the page once it has loaded.
const LAYOUT = `(() => {
  const figures = [...document.querySelectorAll("figure img, figure svg")]
    .map((f) => {
      const r = f.getBoundingClientRect();
      return {
        alt: f.getAttribute("alt") ?? f.tagName,
        width: r.width,
        height: r.height,
        loaded: f.tagName.toLowerCase() !== "img" ||
          (f.complete && f.naturalWidth > 0),
      };
    });
  const overflowing = [...document.querySelectorAll(".wide, table, figure")]
    .filter((e) => e.scrollWidth > e.clientWidth + 1 ||
      e.getBoundingClientRect().right > document.body.getBoundingClientRect().right + 1)
    .map((e) => e.tagName + "." + e.className);
  const config = document.querySelector("details.config");
  const pre = config?.querySelector("pre");
  return {
    viewportWidth: window.innerWidth,
    pageWidth: document.documentElement.scrollWidth,
    overflowing,
    figures,
    cells: [...document.querySelectorAll("td, th")].map((c) => c.textContent),
    configOpen: config?.open ?? true,
    configTextVisible: pre ? pre.checkVisibility() : true,
  };
})()`;

/**
 * Removes the browser's profile folder. Chromium's helper processes can
 * still write into it for a moment after the browser exits (ENOTEMPTY
 * under parallel test runs), and Deno's `rmSync` ignores `maxRetries`, so
 * retry here; a folder that still resists is left in the temp dir rather
 * than failing the test.
 */
async function removeProfile(profile: string): Promise<void> {
  for (let attempt = 0;; attempt++) {
    try {
      rmSync(profile, { recursive: true, force: true });
      return;
    } catch (e) {
      if (attempt >= 20) {
        console.warn(`report_browser_test: left ${profile}: ${e}`);
        return;
      }
      await sleep(100 * Math.min(attempt + 1, 5));
    }
  }
}

/** Loads `url` in a fresh headless browser; returns the problems it saw. */
async function inspectPage(
  url: string,
  screenshot: string,
): Promise<{ problems: string[]; layout: Layout }> {
  const profile = mkdtempSync(join(tmpdir(), "moelab-chromium-"));
  const proc = spawn(browser!, [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    `--user-data-dir=${profile}`,
    "--remote-debugging-port=0",
    "--window-size=1280,900",
    "--hide-scrollbars",
    "about:blank",
  ], { stdio: ["ignore", "ignore", "pipe"] });
  try {
    const wsUrl = await new Promise<string>((ok, fail) => {
      let seen = "";
      const timer = setTimeout(() => fail(new Error(seen)), 30_000);
      proc.stderr!.on("data", (chunk: Uint8Array) => {
        seen += new TextDecoder().decode(chunk);
        const m = seen.match(/DevTools listening on (ws:\/\/\S+)/);
        if (m) {
          clearTimeout(timer);
          ok(m[1]);
        }
      });
    });
    const ws = new WebSocket(wsUrl);
    await new Promise((ok) => ws.addEventListener("open", ok, { once: true }));
    const waiting = new Map<number, (m: Message) => void>();
    const events: Message[] = [];
    let loaded: () => void = () => {};
    const load = new Promise<void>((ok) => loaded = ok);
    ws.addEventListener("message", (e: MessageEvent) => {
      const m = JSON.parse(String(e.data)) as Message;
      if (m.id !== undefined) waiting.get(m.id)?.(m);
      else {
        events.push(m);
        if (m.method === "Page.loadEventFired") loaded();
      }
    });
    let next = 1;
    const send = (
      method: string,
      params: Record<string, unknown> = {},
      sessionId?: string,
    ) =>
      new Promise<Record<string, unknown>>((ok, fail) => {
        const id = next++;
        waiting.set(id, (m) =>
          m.error ? fail(new Error(m.error.message)) : ok(m.result ?? {}));
        ws.send(JSON.stringify({ id, method, params, sessionId }));
      });
    const { targetId } = await send("Target.createTarget", {
      url: "about:blank",
    });
    const { sessionId } = await send("Target.attachToTarget", {
      targetId,
      flatten: true,
    }) as { sessionId: string };
    for (const domain of ["Runtime", "Log", "Network", "Page"]) {
      await send(`${domain}.enable`, {}, sessionId);
    }
    // A laptop-sized viewport: the summary table must fit it.
    await send("Emulation.setDeviceMetricsOverride", {
      width: 1280,
      height: 900,
      deviceScaleFactor: 1,
      mobile: false,
    }, sessionId);
    await send("Page.navigate", { url }, sessionId);
    await load;
    const { result } = await send("Runtime.evaluate", {
      expression: LAYOUT,
      returnByValue: true,
    }, sessionId) as { result: { value: Layout } };
    const { cssContentSize } = await send(
      "Page.getLayoutMetrics",
      {},
      sessionId,
    ) as { cssContentSize: { width: number; height: number } };
    const shot = await send("Page.captureScreenshot", {
      format: "png",
      captureBeyondViewport: true,
      clip: {
        x: 0,
        y: 0,
        width: 1280,
        height: Math.ceil(cssContentSize.height),
        scale: 1,
      },
    }, sessionId);
    writeFileSync(screenshot, Buffer.from(String(shot.data), "base64"));
    ws.close();
    const problems: string[] = [];
    for (const e of events) {
      const p = e.params ?? {};
      if (
        e.method === "Runtime.consoleAPICalled" &&
        ["error", "warning", "assert"].includes(String(p.type))
      ) {
        problems.push(`console.${p.type}: ${JSON.stringify(p.args)}`);
      } else if (e.method === "Runtime.exceptionThrown") {
        problems.push(`exception: ${JSON.stringify(p.exceptionDetails)}`);
      } else if (e.method === "Log.entryAdded") {
        const entry = p.entry as { level: string; text: string };
        if (entry.level === "error" || entry.level === "warning") {
          problems.push(`log ${entry.level}: ${entry.text}`);
        }
      } else if (e.method === "Network.requestWillBeSent") {
        const u = String((p.request as { url: string }).url);
        if (!u.startsWith("file:") && !u.startsWith("data:")) {
          problems.push(`network request: ${u}`);
        }
      }
    }
    return { problems, layout: result.value };
  } finally {
    // The browser writes into its profile until it has exited.
    const exited = proc.exitCode !== null ||
      new Promise((ok) => proc.once("exit", ok));
    proc.kill();
    await exited;
    await removeProfile(profile);
  }
}

describe("report.html in a browser", () => {
  if (browser === undefined) {
    const reason = "no chromium on PATH (Debian: apt-get install chromium)";
    console.log(`report_browser_test: skipped: ${reason}`);
    test.skip(`renders without errors or network (skipped: ${reason})`);
    return;
  }
  test("renders without errors or network requests, and lays out", async () => {
    const out = join(root, "out", "report-check");
    mkdirSync(out, { recursive: true });
    const methods = ["greedy", "loss-free(rate=1e-2)"];
    const result = runSimulation({
      steps: 40,
      layers: 2,
      tokens: 512,
      experts: 16,
      topK: 2,
      methods,
      ep: { gpus: 4 },
    });
    assert.equal(simSummary(result).methods.length, 2);
    assert.notEqual(result.ep, null);
    // The run's own folder: a sim output folder holds only what a run writes.
    writeSimOutputs(result, join(out, "sim"));
    const { problems, layout } = await inspectPage(
      pathToFileURL(join(out, "sim", "report.html")).href,
      join(out, "report.png"),
    );
    assert.deepEqual(problems, []);
    // Nothing wider than the page: the summary table fits a laptop screen.
    assert.equal(layout.viewportWidth, 1280);
    assert.ok(
      layout.pageWidth <= layout.viewportWidth,
      `page is ${layout.pageWidth} px wide in a ${layout.viewportWidth} px viewport`,
    );
    assert.deepEqual(layout.overflowing, []);
    // Convergence, heatmap, EP step time, and one GPU-load chart per method,
    // each decoded and drawn at a readable size.
    assert.equal(layout.figures.length, 3 + methods.length);
    for (const f of layout.figures) {
      assert.ok(f.loaded, `${f.alt} did not decode`);
      assert.ok(f.width >= 200 && f.height >= 100, JSON.stringify(f));
    }
    // Formatted cells: no JSON, percentages for retention and gap.
    const json = layout.cells.filter((c) => /[{}\[\]"]/.test(c));
    assert.deepEqual(json, []);
    assert.ok(layout.cells.some((c) => /^\d+\.\d\d%$/.test(c)));
    assert.equal(
      layout.cells.filter((c) => c === "loss-free(rate=1e-2)").length,
      2,
    );
    // The configuration is folded away.
    assert.equal(layout.configOpen, false);
    assert.equal(layout.configTextVisible, false);
  });
});
