#!/usr/bin/env bash
# Wheels for the packages the GPU image lacks (see /work/.library/device/KINDS.md: it has torch, triton, timm,
# tensorboard, pyyaml, pillow, tqdm, psutil, ninja, einops, msgpack, py-cpuinfo, nvidia-ml-py), into .whl/ at the
# repo root (git-ignored). Run it once on the CPU machine, then give the device tool `carry: [".whl"]`;
# gpu_check.sh installs them to /tmp/site there. About 5 MB.
#
#   bash benchmarks/gpu_wheels.sh [DEST]     # DEST defaults to .whl
set -euo pipefail
cd "$(dirname "$0")/.."
DEST="${1:-.whl}"
mkdir -p "$DEST"
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d "$DEST" \
  hjson==3.1.0 pydantic==2.14.4 pydantic-core==2.50.5 annotated-types==0.8.0 typing-inspection==0.4.5 \
  webdataset==1.0.2 braceexpand==0.1.7 simplejpeg==1.9.0
# DeepSpeed is published as a source archive only: build its pure-Python wheel (no ops compiled; pip's wheel
# cache answers when it was built before).
DS_BUILD_OPS=0 python3 -m pip wheel -q --no-deps --no-build-isolation deepspeed==0.19.8 -w "$DEST"
ls "$DEST"
