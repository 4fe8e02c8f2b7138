// The sim's report.html in headless Chromium (Debian `chromium`), driven
// over the DevTools protocol: the page must load without console errors,
// uncaught exceptions or any network request, and render both figures.
// A screenshot is left in out/report-check/report.png for a human to look
// at. Skipped, with the reason printed, where no chromium is installed.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
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

/** Loads `url` in a fresh headless browser; returns the problems it saw. */
async function inspectPage(
  url: string,
  screenshot: string,
): Promise<{ problems: string[]; svgs: number }> {
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
    "--window-size=1400,2000",
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
    await send("Page.navigate", { url }, sessionId);
    await load;
    const { result } = await send("Runtime.evaluate", {
      expression:
        "[...document.querySelectorAll('figure > svg')].filter((s) => s.getBoundingClientRect().width > 100).length",
      returnByValue: true,
    }, sessionId) as { result: { value: number } };
    const shot = await send(
      "Page.captureScreenshot",
      { format: "png" },
      sessionId,
    );
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
    return { problems, svgs: result.value };
  } finally {
    // The browser writes into its profile until it has exited.
    const exited = proc.exitCode !== null ||
      new Promise((ok) => proc.once("exit", ok));
    proc.kill();
    await exited;
    rmSync(profile, { recursive: true, force: true, maxRetries: 5 });
  }
}

describe("report.html in a browser", () => {
  if (browser === undefined) {
    const reason = "no chromium on PATH (Debian: apt-get install chromium)";
    console.log(`report_browser_test: skipped: ${reason}`);
    test.skip(`renders without errors or network (skipped: ${reason})`);
    return;
  }
  test("renders without console errors or network requests", async () => {
    const out = join(root, "out", "report-check");
    mkdirSync(out, { recursive: true });
    const result = runSimulation({
      steps: 40,
      layers: 2,
      tokens: 512,
      experts: 16,
      topK: 2,
      methods: ["greedy", "loss-free(rate=1e-2)"],
    });
    assert.equal(simSummary(result).methods.length, 2);
    writeSimOutputs(result, out);
    const { problems, svgs } = await inspectPage(
      pathToFileURL(join(out, "report.html")).href,
      join(out, "report.png"),
    );
    assert.deepEqual(problems, []);
    assert.equal(svgs, 2);
  });
});
