#!/usr/bin/env bash
# Several nodes from a hostfile (one line per node: `HOSTNAME slots=GPUS`), through the DeepSpeed launcher,
# which starts one launcher per node over passwordless ssh (pdsh):
#   bash jobs/multi_node.sh hosts configs/mae/vit_huge_patch14.yaml \
#       data.train='/data/ig3b/{000000..099999}.tar' run_dir=/ckpt/mae_h14 resume=auto
# Environment: MASTER_ADDR (default: the hostfile's first host), MASTER_PORT (29500), PYTHON (python).
# NCCL and other settings for the remote nodes: NCCL_* variables set here are exported to every node by
# the launcher; anything else goes into a `.deepspeed_env` file (KEY=VALUE lines) in this directory or in
# $HOME, or in the file named by DS_ENV_FILE; jobs/deepspeed_env.example lists the usual ones.
# A hostfile of one host runs on this machine without ssh.
set -euo pipefail
usage="usage: jobs/multi_node.sh HOSTFILE CONFIG.yaml [key=value ...]"
HOSTFILE=${1:?$usage}
CONFIG=${2:?$usage}
shift 2
if [[ ! -f $HOSTFILE ]]; then
  echo "multi_node.sh: hostfile '$HOSTFILE' does not exist; write one line per node: HOSTNAME slots=GPUS" >&2
  exit 2
fi
mapfile -t HOSTS < <(sed -e 's/#.*//' "$HOSTFILE" | awk 'NF {print $1}')
if (( ${#HOSTS[@]} == 0 )); then
  echo "multi_node.sh: hostfile '$HOSTFILE' lists no hosts; write one line per node: HOSTNAME slots=GPUS" >&2
  exit 2
fi
launcher=(--hostfile "$HOSTFILE" --master_addr "${MASTER_ADDR:-${HOSTS[0]}}" --master_port "${MASTER_PORT:-29500}")
if (( ${#HOSTS[@]} == 1 )); then
  launcher+=(--no_ssh_check)  # one node: the launcher runs it here, no ssh involved
fi
exec "${PYTHON:-python}" -m deepspeed.launcher.runner "${launcher[@]}" --module scaling.train --config "$CONFIG" "$@"
