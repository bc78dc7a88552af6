#!/usr/bin/env bash
# A real one-node Slurm (Debian 12's slurm-wlm 22.05 + munge) on this machine, for the real-Slurm tests
# (tests/jobs/test_slurm_real.py, tests/sweep/test_sweep_slurm.py) and for trying the job scripts by hand:
#   sudo tools/slurm_one_node.sh up      # install if missing (apt), start munged/slurmctld/slurmd, wait for srun
#   tools/slurm_one_node.sh status       # exit 0 when srun works
#   sudo tools/slurm_one_node.sh down    # stop the daemons this script started (by their recorded pids)
# Root only, no systemd, no cgroups (proctrack/linuxproc, task/none): a development box, not a cluster.
# The node: this machine's CPUs, 2 fake GPUs (GRES on /dev/null-like char devices, so --gpus-per-node=N works
# and sets SLURM_GPUS_ON_NODE; torch still sees no CUDA and the ranks run on CPU). No accounting database, so
# `sacct` is unavailable and `squeue`/`scontrol` answer for jobs up to MinJobAge (300 s) after they end.
# Requeue: Slurm holds a requeued job until its old credential expires (AuthInfo cred_expire, 120 s by
# default) plus a scheduling pass: Reason=BeginTime for ~2.5 minutes here. The tests keep the default and
# release such a job with `scontrol update JobId=N StartTime=now` a few seconds after the requeue (within the same
# second slurmd refuses it, "Job credential revoked", and the job ends FAILED).
# State (spool, logs, pids): $SCALING_SLURM_DIR, default ${TMPDIR:-/tmp}/scaling_slurm.
set -euo pipefail
STATE="${SCALING_SLURM_DIR:-${TMPDIR:-/tmp}/scaling_slurm}"
NODE=$(hostname -s)

running() { timeout 10 srun -N1 -t 1 true >/dev/null 2>&1; }

up() {
  if [[ $(id -u) != 0 ]]; then
    echo "slurm_one_node.sh up: run as root (it starts munged, slurmctld and slurmd)" >&2
    exit 2
  fi
  if command -v srun >/dev/null && running; then
    echo "slurm: already up (node $NODE)"
    return 0
  fi
  # The daemons must not inherit a caller's open files: started under `flock LOCK ...`, munged kept the shared
  # CPU lock held for as long as it ran.
  local fd
  for fd in "/proc/$$/fd"/*; do
    fd=${fd##*/}
    ((fd > 2 && fd != 255)) && eval "exec $fd>&-" 2>/dev/null || true
  done
  if ! command -v slurmctld >/dev/null; then
    echo "slurm: installing slurm-wlm and munge (apt)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm munge >/dev/null  # postinst makes the key
  fi
  [[ -f /etc/munge/munge.key ]] || /usr/sbin/mungekey --create
  mkdir -p /run/munge && chown munge:munge /run/munge && chmod 0755 /run/munge
  pgrep -x munged >/dev/null || runuser -u munge -- /usr/sbin/munged   # daemonises; pid in /run/munge/munged.pid
  munge -n | unmunge | grep -q 'STATUS: *Success'
  mkdir -p "$STATE/state" "$STATE/spool" "$STATE/log" /etc/slurm
  for i in 0 1; do [[ -e $STATE/fakegpu$i ]] || mknod "$STATE/fakegpu$i" c 1 3; done
  echo "NodeName=$NODE Name=gpu File=$STATE/fakegpu[0-1]" > /etc/slurm/gres.conf
  cat > /etc/slurm/slurm.conf <<CONF
# Written by tools/slurm_one_node.sh (scaling's real-Slurm tests): one node, no cgroups, no accounting.
ClusterName=scaling-test
SlurmctldHost=$NODE
SlurmUser=root
AuthType=auth/munge
StateSaveLocation=$STATE/state
SlurmdSpoolDir=$STATE/spool
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd.log
GresTypes=gpu
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
JobRequeue=1
ReturnToService=2
MpiDefault=none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
KillWait=30
MinJobAge=300
NodeName=$NODE CPUs=$(nproc) RealMemory=20000 Gres=gpu:2 State=UNKNOWN
PartitionName=debug Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
CONF
  nohup slurmctld -D > "$STATE/log/slurmctld.stdout" 2>&1 &
  echo $! > "$STATE/slurmctld.fg.pid"
  sleep 2
  nohup slurmd -D > "$STATE/log/slurmd.stdout" 2>&1 &   # logs harmless "mpi/pmix ... PMIx" errors (MpiDefault=none)
  echo $! > "$STATE/slurmd.fg.pid"
  for _ in $(seq 1 30); do
    scontrol update nodename="$NODE" state=resume >/dev/null 2>&1 || true  # a gres change can leave it INVAL
    running && { echo "slurm: up (node $NODE, $(nproc) CPUs, 2 fake GPUs; state in $STATE)"; return 0; }
    sleep 1
  done
  echo "slurm: did not come up; see $STATE/log/" >&2
  exit 1
}

down() {
  local pids=()
  for f in "$STATE/slurmd.fg.pid" "$STATE/slurmctld.fg.pid"; do
    [[ -f $f ]] && pids+=("$(cat "$f")") && rm -f "$f"
  done
  ((${#pids[@]})) && kill "${pids[@]}" 2>/dev/null || true
  for _ in $(seq 1 20); do
    alive=0
    for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
    ((alive)) || break
    sleep 0.5
  done
  [[ -f /run/munge/munged.pid ]] && kill "$(cat /run/munge/munged.pid)" 2>/dev/null || true
  echo "slurm: down"
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  status)
    if command -v srun >/dev/null && running; then echo "slurm: up"; else echo "slurm: not running"; exit 1; fi ;;
  *) echo "usage: tools/slurm_one_node.sh up|down|status" >&2; exit 2 ;;
esac
