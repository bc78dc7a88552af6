#!/usr/bin/env bash
# One node, N GPUs (or N CPU ranks on a machine without GPUs), through the DeepSpeed launcher:
#   bash jobs/single_node.sh 8 configs/mae/vit_base_patch16.yaml data.train='shards/{000000..000099}.tar'
# Arguments reach the trainer exactly as given (quote brace patterns so your shell leaves them alone).
# Environment: MASTER_PORT (default 29500), PYTHON (default python).
set -euo pipefail
usage="usage: jobs/single_node.sh NUM_GPUS CONFIG.yaml [key=value ...]"
NUM=${1:?$usage}
CONFIG=${2:?$usage}
shift 2
exec "${PYTHON:-python}" -m deepspeed.launcher.runner --num_gpus "$NUM" --master_port "${MASTER_PORT:-29500}" \
  --module scaling.train --config "$CONFIG" "$@"
