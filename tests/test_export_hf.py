"""`scaling export RUN --hf DIR` writes a folder timm loads with `local-dir:` and whose outputs equal our
encoder's; config.json carries the size, the classes and the eval transform, README.md the run's numbers."""

import json
import os
import subprocess
import sys

import pytest
import timm
import torch

from scaling.eval.cli import update_summary
from scaling.eval.encoder import load_encoder
from scaling.export import main as export_main
from scaling.models import create_model
from scaling.models.weights import read_weights


@pytest.fixture(scope="module")
def wsp_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("hf") / "wsp"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("RANK", None)
    proc = subprocess.run([sys.executable, "-m", "scaling.train", "--config", "tiny/wsp", f"run_dir={run}",
                           "total_samples=64", "batch.micro_batch=32", "model.img_size=48"], env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    update_summary(run, {"knn_top1": 0.4286})  # as `scaling eval` records a result
    return run


def test_timm_loads_the_folder_and_agrees_with_our_encoder(wsp_run, tmp_path):
    out = tmp_path / "hf"
    assert export_main([str(wsp_run), "--hf", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    config = json.loads((out / "config.json").read_text())
    assert config["num_classes"] == 7 and len(config["label_names"]) == 7  # photos7's manifest
    assert config["model_args"] == {"img_size": 48, "patch_size": 4, "in_chans": 3, "embed_dim": 64, "depth": 4,
                                    "num_heads": 4, "mlp_ratio": 4.0, "qkv_bias": True, "class_token": True,
                                    "global_pool": "token"}
    cfg = config["pretrained_cfg"]
    assert cfg["input_size"] == [3, 48, 48] and cfg["mean"] == [0.485, 0.456, 0.406] and cfg["std"][0] == 0.229
    assert cfg["interpolation"] == "bicubic" and cfg["crop_pct"] == 0.875

    theirs = timm.create_model(f"local-dir:{out}", pretrained=True).eval()
    assert theirs.num_classes == 7 and timm.data.resolve_data_config({}, model=theirs)["input_size"] == (3, 48, 48)
    ours = load_encoder(str(wsp_run)).model.eval()  # the run's own consolidated encoder
    classifier = create_model("vit_micro_patch4", num_classes=7, img_size=48).eval()
    classifier.load_state_dict(read_weights(out / "model.safetensors"), strict=True)
    x = torch.randn(3, 3, 48, 48)
    with torch.no_grad():
        assert (theirs.forward_features(x) - ours.forward_features(x)).abs().max() < 1e-5
        assert (theirs(x) - classifier(x)).abs().max() < 1e-5

    card = (out / "README.md").read_text()
    summary = json.loads((wsp_run / "summary.json").read_text())
    assert card.startswith("---\nlibrary_name: timm\n") and "# vit_micro_patch4 (wsp)" in card
    assert f"samples seen: {summary['samples_seen']}" in card and f"{summary['flops']:.3e}" in card
    assert "photos7" in card and "| knn_top1 | 0.4286 |" in card


def test_a_folder_that_holds_something_is_not_overwritten(wsp_run, tmp_path, capsys):
    out = tmp_path / "hf"
    out.mkdir()
    (out / "mine.txt").write_text("keep")
    assert export_main([str(wsp_run), "--hf", str(out)]) == 2
    assert "is not empty" in capsys.readouterr().err and (out / "mine.txt").read_text() == "keep"
    assert export_main([str(wsp_run)]) == 2  # neither OUT.safetensors nor --hf
