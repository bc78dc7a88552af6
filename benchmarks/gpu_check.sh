#!/usr/bin/env bash
# The project's one GPU script: checks the fused kernels on the GPU and times them, the GPU JPEG decode
# mode, and `scaling train` itself against plain PyTorch. All parts: about 13 minutes on one H100/H200.
#
#   bash benchmarks/gpu_check.sh --out $OUT --parts train     # the training step: under 7.5 minutes
#   bash benchmarks/gpu_check.sh --out $OUT --parts kernels   # fused kernels: about 4 minutes
#   bash benchmarks/gpu_check.sh --out benchmarks/results/gpu_$(date +%Y%m%d)
# Files written under --out (the device tool brings back 8 at most): device.csv, train.log, train_bench.json,
# train_profiles.txt (train); kernels.log, bench_kernels.json (kernels); decode.log, gpu_decode.json (decode).
#
# On a machine without network, carry wheels for what the image lacks (deepspeed, hjson, pydantic and
# its parts, webdataset, braceexpand) in .whl/ and they are installed to /tmp/site first.
set -uo pipefail
OUT=results
PARTS=kernels,decode,train
while [ $# -gt 0 ]; do
  case "$1" in
    --out) OUT="$2"; shift 2 ;;
    --parts) PARTS="$2"; shift 2 ;;
    *) echo "usage: bash benchmarks/gpu_check.sh --out DIR [--parts kernels,decode,train]" >&2; exit 2 ;;
  esac
done
want() { [[ ",$PARTS," == *",$1,"* ]]; }
mkdir -p "$OUT"
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    && export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
# No `pip install -e .`: offline it needs setuptools from the index. The benchmarks import the checkout and map
# kernels/ to scaling.kernels themselves when the package is not installed.
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$OUT/device.csv" 2>&1
status=0
if want kernels; then
  # --sweep of the one case below target (6.5B/14 heads, D = 128, at N = 1025: 0.92x the best SDPA) first
  timeout 300 python3 benchmarks/bench_kernels_gpu.py --out "$OUT" --budget-s 120 --sweep --sweep-dims 128 \
    --sweep-lens 1025 2>&1 | tee "$OUT/kernels.log" || status=1
fi
if want decode; then
  timeout 80 python3 benchmarks/gpu_decode.py --out "$OUT" 2>&1 | tee "$OUT/decode.log" || status=1
fi
if want train; then
  # One call must stay under 8 minutes: the cases stop at --budget-s (each subprocess is killed there; cases
  # not started are recorded as skipped) and JSON is written after every case.
  timeout 420 python3 benchmarks/bench_train_gpu.py --out "$OUT" --budget-s 380 2>&1 \
    | tee "$OUT/train.log" || status=1
fi
echo; echo "== summary ($OUT) =="
for part in kernels train; do [ -f "$OUT/$part.log" ] && tail -n 12 "$OUT/$part.log"; done
exit $status
