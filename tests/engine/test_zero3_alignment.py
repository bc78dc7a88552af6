"""ZeRO-3's flat parameter buffer: with our group order every tensor of a multiple of 8 elements starts on a
16-byte boundary (real DeepSpeed, one CPU rank). On an H200 misaligned weights sent the ViT-2B MAE step's
GEMMs to sm80 kernels (benchmarks/results/train_profile_ours_h200_20261127b.txt)."""

import json
import os
import subprocess
import sys

from train_helpers import REPO


def test_group_order_keeps_zero3_weights_16_byte_aligned():
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    out = subprocess.run([sys.executable, str(REPO / "tests/engine/zero3_alignment_probe.py")], env=env,
                         capture_output=True, text=True, timeout=300, cwd=REPO)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["ours"] == {"partitions": [], "forward": []}
    # the probe can see the problem: no-decay group first (its 1001-element head bias shifts every weight)
    assert "blocks.0.attn.qkv.weight" in result["reversed"]["partitions"]
    assert "blocks.0.attn.qkv" in result["reversed"]["forward"]
