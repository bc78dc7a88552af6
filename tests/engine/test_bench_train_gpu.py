"""benchmarks/bench_train_gpu.py --smoke: the GPU benchmark's code paths on CPU with vit_micro_patch4 (the real
trainer through `scaling.train.main`, the plain-PyTorch baseline, JPEG shards written by `scaling data write`)."""

import json
import os
import subprocess
import sys

import yaml
from train_helpers import REPO

from scaling.engine.metrics import read_metrics


def test_smoke_mode_writes_trainer_and_baseline_rows(tmp_path):
    out, work = tmp_path / "out", tmp_path / "work"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, str(REPO / "benchmarks" / "bench_train_gpu.py"), "--smoke", "--out",
                           str(out), "--work", str(work)], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    data = json.loads((out / "train_bench.json").read_text())
    for key in ("device", "torch", "deepspeed", "commit", "warmup_steps", "timed_steps"):
        assert data.get(key) is not None, key
    rows = {(r["case"], r["impl"]): r for r in data["results"]}
    assert set(rows) == {("mae_2b", "trainer"), ("mae_2b", "baseline"), ("mae_2b_jpeg_cpu_decode", "trainer")}
    for row in rows.values():
        assert "error" not in row, row
        assert row["micro_batch"] == 8 and row["model"] == "vit_micro_patch4"
        assert row["img_per_s"] > 0 and row["tflops"] > 0 and row["step_s"] > 0
        for key in ("mfu", "peak_mem_gb", "activation_checkpointing", "compile", "kernels", "profile"):
            assert key in row, key
    trainer = rows[("mae_2b", "trainer")]
    assert trainer["activation_checkpointing"] == "selective"
    run = work / "runs" / "mae_2b_trainer_8"
    cfg = yaml.safe_load((run / "config.yaml").read_text())  # the overrides reached the real trainer
    assert cfg["model"]["activation_checkpointing"] == "selective" and cfg["data"]["train"] == "synthetic"
    # warmup + timed steps logged; the profiled step ended the process: no final checkpoint written
    assert [r["step"] for r in read_metrics(run / "metrics.jsonl")] == [1, 2, 3]
    assert not (run / "checkpoints").exists() or not any((run / "checkpoints").iterdir())
    jpeg_cfg = yaml.safe_load((work / "runs" / "mae_2b_jpeg_cpu_decode_trainer_8" / "config.yaml").read_text())
    assert jpeg_cfg["data"]["train"] == str(work / "jpeg_shards")
    assert (work / "jpeg_shards" / "shards.json").is_file()
    ratio = rows[("mae_2b", "trainer")]["img_per_s"] / rows[("mae_2b", "baseline")]["img_per_s"]
    assert data["trainer_vs_baseline"] == {"mae_2b": ratio}
    profiles = (out / "train_profiles.txt").read_text()
    assert profiles.count("== ") == 3 and "Self CPU" in profiles
