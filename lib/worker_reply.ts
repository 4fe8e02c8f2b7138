// The error side of the project's worker protocols (the simulator's layer
// and EP workers, the sweep's cell workers): a worker answers each request
// or posts the error it met as `{ kind: "error", name, message }`, and the
// caller rethrows it as its own class, so that bad input keeps its
// TypeError or RangeError across the thread boundary.

/** A worker's reply when its request failed: the error's class and message. */
export interface ErrorReply {
  kind: "error";
  name: string;
  message: string;
}

/** Whether a worker's reply is an {@linkcode ErrorReply}. */
export function isErrorReply(reply: { kind: string }): reply is ErrorReply {
  return reply.kind === "error";
}

/** The classes an {@linkcode ErrorReply} is rethrown as; others as Error. */
const ERRORS: Record<string, new (message: string) => Error> = {
  TypeError,
  RangeError,
  SyntaxError,
};

/**
 * The error an {@linkcode ErrorReply} stands for: its class where it is a
 * TypeError, RangeError or SyntaxError, else Error; `prefix` goes before
 * its message.
 */
export function errorOf(reply: ErrorReply, prefix = ""): Error {
  return new (ERRORS[reply.name] ?? Error)(prefix + reply.message);
}

/** How a worker's handler posts its reply (buffers to transfer, not copy). */
export type Post<R> = (reply: R, transfer?: Transferable[]) => void;

/**
 * Answers every message this worker receives with `handle(request, post)`;
 * an error thrown there is posted as an {@linkcode ErrorReply}.
 */
export function serveRequests<Q, R>(
  handle: (request: Q, post: Post<R>) => void,
): void {
  const scope = globalThis as unknown as {
    onmessage: ((e: MessageEvent<Q>) => void) | null;
    postMessage(message: R | ErrorReply, transfer?: Transferable[]): void;
  };
  const post: Post<R> = (reply, transfer) =>
    scope.postMessage(reply, transfer ?? []);
  scope.onmessage = (e) => {
    try {
      handle(e.data, post);
    } catch (err) {
      const error = err as Error;
      scope.postMessage({
        kind: "error",
        name: error?.name ?? "Error",
        message: error?.message ?? String(err),
      });
    }
  };
}
