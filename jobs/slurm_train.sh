#!/usr/bin/env bash
# Multi-node training under SLURM with the DeepSpeed launcher (pdsh-free: one launcher per node).
#
#   sbatch --nodes 16 jobs/slurm_train.sh configs/mae/vit_huge_patch14.yaml \
#       data.train='/data/ig3b/{000000..099999}.tar' run_dir=/ckpt/mae_h14
#
# Preemption: SLURM sends SIGUSR1 120 s before the time limit (--signal); every rank catches it,
# writes a checkpoint at the next step and exits; the requeued job continues with resume=auto.
#SBATCH --job-name=scaling
#SBATCH --ntasks-per-node=1
#SBATCH --gpus-per-node=8
#SBATCH --cpus-per-task=96
#SBATCH --signal=B:USR1@120
#SBATCH --requeue
#SBATCH --output=logs/%x-%j.out
set -euo pipefail
CONFIG=${1:?usage: sbatch jobs/slurm_train.sh CONFIG.yaml [key=value ...]}
shift
GPUS_PER_NODE=${GPUS_PER_NODE:-8}
MASTER_ADDR=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)
MASTER_PORT=${MASTER_PORT:-29500}
export MASTER_ADDR MASTER_PORT

# Forward SIGUSR1 from the batch shell to the training processes (the launcher would SIGKILL them).
trap 'echo "preemption signal: checkpointing"; pkill -USR1 -f "scaling.train" || true' USR1

srun --kill-on-bad-exit=1 bash -c "
  python -m deepspeed.launcher.launch \
    --world_info=\$(python -c 'import base64,json,os,subprocess; hosts=subprocess.check_output([\"scontrol\",\"show\",\"hostnames\",os.environ[\"SLURM_JOB_NODELIST\"]]).decode().split(); print(base64.urlsafe_b64encode(json.dumps({h: list(range($GPUS_PER_NODE)) for h in hosts}).encode()).decode())') \
    --node_rank=\$SLURM_NODEID --master_addr=$MASTER_ADDR --master_port=$MASTER_PORT \
    --module scaling.train --config $CONFIG resume=auto $*
" &
wait
