import { test } from "node:test";
import assert from "node:assert/strict";
import {
  errorOf,
  type ErrorReply,
  isErrorReply,
  serveRequests,
} from "./worker_reply.ts";

test("errorOf keeps the three input-error classes, the rest as Error", () => {
  const reply = (name: string): ErrorReply => ({
    kind: "error",
    name,
    message: "topK must be at most 8: current value is 9",
  });
  for (
    const [name, Class] of [
      ["TypeError", TypeError],
      ["RangeError", RangeError],
      ["SyntaxError", SyntaxError],
    ] as const
  ) {
    const e = errorOf(reply(name), "cell 3: ");
    assert.ok(e instanceof Class, name);
    assert.equal(
      e.message,
      "cell 3: topK must be at most 8: current value is 9",
    );
  }
  const other = errorOf(reply("DOMException"));
  assert.equal(other.constructor, Error);
  assert.equal(other.message, "topK must be at most 8: current value is 9");
});

test("serveRequests posts the handler's replies, and its errors as ErrorReply", () => {
  const scope = globalThis as unknown as {
    onmessage: unknown;
    postMessage: unknown;
  };
  const saved = { onmessage: scope.onmessage, postMessage: scope.postMessage };
  const posted: [unknown, unknown][] = [];
  scope.postMessage = (message: unknown, transfer: unknown) =>
    posted.push([message, transfer]);
  try {
    serveRequests<number, { kind: "half"; value: number }>((n, post) => {
      if (n % 2) throw new RangeError(`n must be even: current value is ${n}`);
      const buffer = new ArrayBuffer(8);
      post({ kind: "half", value: n / 2 }, [buffer]);
    });
    const receive = scope.onmessage as (e: { data: number }) => void;
    receive({ data: 8 });
    receive({ data: 3 });
    assert.equal(posted.length, 2);
    assert.deepEqual(posted[0][0], { kind: "half", value: 4 });
    assert.equal((posted[0][1] as ArrayBuffer[]).length, 1);
    assert.deepEqual(posted[1][0], {
      kind: "error",
      name: "RangeError",
      message: "n must be even: current value is 3",
    });
    assert.ok(errorOf(posted[1][0] as ErrorReply) instanceof RangeError);
    assert.equal(isErrorReply(posted[0][0] as { kind: string }), false);
    assert.equal(isErrorReply(posted[1][0] as { kind: string }), true);
  } finally {
    scope.onmessage = saved.onmessage;
    scope.postMessage = saved.postMessage;
  }
});
