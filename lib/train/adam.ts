import { checkNumber, show } from "../validate.ts";

/** Options of {@linkcode Adam}. */
export interface AdamOptions {
  /** Learning rate. Default `3e-3`. */
  lr?: number;
  /** First-moment decay. Default `0.9`. */
  beta1?: number;
  /** Second-moment decay. Default `0.999`. */
  beta2?: number;
  /** Denominator guard. Default `1e-8`. */
  eps?: number;
  /** Clip the gradient to this global L2 norm before the step; `0` for no clipping. Default `1`. */
  clip?: number;
}

/**
 * Adam (Kingma and Ba, 2015) with bias correction and global-norm gradient
 * clipping, over one flat parameter vector:
 * `m = b1 m + (1-b1) g`, `v = b2 v + (1-b2) g^2`,
 * `p -= lr * (m / (1-b1^t)) / (sqrt(v / (1-b2^t)) + eps)`, where `g` is
 * first scaled by `min(1, clip / ||g||)`.
 *
 * @example One step moves each parameter by about `lr` against its gradient
 * ```ts
 * import { Adam } from "@moelab/balance/train";
 * import assert from "node:assert/strict";
 *
 * const p = new Float64Array([1, -1]);
 * const adam = new Adam(2, { lr: 0.1, clip: 0 });
 * const norm = adam.step(p, new Float64Array([3, -4]));
 * assert.equal(norm, 5);
 * assert.ok(Math.abs(p[0] - 0.9) < 1e-6 && Math.abs(p[1] + 0.9) < 1e-6);
 * ```
 */
export class Adam {
  #m: Float64Array;
  #v: Float64Array;
  #p1 = 1;
  #p2 = 1;
  readonly #lr: number;
  readonly #b1: number;
  readonly #b2: number;
  readonly #eps: number;
  readonly #clip: number;

  /**
   * An optimizer for `size` parameters, its moments at zero.
   *
   * @param size Number of parameters.
   * @param options See {@linkcode AdamOptions}.
   * @throws {RangeError} If an option is out of range.
   */
  constructor(size: number, options: AdamOptions = {}) {
    if (!Number.isInteger(size) || size < 1) {
      throw new RangeError(
        `size must be a positive integer: current value is ${show(size)}`,
      );
    }
    this.#m = new Float64Array(size);
    this.#v = new Float64Array(size);
    this.#lr = checkNumber("lr", options.lr ?? 3e-3, 0);
    this.#b1 = checkNumber("beta1", options.beta1 ?? 0.9, 0, 0.999999);
    this.#b2 = checkNumber("beta2", options.beta2 ?? 0.999, 0, 0.999999);
    this.#eps = checkNumber("eps", options.eps ?? 1e-8, 0);
    this.#clip = checkNumber("clip", options.clip ?? 1, 0);
  }

  /**
   * Clips `grads` (in place) and updates `params` (in place).
   *
   * @returns The gradient's global L2 norm before clipping.
   * @throws {TypeError} If the lengths differ from the size.
   */
  step(params: Float64Array, grads: Float64Array): number {
    const n = this.#m.length;
    if (params.length !== n || grads.length !== n) {
      throw new TypeError(
        `params and grads must have ${n} entries: current lengths are ${params.length} and ${grads.length}`,
      );
    }
    let ss = 0;
    for (let i = 0; i < n; i++) ss += grads[i] * grads[i];
    const norm = Math.sqrt(ss);
    const scale = this.#clip > 0 && norm > this.#clip ? this.#clip / norm : 1;
    const b1 = this.#b1, b2 = this.#b2, m = this.#m, v = this.#v;
    // beta^t as running products: `**` is not the same on every engine
    // (0.9 ** 4 is 0.6561 on Deno, 0.6561000000000001 on Bun).
    this.#p1 *= b1;
    this.#p2 *= b2;
    const c1 = 1 - this.#p1, c2 = 1 - this.#p2;
    const lr = this.#lr, eps = this.#eps;
    for (let i = 0; i < n; i++) {
      const g = grads[i] * scale;
      m[i] = b1 * m[i] + (1 - b1) * g;
      v[i] = b2 * v[i] + (1 - b2) * g * g;
      params[i] -= lr * (m[i] / c1) / (Math.sqrt(v[i] / c2) + eps);
    }
    return norm;
  }
}
