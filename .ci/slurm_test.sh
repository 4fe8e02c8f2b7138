#!/usr/bin/env bash
# A real single-node Slurm cluster on loopback (Debian slurm-wlm and munge):
# starts munged, slurmctld and slurmd from a private folder, submits a small
# sweep as an array job plus its dependent merge with `moelab sweep slurm`'s
# submit.sh --wait, and checks that the merged table is byte-identical to
# the same grid run locally. Daemons are killed on exit; their logs are
# printed on failure. Needs root (SlurmUser=root) and no cgroups
# (proctrack/linuxproc, task/none).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
for cmd in munged slurmctld slurmd sbatch scontrol sinfo; do
  if ! command -v "$cmd" >/dev/null 2>&1 && [ ! -x "/usr/sbin/$cmd" ]; then
    echo "slurm_test: $cmd missing (apt-get install slurm-wlm munge)" >&2
    exit 1
  fi
done
export PATH="$PATH:/usr/sbin"

work=$(mktemp -d /tmp/moelab-slurm.XXXXXX)
pids=()
ok=0
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  sleep 1
  for pid in "${pids[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
  if [ "$ok" -ne 1 ]; then
    for log in "$work"/log/*.log "$work"/sweep/slurm/*.log; do
      [ -f "$log" ] || continue
      echo "---- $log (last 40 lines)" >&2
      tail -n 40 "$log" >&2
    done
  fi
  rm -rf "$work"
}
trap cleanup EXIT

mkdir -p "$work"/{munge,state,spool,log,run}
# munge: a fresh key; a root-run munged needs --force.
head -c 1024 /dev/urandom >"$work/munge/munge.key"
chmod 400 "$work/munge/munge.key"
socket="$work/munge/munge.socket"
munged --force --foreground --key-file="$work/munge/munge.key" \
  --socket="$socket" --pid-file="$work/run/munged.pid" \
  --log-file="$work/log/munged.log" --seed-file="$work/munge/seed" \
  >>"$work/log/munged-stdout.log" 2>&1 &
pids+=($!)

cpus=$(nproc)
cat >"$work/slurm.conf" <<EOF
ClusterName=moelab-ci
SlurmctldHost=localhost
SlurmctldPort=${SLURM_TEST_CTLD_PORT:-16817}
SlurmdPort=${SLURM_TEST_SLURMD_PORT:-16818}
AuthType=auth/munge
AuthInfo=socket=$socket
CredType=cred/munge
SlurmUser=root
SlurmdUser=root
StateSaveLocation=$work/state
SlurmdSpoolDir=$work/spool
SlurmctldPidFile=$work/run/slurmctld.pid
SlurmdPidFile=$work/run/slurmd.pid
SlurmctldLogFile=$work/log/slurmctld.log
SlurmdLogFile=$work/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MpiDefault=none
ReturnToService=2
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=512 State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=30 State=UP
EOF
export SLURM_CONF="$work/slurm.conf"

for _ in $(seq 50); do [ -S "$socket" ] && break; sleep 0.1; done
slurmctld -D -i -f "$SLURM_CONF" >>"$work/log/slurmctld-stdout.log" 2>&1 &
pids+=($!)
slurmd -D -N localhost -f "$SLURM_CONF" >>"$work/log/slurmd-stdout.log" 2>&1 &
pids+=($!)

ready=0
for _ in $(seq 60); do
  state=$(sinfo -h -n localhost -o %T 2>/dev/null || true)
  if [ "$state" = "idle" ]; then ready=1; break; fi
  sleep 1
done
if [ "$ready" -ne 1 ]; then
  echo "slurm_test: the node did not come up idle in 60 s (state: ${state:-none})" >&2
  exit 1
fi
echo "slurm_test: cluster up ($(sinfo -h -o '%P %D %c %T'))"

moelab=(deno run -A "$root/lib/cli/main.ts")
cat >"$work/grid.json" <<'EOF'
{
  "preset": { "steps": 12, "layers": 2, "tokens": 128, "experts": 8, "topK": 2, "gapSteps": 2 },
  "grid": { "seed": [1, 2], "workload.drift": [0, 0.05], "methods": [["greedy", "loss-free"], ["loss-free(rate=1e-2)"]] }
}
EOF

"${moelab[@]}" sweep --grid "$work/grid.json" --out "$work/local" --quiet
"${moelab[@]}" sweep merge "$work/local" --quiet

"${moelab[@]}" sweep slurm --grid "$work/grid.json" --out "$work/sweep" --array 3 --time 10
timeout 300 bash "$work/sweep/slurm/submit.sh" --wait
for f in sweep.parquet sweep.json; do
  if ! cmp "$work/local/$f" "$work/sweep/$f"; then
    echo "slurm_test: $f of the Slurm array differs from the local run's" >&2
    exit 1
  fi
done
cells=$(find "$work/sweep/cells" -name cell.json | wc -l)
tasks=$(find "$work/sweep/slurm" -name 'shard-*.log' | wc -l)
if [ "$tasks" -ne 3 ]; then
  echo "slurm_test: expected 3 array task logs, found $tasks" >&2
  exit 1
fi
echo "slurm_test: ok: $tasks array tasks ran $cells cells; the merge (afterok) equals the local run byte for byte"
ok=1
