#!/usr/bin/env bash
# One node, N GPUs (or N CPU ranks on a machine without GPUs):
#   bash jobs/single_node.sh 8 configs/mae/vit_base_patch16.yaml data.train=shards/{000000..000099}.tar
set -euo pipefail
NUM=${1:?usage: jobs/single_node.sh NUM_GPUS CONFIG.yaml [key=value ...]}
CONFIG=${2:?usage: jobs/single_node.sh NUM_GPUS CONFIG.yaml [key=value ...]}
shift 2
exec deepspeed --num_gpus "$NUM" --module scaling.train --config "$CONFIG" "$@"
