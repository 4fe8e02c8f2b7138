// releaseGpu: the device that acquireGpu made is destroyed (its `lost`
// promise says so), and the next acquireGpu makes a new one that works.
import { test } from "node:test";
import assert from "node:assert/strict";
import process from "node:process";
import { acquireGpu, releaseGpu } from "../kernels/device.ts";

const first = await acquireGpu();
// MOELAB_REQUIRE_GPU=1 (set by .ci/run) makes a missing adapter a failure;
// Bun has no WebGPU, so there the test is skipped.
const isBun = "Bun" in globalThis;
const required = process.env.MOELAB_REQUIRE_GPU === "1" && !isBun;
if (!first.gpu && required) throw new Error(first.reason);

test("releaseGpu destroys the device; acquireGpu then makes a new one", {
  skip: !first.gpu && `no WebGPU device: ${first.reason}`,
}, async () => {
  const old = first.gpu!.device;
  assert.equal(await acquireGpu(), first, "one device while it is held");
  await releaseGpu();
  // A device left alive never resolves `lost`: wait 10 s at most.
  let timer: ReturnType<typeof setTimeout> | undefined;
  const lost = await Promise.race([
    old.lost,
    new Promise<undefined>((done) => {
      timer = setTimeout(() => done(undefined), 10_000);
    }),
  ]);
  clearTimeout(timer);
  assert.equal(lost?.reason, "destroyed");
  const again = await acquireGpu();
  assert.ok(again.gpu, again.reason);
  assert.notEqual(again.gpu.device, old);
  // The new device runs work: a buffer written, copied and read back.
  const { device } = again.gpu;
  const from = device.createBuffer({
    size: 16,
    usage: GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST,
  });
  const buffer = device.createBuffer({
    size: 16,
    usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
  });
  device.queue.writeBuffer(from, 0, new Uint32Array([1, 2, 3, 4]));
  const encoder = device.createCommandEncoder();
  encoder.copyBufferToBuffer(from, 0, buffer, 0, 16);
  device.queue.submit([encoder.finish()]);
  await buffer.mapAsync(GPUMapMode.READ);
  assert.deepEqual([...new Uint32Array(buffer.getMappedRange())], [1, 2, 3, 4]);
  buffer.unmap();
  await releaseGpu();
  await releaseGpu(); // nothing held: nothing to do
});
