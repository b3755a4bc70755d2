#!/usr/bin/env bash
# Run the smoke DAG through snakemake-executor-plugin-slurm on a single-node SLURM cluster
# started on this machine, and print its wall time.
#
# Usage (as root, from the repository root, with the venv active and PYTHONPATH=$PWD/src):
#   bash benchmarks/slurm_smoke.sh [RUN_DIR]
#
# Needs Debian's slurm-wlm and munge (apt-get install -y slurm-wlm munge) and the plugin
# (pip install -e '.[cluster]'). It writes a minimal slurm.conf for this host (its CPUs and
# memory, one partition) to /etc/slurm/slurm.conf (only where none exists, or where this script
# wrote it: job steps read the config from there), starts munged, slurmctld and slurmd if they
# are not running, submits every job of the smoke DAG with `snakemake --profile
# profiles/slurm`, then stops the daemons it started. Exit status 77: SLURM could not be
# started here (the reason is printed).
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
run_dir=${1:-$(mktemp -d /tmp/iterlens-slurm-run.XXXXXX)}
state=${ITERLENS_SLURM_STATE:-/tmp/iterlens-slurm}
host=$(hostname -s)
skip() { echo "SKIP: $*" >&2; exit 77; }

for tool in slurmctld slurmd sbatch squeue munged; do
  command -v "$tool" > /dev/null || skip "'$tool' not found (apt-get install -y slurm-wlm munge)"
done
[ "$(id -u)" = 0 ] || skip "starting slurmctld and slurmd needs root"
python -c "import snakemake_executor_plugin_slurm" 2> /dev/null \
  || skip "snakemake-executor-plugin-slurm not installed (pip install -e '.[cluster]')"

mkdir -p "$state"/{ctld,spool,log}
cpus=$(nproc)
mem_mb=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 * 3 / 4 ))
conf=/etc/slurm/slurm.conf
marker="# written by iterlens benchmarks/slurm_smoke.sh"
if [ -e "$conf" ] && ! head -1 "$conf" | grep -qF "$marker"; then
  skip "$conf exists and was not written by this script; not touching it"
fi
mkdir -p /etc/slurm
cat > "$conf" <<CONF
$marker
ClusterName=iterlens
SlurmctldHost=$host
AuthType=auth/munge
SlurmUser=root
SlurmdUser=root
SlurmctldPort=6917
SlurmdPort=6918
StateSaveLocation=$state/ctld
SlurmdSpoolDir=$state/spool
SlurmctldPidFile=$state/slurmctld.pid
SlurmdPidFile=$state/slurmd.pid
SlurmctldLogFile=$state/log/slurmctld.log
SlurmdLogFile=$state/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
ReturnToService=2
MinJobAge=3600
SchedulerType=sched/backfill
NodeName=$host CPUs=$cpus RealMemory=$mem_mb State=UNKNOWN
PartitionName=main Nodes=$host Default=YES MaxTime=INFINITE State=UP
CONF
export SLURM_CONF=$conf

started=()
cleanup() {
  for pid in "${started[@]}"; do kill "$pid" 2> /dev/null || true; done
}
trap cleanup EXIT

if ! pgrep -x munged > /dev/null; then
  mkdir -p /run/munge && chown munge: /run/munge 2> /dev/null || true
  munged --force || skip "munged did not start"
  sleep 1
  started+=("$(cat /run/munge/munged.pid)")
fi
if ! scontrol ping 2> /dev/null | grep -q UP; then
  slurmctld -f "$SLURM_CONF" || skip "slurmctld did not start (see $state/log/slurmctld.log)"
  slurmd -f "$SLURM_CONF" || skip "slurmd did not start (see $state/log/slurmd.log)"
  sleep 2
  started+=("$(cat "$state/slurmctld.pid")" "$(cat "$state/slurmd.pid")")
fi
for _ in $(seq 30); do
  sinfo -h -o %T 2> /dev/null | grep -qE "idle|mixed|alloc" && break
  scontrol update nodename="$host" state=resume 2> /dev/null || true
  sleep 1
done
sinfo -h -o %T | grep -qE "idle|mixed|alloc" || skip "the SLURM node did not come up: $(sinfo)"
echo "SLURM up: $(sinfo -h -o '%P %D %c CPUs %m MB %T')"

start=$(date +%s)
snakemake --snakefile "$repo/Snakefile" --directory "$run_dir" \
  --configfile "$repo/config/smoke.yaml" --profile "$repo/profiles/slurm" \
  --set-threads train_lm="$cpus" train_cnn="$cpus" \
  --slurm-status-command squeue "${@:2}"  # no accounting (sacct) on this one-node cluster
end=$(date +%s)
# The plugin removes its per-job logs after a successful run; Snakemake's own log keeps a line
# for every submission.
submitted=$(cat "$run_dir"/.snakemake/log/*.snakemake.log | grep -c "submitted with SLURM jobid" || true)
echo "slurm smoke DAG: $(( end - start )) s wall time, $submitted SLURM jobs"
echo "outputs in $run_dir/results"
