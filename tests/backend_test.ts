// The backend switch: routeAsync and runSimulationOn give the CPU's answers
// on the CPU, the same selections on WebGPU (dyadic biases: the same values
// in float32), and say which they used.
import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import { route } from "../lib/route/route.ts";
import { routeAsync, selectBackend } from "../lib/route/route_backend.ts";
import { runSimulationOn } from "../lib/sim/run_backend.ts";
import { runSimulation } from "../lib/sim/run.ts";
import { acquireGpu, releaseGpu } from "../kernels/device.ts";
import { Rng } from "../lib/scores/rng.ts";

const { gpu, reason } = await acquireGpu();
// The device is destroyed once this module's tests are done.
after(releaseGpu);
if (!gpu) console.log(`WebGPU backend tests skipped: ${reason}`);

function randomScores(seed: number, tokens: number, experts: number) {
  const rng = new Rng(seed);
  const data = new Float32Array(tokens * experts);
  for (let i = 0; i < data.length; i++) {
    data[i] = Math.floor(rng.uniform() * 8) / 8;
  }
  return { data, tokens, experts };
}

describe("backends", () => {
  test("cpu gives route()'s answers; bad names are RangeErrors", async () => {
    const s = randomScores(1, 500, 12);
    const { routing, backend } = await routeAsync(s, {
      k: 3,
      bias: [0.1, ...new Array(11).fill(0)],
    });
    assert.equal(backend.name, "cpu");
    assert.deepEqual(
      routing.experts,
      route(s, { k: 3, bias: [0.1, ...new Array(11).fill(0)] }).experts,
    );
    await assert.rejects(selectBackend("gpu" as "cpu"), RangeError);
    await assert.rejects(routeAsync(s, { k: 13 }), RangeError);
  });

  test("auto takes WebGPU where there is an adapter, the CPU with a reason elsewhere", async () => {
    const { info } = await selectBackend("auto");
    if (gpu) assert.equal(info.name, "webgpu");
    else {
      assert.equal(info.name, "cpu");
      assert.ok(info.reason);
    }
  });

  test(
    "webgpu routes as route() does, groups included; k above 32 is refused",
    { skip: !gpu },
    async () => {
      const s = randomScores(2, 700, 40);
      const bias = Array.from({ length: 40 }, (_, j) => (j % 5) / 64);
      const { routing, backend } = await routeAsync(s, {
        k: 4,
        bias,
        backend: "webgpu",
      });
      assert.equal(backend.name, "webgpu");
      assert.equal(backend.software, gpu!.info.software);
      assert.deepEqual(routing.experts, route(s, { k: 4, bias }).experts);
      const grouped = { k: 4, bias, groups: 4, topGroups: 2 };
      const g = await routeAsync(s, { ...grouped, backend: "webgpu" });
      assert.equal(g.backend.name, "webgpu");
      assert.deepEqual(g.routing.experts, route(s, grouped).experts);
      assert.deepEqual(g.routing.loads, route(s, grouped).loads);
      await assert.rejects(
        routeAsync(randomScores(3, 10, 40), { k: 33, backend: "webgpu" }),
        RangeError,
      );
    },
  );

  test(
    "a WebGPU simulation names its adapter and matches the CPU run on greedy",
    { skip: !gpu },
    async () => {
      const cfg = {
        steps: 6,
        layers: 2,
        tokens: 300,
        experts: 16,
        topK: 2,
        methods: ["greedy", "loss-free(rate=0.01)"],
      };
      const g = await runSimulationOn(cfg, { backend: "webgpu" });
      const c = runSimulation(cfg);
      assert.match(
        g.backend,
        /^webgpu: .*GPU: greedy, loss-free\(rate=0\.01\); CPU: none/,
      );
      assert.equal(g.methods[0].maxVioGlobal, c.methods[0].maxVioGlobal);
      // Loss-free's float32 biases differ from float64 only in rare near-ties.
      assert.ok(
        Math.abs(g.methods[1].maxVioGlobal - c.methods[1].maxVioGlobal) < 0.05,
      );
    },
  );
});
