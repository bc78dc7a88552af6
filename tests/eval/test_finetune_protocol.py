"""`scaling eval --protocol finetune`: the engine's finetune stage from exported weights, MAE's recipe, then the
val accuracy in EVAL.json and in the evaluated run's summary.json (a real training run: slow)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch
from eval_helpers import REPO, TRAIN, class_tree

from scaling.engine.distributed import free_port
from scaling.models import create_model
from scaling.models.weights import save_safetensors

pytestmark = pytest.mark.slow


def test_finetune_protocol_fills_eval_json_and_the_summary(tmp_path):
    run = tmp_path / "pretrain"
    run.mkdir()
    (run / "summary.json").write_text(json.dumps({"run": "pretrain", "eval": {}}))
    torch.manual_seed(0)
    weights = tmp_path / "enc.safetensors"
    save_safetensors(create_model("vit_micro_patch4").state_dict(), weights,
                     {"model": "vit_micro_patch4", "source": str(run)})
    val = class_tree(tmp_path / "val", 4)
    out = tmp_path / "ft.json"
    cmd = [sys.executable, "-m", "scaling.eval.cli", "--weights", str(weights), "--protocol", "finetune",
           "--config", str(REPO / "configs" / "tiny" / "wsp.yaml"), "--train", TRAIN, "--val", val,
           "--out", str(out), f"run_dir={tmp_path / 'ft'}", "total_samples=64", "batch.micro_batch=16",
           "deepspeed.precision=fp32", "model.global_pool=avg", "model.drop_path=0.1", "optim.layer_decay=0.75",
           "augment.mixup=0.8", "augment.cutmix=1.0", "augment.label_smoothing=0.1", "augment.reprob=0.25",
           "augment.rand_augment=rand-m9-mstd0.5-inc1"]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=900,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-4000:]
    result = json.loads(out.read_text())
    assert 0 <= result["top1"] <= result["top5"] <= 1 and len(result["per_class"]) == 10
    assert result["settings"]["augment"]["mixup"] == 0.8 and result["settings"]["global_pool"] == "avg"
    summary = json.loads((run / "summary.json").read_text())
    assert summary["eval"] == {"finetune_top1": result["top1"], "finetune_top5": result["top5"]}
    ft = json.loads((tmp_path / "ft" / "summary.json").read_text())
    assert ft["stage"] == "finetune" and ft["eval"]["finetune_top1"] == result["top1"]


def test_features_across_two_ranks_equal_one_process(tmp_path):
    """`deepspeed --num_gpus 2 --module scaling.eval.cli ...`: each rank encodes half the set; the cached table
    and the kNN result equal a one-process run's."""
    train, val = class_tree(tmp_path / "train", 8), class_tree(tmp_path / "val", 3, skip=8)
    common = ["--weights", "random:vit_micro_patch4", "--protocol", "knn", "--train", train, "--val", val,
              "--k", "5", "--batch-size", "16"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("RANK", None)
    one = subprocess.run([sys.executable, "-m", "scaling.eval.cli", *common, "--out", str(tmp_path / "one.json"),
                          "--cache-dir", str(tmp_path / "c1")], cwd=REPO, capture_output=True, text=True, env=env)
    assert one.returncode == 0, one.stderr[-3000:]
    launcher = [sys.executable, "-m", "deepspeed.launcher.runner", "--num_gpus", "2",
                "--master_port", str(free_port()), "--module", "scaling.eval.cli"]
    two = subprocess.run([*launcher, *common, "--out", str(tmp_path / "two.json"), "--cache-dir", str(tmp_path / "c2")],
                         cwd=REPO, capture_output=True, text=True, env=env, timeout=900)
    assert two.returncode == 0, two.stderr[-3000:]
    a, b = json.loads((tmp_path / "one.json").read_text()), json.loads((tmp_path / "two.json").read_text())
    assert a["top1"] == b["top1"] and a["per_class"] == b["per_class"]
    fa = torch.load(a["settings"]["feature_files"][1], weights_only=True)
    fb = torch.load(b["settings"]["feature_files"][1], weights_only=True)
    assert fa["keys"] == fb["keys"] and torch.allclose(fa["cls"], fb["cls"], atol=1e-5)
    assert torch.allclose(fa["mean"], fb["mean"], atol=1e-5) and torch.equal(fa["labels"], fb["labels"])
