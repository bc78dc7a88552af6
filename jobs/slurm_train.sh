#!/usr/bin/env bash
# Multi-node training under SLURM with the DeepSpeed launcher: one launcher per node (srun, one task per
# node, `python -m deepspeed.launcher.launch`), no pdsh or ssh.
#
#   sbatch --nodes 16 jobs/slurm_train.sh configs/mae/vit_huge_patch14.yaml \
#       data.train='/data/ig3b/{000000..099999}.tar' run_dir=/ckpt/mae_h14
#
# Arguments reach the trainer exactly as given: a brace pattern stays one argument (webdataset expands it,
# no shell does). `resume=auto` comes first, so a requeued job continues from its last checkpoint.
#
# Preemption: SLURM signals this batch shell (B:USR1) 120 s before the time limit. The shell forwards the
# signal to srun, srun to its task on every node, and each task to the training ranks of its node only: the
# launcher dies of SIGUSR1 (it handles SIGINT/SIGTERM only) and would take the ranks with it. The ranks
# agree on the signal at the next step, write a checkpoint and exit. The shell waits until the step has
# really exited, then requeues the job (`--requeue` alone does not requeue at the time limit).
#
# Environment: GPUS_PER_NODE (default: SLURM_GPUS_ON_NODE, else 8), MASTER_PORT (29500), PYTHON (python),
# SCALING_EXIT_FILE (a file that receives the step's exit status; `scaling sweep` sets it).
#SBATCH --job-name=scaling
#SBATCH --ntasks-per-node=1
#SBATCH --gpus-per-node=8
#SBATCH --cpus-per-task=96
#SBATCH --signal=B:USR1@120
#SBATCH --requeue
#SBATCH --open-mode=append
#SBATCH --output=slurm-%x-%j.out
set -euo pipefail
CONFIG=${1:?usage: sbatch jobs/slurm_train.sh CONFIG.yaml [key=value ...]}
shift
: "${SLURM_JOB_ID:?run this script with sbatch (SLURM_JOB_ID is not set)}"
GPUS_PER_NODE=${GPUS_PER_NODE:-${SLURM_GPUS_ON_NODE:-8}}
MASTER_PORT=${MASTER_PORT:-29500}
PYTHON=${PYTHON:-python}
mapfile -t HOSTS < <(scontrol show hostnames "$SLURM_JOB_NODELIST")
MASTER_ADDR=${MASTER_ADDR:-${HOSTS[0]}}

# The launcher's --world_info: base64url of {"host": [0, ..., GPUS_PER_NODE - 1], ...}, the same on every node.
slots=$(seq -s ', ' 0 $((GPUS_PER_NODE - 1)))
world=""
for host in "${HOSTS[@]}"; do
  world+="${world:+, }\"$host\": [$slots]"
done
WORLD_INFO=$(printf '{%s}' "$world" | base64 -w 0 | tr '+/' '-_')

# What srun runs once per node, as `bash -c "$NODE_TASK" node_task ARGS...`: the arguments stay positional
# parameters ("$@"), never re-parsed by a shell. The launcher runs in its own process group (set -m), so a
# signal sent to the task's group reaches this shell only; USR1/TERM go to the launcher's children, the
# training ranks; the task exits with the launcher's status once the launcher has exited.
read -r -d '' NODE_TASK <<'EOF' || true
set -uo pipefail
set -m
"$PYTHON" -u -m deepspeed.launcher.launch --node_rank="$SLURM_NODEID" "$@" &
launcher=$!
# shellcheck disable=SC2317,SC2329  # called by the traps below
forward() { signalled=1; pkill "-$1" -P "$launcher" || true; }
trap 'forward USR1' USR1
trap 'forward TERM' TERM
while :; do
  signalled=0
  wait "$launcher"
  status=$?
  [[ $signalled == 1 ]] || break
done
exit "$status"
EOF
export PYTHON

preempted=0
signalled=0
step=""
# shellcheck disable=SC2317,SC2329  # called by the trap below, which shellcheck does not follow
on_usr1() {
  preempted=1
  signalled=1
  echo "preemption signal: the training ranks checkpoint and exit"
  [[ -z $step ]] || kill -USR1 "$step" 2>/dev/null || true
}
trap on_usr1 USR1

srun --ntasks-per-node=1 --kill-on-bad-exit=1 bash -c "$NODE_TASK" node_task \
  --world_info="$WORLD_INFO" --master_addr="$MASTER_ADDR" --master_port="$MASTER_PORT" \
  --module scaling.train --config "$CONFIG" resume=auto "$@" &
step=$!
[[ $preempted == 0 ]] || kill -USR1 "$step" 2>/dev/null || true  # the signal came before srun started

# `wait` returns early whenever a trapped signal arrives; wait again until the step has really exited.
while :; do
  signalled=0
  status=0
  wait "$step" || status=$?
  [[ $signalled == 1 ]] || break
done

[[ -z ${SCALING_EXIT_FILE:-} ]] || echo "$status" > "$SCALING_EXIT_FILE"  # read by `scaling sweep status`
if [[ $preempted == 1 && $status == 0 ]]; then
  echo "checkpoint written; requeueing job $SLURM_JOB_ID (it continues with resume=auto)"
  scontrol requeue "$SLURM_JOB_ID"
fi
exit "$status"
