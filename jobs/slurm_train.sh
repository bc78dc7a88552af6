#!/usr/bin/env bash
# Multi-node training under Slurm with the DeepSpeed launcher: one launcher per node (srun, one task per
# node, `python -m deepspeed.launcher.launch`), no pdsh or ssh.
#
#   sbatch --nodes 16 --gpus-per-node 8 --cpus-per-task 64 jobs/slurm_train.sh configs/mae/vit_huge_patch14.yaml \
#       data.train='/data/ig3b/{000000..099999}.tar' run_dir=/ckpt/mae_h14
#
# Arguments reach the trainer exactly as given: a brace pattern stays one argument (webdataset expands it,
# no shell does). `resume=auto` comes first, so a requeued job continues from its last checkpoint, and a job
# whose run already finished exits 0 at once, leaving every file as it was.
#
# Ranks per node: GPUS_PER_NODE when set (on a CPU-only node: that many CPU ranks), else the allocation's GPUs
# (SLURM_GPUS_ON_NODE, from --gpus-per-node), else one CPU rank (a CPU-only allocation). CPUs: srun gets the
# allocation's --cpus-per-task (Slurm 22.05's srun does not inherit it) and each rank OMP_NUM_THREADS = its
# share of them, unless OMP_NUM_THREADS is set.
#
# Preemption: Slurm signals this batch shell (B:USR1) 300 s before the time limit; `scancel --signal=USR1
# --batch` (or --full) does the same at any time. The shell forwards USR1 to srun, srun to the step, which on a
# real Slurm signals every process of the step on every node at once: the launchers ignore USR1 (they would die
# of it, as they handle only INT and TERM, and take their ranks down mid-checkpoint), the ranks flag it, agree on
# it at the next step (one all-reduce), so every rank of every node stops at the same step and writes its part
# of the checkpoint with the rest of the 300 s. A rank still starting up ignores USR1 until it has installed its
# handler, so the shell repeats the signal every 10 s while the step runs. It waits until the step has really
# exited, then requeues the job (`--requeue` alone does not requeue at the time limit). Slurm holds a requeued
# job until its old credential expires: it shows PENDING, Reason=BeginTime, for about 2-3 minutes, then starts
# again and resumes (`scontrol update JobId=ID StartTime=now`, a few seconds after the requeue, starts it at once).
# Why 300 s is enough at ViT-6.5B: its ZeRO-3 checkpoint is ~90 GB (bf16 weights 2 B + fp32 master weights and
# Adam moments 12 B per parameter), written in parallel by every rank (2.8 GB per rank on 32 GPUs): ~45 s at a
# modest 2 GB/s aggregate, plus one step (seconds) and the requeue call, a 5x margin; on a slower filesystem
# raise it (sbatch --signal=B:USR1@SECONDS, or slurm.signal_seconds in a sweep spec).
#
# Environment: GPUS_PER_NODE (see above), MASTER_PORT (29500 + job id % 20000), PYTHON (python; `scaling sweep`
# pins the venv's interpreter), SCALING_EXIT_FILE (receives "STATUS JOBID" when the step ends; set by `scaling sweep`).
#SBATCH --job-name=scaling
#SBATCH --ntasks-per-node=1
#SBATCH --signal=B:USR1@300
#SBATCH --requeue
#SBATCH --open-mode=append
#SBATCH --output=slurm-%x-%j.out
set -euo pipefail
CONFIG=${1:?usage: sbatch jobs/slurm_train.sh CONFIG.yaml [key=value ...]}
shift
: "${SLURM_JOB_ID:?run this script with sbatch (SLURM_JOB_ID is not set)}"
PYTHON=${PYTHON:-python}
MASTER_PORT=${MASTER_PORT:-$((29500 + SLURM_JOB_ID % 20000))}  # two jobs sharing a node need two ports
[[ -z ${SCALING_EXIT_FILE:-} ]] || rm -f "$SCALING_EXIT_FILE"  # an old job's status must not describe this one
fail() {
  echo "slurm_train.sh: $*" >&2
  [[ -z ${SCALING_EXIT_FILE:-} ]] || echo "2 $SLURM_JOB_ID" > "$SCALING_EXIT_FILE"
  exit 2
}

# Preemption: trapped from the start, acted on once the step runs (see the header).
preempted=0
signalled=0
step=""
resender=""
# USR1 to the step now and every 10 s until it exits: a rank still starting up (before its handler is installed)
# ignores it, and must still get it. The resender is born with USR1 ignored (`scancel --batch` or `--full` may
# signal it too, before it could set a trap of its own).
preempt_step() {
  kill -USR1 "$step" 2>/dev/null || true
  if [[ -z $resender ]]; then
    trap '' USR1
    (while sleep 10 && kill -0 "$step" 2>/dev/null; do kill -USR1 "$step" 2>/dev/null || true; done) &
    resender=$!
    trap on_usr1 USR1
  fi
}
# shellcheck disable=SC2317,SC2329  # called by the trap below, which shellcheck does not follow
on_usr1() {
  preempted=1
  signalled=1
  echo "preemption signal (USR1): the training ranks write a checkpoint and exit; then this job requeues itself"
  [[ -z $step ]] || preempt_step
}
trap on_usr1 USR1

