// Run by tests/wasm_balancers_test.ts as its own process: a simulation on
// the "cpu" backend with WebAssembly instantiation made to throw, so that
// any kernel (the synthetic workload's scores included) that reaches for
// the WebAssembly runtime fails the run. Prints the figures as JSON.
const refuse = () => {
  throw new Error("WebAssembly was instantiated on the cpu backend");
};
Object.assign(WebAssembly, {
  Instance: refuse,
  instantiate: refuse,
  instantiateStreaming: refuse,
});
const { runSimulation } = await import("../lib/sim/run.ts");
const { runSimulationOn } = await import("../lib/sim/run_backend.ts");
const { prepareRun, workloadFromSource } = await import(
  "../lib/sim/prepare_run.ts"
);
const config = JSON.parse(Deno.args[0]);
const run = prepareRun(config);
const a = runSimulation(run, { host: "cpu" });
const b = await runSimulationOn(run, { backend: "cpu" });
// A worker's copy of the workload, on the TypeScript path.
const w = workloadFromSource(run.source, "cpu");
const last = w.scores(run.config.steps - 1, run.config.layers - 1).data;
console.log(JSON.stringify({
  a: a.methods.map(({ wallMs: _w, ...m }) => m),
  b: b.methods.map(({ wallMs: _w, ...m }) => m),
  last: Array.from(last.subarray(0, 64)),
}));
