// The calls tests/http_import_test.ts makes twice: once with the package
// imported from files, once served over HTTP (as JSR serves it). Every
// import names the package, so the import map of the process decides where
// it comes from. Results are plain JSON, to compare across processes.
import {
  routeAsync,
  routeParallel,
  runSimulationParallel,
  sharedScores,
} from "@moelab/balance";
import { loadBrown, trainMoe } from "@moelab/balance/train";
import { readLoadTable } from "@moelab/balance/workload";
import { lineChart } from "@moelab/balance/report";
import { COMMANDS } from "@moelab/balance/cli";

/** A pause that lets new worker threads load their modules. */
const tick = () => new Promise((resolve) => setTimeout(resolve, 50));

/** Runs every case and returns its results as JSON-ready values. */
export async function runCases(): Promise<Record<string, unknown>> {
  // Above routeParallel's threshold (65536 scores), so worker threads run.
  const scores = sharedScores(2048, 64);
  for (let i = 0; i < scores.data.length; i++) {
    scores.data[i] = Math.sin(i * 0.7) + Math.cos(i * 1.3);
  }
  const parallel = [];
  for (let call = 0; call < 4; call++) {
    const r = routeParallel(scores, { k: 4, threads: 3 });
    parallel.push({ experts: [...r.experts], loads: [...r.loads] });
    await tick();
  }
  const { routing } = await routeAsync(scores, {
    k: 4,
    backend: "cpu",
    threads: 3,
  });
  const sim = await runSimulationParallel({
    steps: 6,
    layers: 2,
    tokens: 256,
    experts: 8,
    topK: 2,
    methods: ["greedy", "loss-free"],
    // The EP stage's workers start from a URL too.
    ep: { gpus: 4, gpusPerNode: 2, strategies: ["static", "eplb"] },
  }, { threads: 2 });
  const run = trainMoe(loadBrown({ maxFiles: 3, validEvery: 3 }), {
    experts: 4,
    topK: 1,
    steps: 5,
    batchSeqs: 2,
    seqLen: 16,
    validTokens: 256,
    method: "loss-free(rate=0.01)",
  });
  const loads = readLoadTable(
    new URL("../data/fixtures/loads_long.csv", import.meta.url).pathname,
  );
  const chart = lineChart([{ step: 1, value: 2 }, { step: 2, value: 1 }]);
  return {
    parallel,
    routeAsync: { experts: [...routing.experts], loads: [...routing.loads] },
    sim: {
      loads: [...sim.tables.loads.load],
      maxVioGlobal: sim.methods.map((m) => m.maxVioGlobal),
      ep: sim.methods.map((m) => m.ep),
      epThreads: sim.profile.epThreads,
    },
    train: { loss: [...run.curve.loss], perplexity: run.perplexity },
    workload: loads.height,
    report: chart.svg.startsWith("<svg"),
    cli: Object.keys(COMMANDS),
  };
}

if (import.meta.main) console.log(JSON.stringify(await runCases()));