if [[ -n ${GPUS_PER_NODE:-} ]]; then
  RANKS=$GPUS_PER_NODE
elif [[ ${SLURM_GPUS_ON_NODE:-0} =~ ^[0-9]+$ ]] && ((${SLURM_GPUS_ON_NODE:-0} > 0)); then
  RANKS=$SLURM_GPUS_ON_NODE
else
  RANKS=1  # a CPU-only allocation: one CPU rank per node unless GPUS_PER_NODE asks for more
fi
[[ $RANKS =~ ^[1-9][0-9]*$ ]] || fail "GPUS_PER_NODE=$RANKS: give the ranks per node as a whole number >= 1"
CPUS=${SLURM_CPUS_PER_TASK:-${SLURM_CPUS_ON_NODE:-1}}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-$((CPUS / RANKS > 0 ? CPUS / RANKS : 1))}
# One check here, not a failure per node and rank: the interpreter must have the project and DeepSpeed.
has_modules='import importlib.util as u, sys; sys.exit(any(u.find_spec(m) is None for m in ("deepspeed", "scaling")))'
"$PYTHON" -c "$has_modules" 2>/dev/null || fail "$PYTHON cannot import deepspeed and scaling: submit from the" \
  "project's environment or set PYTHON=/path/to/venv/bin/python"

mapfile -t HOSTS < <(scontrol show hostnames "$SLURM_JOB_NODELIST")
MASTER_ADDR=${MASTER_ADDR:-${HOSTS[0]}}
# The launcher's --world_info: base64url of {"host": [0, ..., RANKS - 1], ...}, the same on every node.
slots=$(seq -s ', ' 0 $((RANKS - 1)))
world=""
for host in "${HOSTS[@]}"; do
  world+="${world:+, }\"$host\": [$slots]"
done
WORLD_INFO=$(printf '{%s}' "$world" | base64 -w 0 | tr '+/' '-_')

# What srun runs once per node, as `bash -c "$NODE_TASK" node_task ARGS...`: the arguments stay positional
# parameters ("$@"), never re-parsed by a shell. The launcher starts with USR1 ignored (inherited through exec;
# the ranks install their own handler), so a USR1 that Slurm sends to every process of the step leaves it
# alive; this shell also passes USR1 on to the ranks (the launcher's children), for a Slurm that signals only
# the task. It exits with the launcher's status once the launcher has exited.
read -r -d '' NODE_TASK <<'EOF' || true
set -uo pipefail
trap '' USR1
"$PYTHON" -u -m deepspeed.launcher.launch --node_rank="$SLURM_NODEID" "$@" &
launcher=$!
# shellcheck disable=SC2317,SC2329  # called by the trap below
forward() { signalled=1; pkill -USR1 -P "$launcher" || true; }
trap forward USR1
while :; do
  signalled=0
  wait "$launcher"
  status=$?
  [[ $signalled == 1 ]] || break
done
exit "$status"
EOF
export PYTHON SCALING_REQUEUES=1  # the trainer's last lines say that this job requeues itself

srun_cpus=()
[[ -z ${SLURM_CPUS_PER_TASK:-} ]] || srun_cpus=(--cpus-per-task="$SLURM_CPUS_PER_TASK")
srun --ntasks-per-node=1 "${srun_cpus[@]}" --kill-on-bad-exit=1 bash -c "$NODE_TASK" node_task \
  --world_info="$WORLD_INFO" --master_addr="$MASTER_ADDR" --master_port="$MASTER_PORT" \
  --module scaling.train --config "$CONFIG" resume=auto "$@" &
step=$!
[[ $preempted == 0 ]] || preempt_step  # the signal came before srun started

# `wait` returns early whenever a trapped signal arrives; wait again until the step has really exited.
while :; do
  signalled=0
  status=0
  wait "$step" || status=$?
  [[ $signalled == 1 ]] || break
done
[[ -z $resender ]] || kill "$resender" 2>/dev/null || true

[[ -z ${SCALING_EXIT_FILE:-} ]] || echo "$status $SLURM_JOB_ID" > "$SCALING_EXIT_FILE"  # for `scaling sweep status`
if [[ $preempted == 1 && $status == 0 ]]; then
  echo "checkpoint written; requeueing job $SLURM_JOB_ID: Slurm holds it ~2-3 minutes (Reason=BeginTime), then it" \
    "resumes from the checkpoint (resume=auto)"
  scontrol requeue "$SLURM_JOB_ID"
fi
exit "$status"
