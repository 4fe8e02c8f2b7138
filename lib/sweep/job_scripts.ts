// The batch files that run a sweep's shards on a cluster: a Slurm array job
// with a dependent merge job, or a Kubernetes Indexed Job.
import { K8S_SHARDS_VAR } from "./shard.ts";

/** Single-quotes a word for a POSIX shell. */
export function shellQuote(word: string): string {
  return /^[\w@%+=:,./-]+$/.test(word)
    ? word
    : `'${word.replaceAll("'", `'"'"'`)}'`;
}

/** What the Slurm files run and ask for. */
export interface SlurmOptions {
  /** The moelab command line, as shell words (`deno run -A .../main.ts`). */
  moelab: string;
  /** The grid file (absolute). */
  grid: string;
  /** The sweep folder (absolute). */
  out: string;
  /** Array tasks, one shard each. */
  array: number;
  /** Folder the jobs start in. */
  workdir: string;
  /** `#SBATCH` options of both jobs, without dashes: `partition`, `time`, ... */
  sbatch: Record<string, string>;
  /** Folder of these files and of the job logs. */
  logs: string;
}

/**
 * The three files of a Slurm sweep: `shards.sbatch` (an array job, task
 * `i` running shard `i` of `array`: `sbatch --array=i shards.sbatch`
 * re-runs one shard alone), `merge.sbatch`, and `submit.sh`, which submits
 * the array and then the merge with `--dependency=afterok` on it (its
 * arguments go to the merge's `sbatch`, e.g. `--wait`).
 */
export function slurmFiles(o: SlurmOptions): Record<string, string> {
  const options = (name: string, log: string) =>
    [
      `#SBATCH --job-name=${name}`,
      `#SBATCH --output=${log}`,
      ...Object.entries(o.sbatch).map(([k, v]) => `#SBATCH --${k}=${v}`),
    ].join("\n");
  const q = shellQuote;
  const shards = `#!/bin/bash
# moelab sweep: one array task per shard. Re-run a shard alone with
#   sbatch --array=I ${o.logs}/shards.sbatch
#SBATCH --array=0-${o.array - 1}
${options("moelab-sweep", `${o.logs}/shard-%a.log`)}
set -euo pipefail
cd ${q(o.workdir)}
exec ${o.moelab} sweep --grid ${q(o.grid)} --out ${
    q(o.out)
  } --shard "\${SLURM_ARRAY_TASK_ID}/${o.array}" \\
  --threads "\${SLURM_CPUS_PER_TASK:-1}" --quiet
`;
  const merge = `#!/bin/bash
# moelab sweep: merges the cells into sweep.parquet once every shard is done.
${options("moelab-sweep-merge", `${o.logs}/merge.log`)}
set -euo pipefail
cd ${q(o.workdir)}
exec ${o.moelab} sweep merge ${q(o.out)}
`;
  const submit = `#!/bin/bash
# Submits the shards as an array job, then the merge as a job that starts
# once every array task has succeeded (and is cancelled if one fails:
# re-run that shard, then the merge). Arguments go to the merge's sbatch
# (--wait: return when the merge is done).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
shards=$(sbatch --parsable "$here/shards.sbatch")
shards=\${shards%%;*}
echo "shards: job $shards (${o.array} array tasks)"
merge=$(sbatch --parsable --dependency=afterok:"$shards" --kill-on-invalid-dep=yes \\
  "$@" "$here/merge.sbatch")
echo "merge: job \${merge%%;*}"
`;
  return {
    "shards.sbatch": shards,
    "merge.sbatch": merge,
    "submit.sh": submit,
  };
}

/** What the Kubernetes manifest runs and asks for. */
export interface K8sOptions {
  /** The moelab command line, as shell words. */
  moelab: string;
  /** The grid file's text, shipped in a ConfigMap beside the Job. */
  gridText: string;
  /** The sweep folder, as the pods see it. */
  out: string;
  /** Completions: shards in all. */
  completions: number;
  /** Pods at once. */
  parallelism: number;
  /** Job name. */
  name: string;
  /** Container image with Deno. */
  image: string;
  /** PersistentVolumeClaim shared by the pods, mounted at `mount`; none when empty. */
  pvc: string;
  /** Where the claim is mounted. */
  mount: string;
  /** CPUs each pod requests; none when empty. */
  cpus: string;
}

/** Where the pods see the grid file (from the ConfigMap). */
const GRID_MOUNT = "/etc/moelab-sweep";

/**
 * A Kubernetes Indexed Job running the shards: pod `JOB_COMPLETION_INDEX`
 * of {@linkcode K8S_SHARDS_VAR} runs that shard, writing to a shared
 * volume, with the grid in a ConfigMap of the same manifest; its header
 * says how to merge once the Job completes.
 */
export function k8sManifest(o: K8sOptions): string {
  const q = shellQuote;
  const threads = o.cpus === "" ? "" : ` --threads ${q(o.cpus)}`;
  const command = `${o.moelab} sweep --grid ${GRID_MOUNT}/grid.json --out ${
    q(o.out)
  }${threads} --quiet`;
  const lines = [
    `# moelab sweep: ${o.completions} shards as a Kubernetes Indexed Job.`,
    `#   kubectl apply -f <this file>`,
    `#   kubectl wait --for=condition=complete job/${o.name} --timeout=24h`,
    `# then merge on any machine that sees ${o.out}:`,
    `#   ${o.moelab} sweep merge ${q(o.out)}`,
    `# A failed index is retried by the Job; a cell already complete is skipped.`,
    `apiVersion: v1`,
    `kind: ConfigMap`,
    `metadata:`,
    `  name: ${o.name}-grid`,
    `data:`,
    `  grid.json: |`,
    ...o.gridText.trimEnd().split("\n").map((line) => `    ${line}`),
    `---`,
    `apiVersion: batch/v1`,
    `kind: Job`,
    `metadata:`,
    `  name: ${o.name}`,
    `spec:`,
    `  completionMode: Indexed`,
    `  completions: ${o.completions}`,
    `  parallelism: ${o.parallelism}`,
    `  backoffLimit: ${o.completions * 2}`,
    `  template:`,
    `    spec:`,
    `      restartPolicy: Never`,
    `      containers:`,
    `        - name: shard`,
    `          image: ${JSON.stringify(o.image)}`,
    `          command: ["sh", "-c", ${JSON.stringify(command)}]`,
    `          env:`,
    `            - name: ${K8S_SHARDS_VAR}`,
    `              value: "${o.completions}"`,
  ];
  lines.push(
    `          volumeMounts:`,
    `            - name: grid`,
    `              mountPath: ${GRID_MOUNT}`,
  );
  if (o.pvc !== "") {
    lines.push(
      `            - name: sweep`,
      `              mountPath: ${JSON.stringify(o.mount)}`,
    );
  }
  if (o.cpus !== "") {
    lines.push(
      `          resources:`,
      `            requests:`,
      `              cpu: "${o.cpus}"`,
    );
  }
  lines.push(
    `      volumes:`,
    `        - name: grid`,
    `          configMap:`,
    `            name: ${o.name}-grid`,
  );
  if (o.pvc !== "") {
    lines.push(
      `        - name: sweep`,
      `          persistentVolumeClaim:`,
      `            claimName: ${JSON.stringify(o.pvc)}`,
    );
  }
  return lines.join("\n") + "\n";
}
