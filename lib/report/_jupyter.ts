// The Deno Jupyter kernel shows any value with a method under this symbol
// by the mime bundle the method returns (Deno's `Jupyter.display` protocol).
export const JUPYTER_DISPLAY: unique symbol = Symbol.for(
  "Jupyter.display",
) as never;

/** A mime bundle: mime type to content, for example `{ "text/html": "<b>hi</b>" }`. */
export type MimeBundle = Record<string, string>;

interface JupyterNamespace {
  display(
    value: unknown,
    options?: { raw?: boolean },
  ): Promise<void> | void;
}

/**
 * `Deno.jupyter` inside the Deno kernel, else undefined. Outside the kernel
 * Deno throws on the mere property access, and under Bun or Node there is
 * no `Deno` at all, hence the guarded lookup.
 */
export function jupyterKernel(): JupyterNamespace | undefined {
  const deno = (globalThis as { Deno?: { jupyter?: JupyterNamespace } }).Deno;
  if (deno === undefined) return undefined;
  try {
    return deno.jupyter;
  } catch {
    return undefined;
  }
}
