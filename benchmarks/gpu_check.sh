#!/usr/bin/env bash
# The project's one GPU script: checks the fused kernels on the GPU and times them, the GPU JPEG decode
# mode, and the ZeRO-3 training step against plain PyTorch. About 6-8 minutes on one H100/H200.
#
#   bash benchmarks/gpu_check.sh --out benchmarks/results/gpu_$(date +%Y%m%d)
#
# On a machine without network, carry wheels for what the image lacks (deepspeed, hjson, pydantic and
# its parts, webdataset, braceexpand) in .whl/ and they are installed to /tmp/site first.
set -uo pipefail
OUT=results
while [ $# -gt 0 ]; do
  case "$1" in
    --out) OUT="$2"; shift 2 ;;
    *) echo "usage: bash benchmarks/gpu_check.sh --out DIR" >&2; exit 2 ;;
  esac
done
mkdir -p "$OUT"
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    && export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
# scaling.kernels is kernels/ through setup.py's package_dir: install the checkout (no deps, offline)
python3 -m pip install -q --no-deps --no-build-isolation -e . >"$OUT/install.log" 2>&1 || echo "editable install failed (see $OUT/install.log)"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$OUT/device.csv" 2>&1
status=0
timeout 200 python3 benchmarks/bench_kernels_gpu.py --out "$OUT" --budget-s 120 2>&1 | tee "$OUT/kernels.log" || status=1
timeout 80 python3 benchmarks/gpu_decode.py --out "$OUT" 2>&1 | tee "$OUT/decode.log" || status=1
timeout 300 python3 benchmarks/bench_train_gpu.py --out "$OUT" 2>&1 | tee "$OUT/train.log" || status=1
echo; echo "== summary ($OUT) =="; tail -n 12 "$OUT/kernels.log"; tail -n 8 "$OUT/train.log"
exit $status
