// Which share of a sweep's cells this process runs: from the command line,
// a Slurm array job or a Kubernetes Indexed Job.

/** Shard `index` of `count`: it runs the cells whose number modulo `count` is `index`. */
export interface Shard {
  /** This shard, from 0. */
  index: number;
  /** Shards in all. */
  count: number;
  /** Where the shard came from: `"--shard"`, `"slurm"`, `"kubernetes"` or `"local"`. */
  from: "--shard" | "slurm" | "kubernetes" | "local";
}

/**
 * The environment variable a Kubernetes Indexed Job sets to its number of
 * completions (Kubernetes passes only `JOB_COMPLETION_INDEX`; the manifest
 * of `moelab sweep k8s` sets this one beside it).
 */
export const K8S_SHARDS_VAR = "MOELAB_SWEEP_SHARDS";

/**
 * The shard to run: `--shard I/N` when given; else a Slurm array task
 * (`SLURM_ARRAY_TASK_ID - SLURM_ARRAY_TASK_MIN` of
 * `SLURM_ARRAY_TASK_COUNT`); else a Kubernetes Indexed Job's
 * `JOB_COMPLETION_INDEX` of {@linkcode K8S_SHARDS_VAR}; else every cell
 * (`0/1`, local).
 *
 * @throws {RangeError} If the flag or the variables are malformed or the
 * index is out of range; the message names the flag or variable.
 */
export function resolveShard(
  flag: string | undefined,
  env: Record<string, string | undefined>,
): Shard {
  if (flag !== undefined) {
    const m = /^(\d+)\/(\d+)$/.exec(flag.trim());
    if (!m) {
      throw new RangeError(
        `--shard must be I/N with 0 <= I < N: current value is ${
          JSON.stringify(flag)
        }`,
      );
    }
    return check(Number(m[1]), Number(m[2]), "--shard", "--shard");
  }
  const task = env.SLURM_ARRAY_TASK_ID;
  if (task !== undefined && task !== "") {
    const id = int("SLURM_ARRAY_TASK_ID", task);
    const min = int("SLURM_ARRAY_TASK_MIN", env.SLURM_ARRAY_TASK_MIN ?? "0");
    const count = int(
      "SLURM_ARRAY_TASK_COUNT",
      env.SLURM_ARRAY_TASK_COUNT ?? "",
    );
    return check(id - min, count, "SLURM_ARRAY_TASK_ID", "slurm");
  }
  const k8s = env.JOB_COMPLETION_INDEX;
  if (k8s !== undefined && k8s !== "") {
    const index = int("JOB_COMPLETION_INDEX", k8s);
    const count = int(K8S_SHARDS_VAR, env[K8S_SHARDS_VAR] ?? "");
    return check(index, count, "JOB_COMPLETION_INDEX", "kubernetes");
  }
  return { index: 0, count: 1, from: "local" };
}

function int(name: string, text: string): number {
  if (!/^\d+$/.test(text.trim())) {
    throw new RangeError(
      `${name} must be a non-negative integer: current value is ${
        JSON.stringify(text)
      }`,
    );
  }
  return Number(text);
}

function check(
  index: number,
  count: number,
  name: string,
  from: Shard["from"],
): Shard {
  if (count < 1 || index >= count) {
    throw new RangeError(
      `${name} must give a shard I of N with 0 <= I < N: current value is ${index}/${count}`,
    );
  }
  return { index, count, from };
}

/** Whether the cell numbered `index` belongs to `shard` (round robin). */
export function inShard(index: number, shard: Shard): boolean {
  return index % shard.count === shard.index;
}
