"""`scaling eval` end to end on small trees, the feature cache (reuse, invalidation) and the bad inputs."""

from __future__ import annotations

import json

import pytest
import torch
from eval_helpers import VAL, class_tree

from scaling.config import ConfigError
from scaling.data.eval_set import EvalSet, EvalTransform
from scaling.data.writer import WriteOptions, write_shards
from scaling.eval import cli
from scaling.eval.encoder import load_encoder
from scaling.eval.features import extract
from scaling.eval.lowshot import lowshot
from scaling.models import VisionTransformer, create_model
from scaling.models.weights import WeightsError, save_safetensors


def _no_forward(monkeypatch):
    def boom(self, images):
        raise AssertionError("a forward pass ran")

    monkeypatch.setattr(VisionTransformer, "forward_features", boom)


def test_features_are_reused_then_invalidated_when_the_weights_change(tmp_path, monkeypatch):
    torch.manual_seed(0)
    weights = tmp_path / "w.safetensors"
    save_safetensors(create_model("vit_micro_patch4").state_dict(), weights, {"model": "vit_micro_patch4"})
    data, transform, cache = EvalSet(VAL), EvalTransform(32), tmp_path / "cache"
    first = extract(load_encoder(str(weights)), data, transform, cache_dir=cache, limit=64)
    assert not first.from_cache and first.cls.shape == (64, 64)
    with monkeypatch.context() as m:
        _no_forward(m)
        again = extract(load_encoder(str(weights)), data, transform, cache_dir=cache, limit=64)
        assert again.from_cache and torch.equal(again.cls, first.cls) and again.keys == first.keys
        # Same file name, new weights: the cache key changes, so the (patched) forward is called.
        sd = create_model("vit_micro_patch4").state_dict()
        sd["blocks.0.mlp.fc1.weight"] += 0.01
        save_safetensors(sd, weights, {"model": "vit_micro_patch4"})
        with pytest.raises(AssertionError, match="a forward pass ran"):
            extract(load_encoder(str(weights)), data, transform, cache_dir=cache, limit=64)
        # Another transform is another key too.
        with pytest.raises(AssertionError, match="a forward pass ran"):
            extract(load_encoder(str(weights)), data, EvalTransform(32, center_fraction=1.0), cache_dir=cache,
                    limit=64)
    changed = extract(load_encoder(str(weights)), data, transform, cache_dir=cache, limit=64)
    assert not changed.from_cache and not torch.equal(changed.cls, first.cls)


def test_cli_knn_writes_eval_json_and_the_runs_summary(tmp_path):
    train, val = class_tree(tmp_path / "train", 12), class_tree(tmp_path / "val", 6, skip=12)
    run = tmp_path / "run"
    run.mkdir()
    (run / "summary.json").write_text(json.dumps({"run": "run", "eval": {"old_metric": 0.5}}))
    torch.manual_seed(0)
    weights = tmp_path / "enc.safetensors"
    save_safetensors(create_model("vit_micro_patch4").state_dict(), weights,
                     {"model": "vit_micro_patch4", "source": str(run)})
    out = tmp_path / "knn.json"
    argv = ["--weights", str(weights), "--protocol", "knn", "--train", train, "--val", val, "--out", str(out),
            "--cache-dir", str(tmp_path / "cache"), "--k", "5"]
    assert cli.main(argv) == 0
    result = json.loads(out.read_text())
    assert 0 <= result["top1"] <= result["top5"] <= 1 and len(result["per_class"]) == 10
    assert result["settings"]["k"] == 5 and result["seeds"] == [0] and result["settings"]["val_samples"] == 60
    summary = json.loads((run / "summary.json").read_text())
    assert summary["eval"] == {"old_metric": 0.5, "knn_top1": result["top1"], "knn_top5": result["top5"]}
    assert result["metrics"] == {"knn_top1": result["top1"], "knn_top5": result["top5"]}  # what collect reads
    assert cli.main([*argv[:3], "lowshot", *argv[4:-2], "--shots", "1,2", "--splits", "2", "--grid", "1e-3"]) == 0
    summary = json.loads((run / "summary.json").read_text())
    assert set(summary["eval"]) == {"old_metric", "knn_top1", "knn_top5", "lowshot1_top1", "lowshot2_top1"}


def test_val_overlapping_train_is_refused(tmp_path, capsys):
    tree = class_tree(tmp_path / "t", 3)
    argv = ["--weights", "random:vit_micro_patch4", "--protocol", "knn", "--train", tree, "--val", tree,
            "--out", str(tmp_path / "o.json"), "--cache-dir", str(tmp_path / "c"), "--k", "3"]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert "holds 30 of its 30 images also in --train" in err and "30 identical files" in err
    assert not (tmp_path / "o.json").exists()


def test_weights_of_another_architecture_are_refused(tmp_path):
    weights = tmp_path / "nano.safetensors"
    save_safetensors(create_model("vit_nano_patch4").state_dict(), weights, {"model": "vit_nano_patch4"})
    with pytest.raises(WeightsError, match="does not fit model vit_micro_patch4.*shape mismatches"):
        load_encoder(str(weights), model="vit_micro_patch4")
    with pytest.raises(ConfigError, match="names no model"):
        save_safetensors(create_model("vit_nano_patch4").state_dict(), weights)
        load_encoder(str(weights))


def test_labels_outside_the_class_list_are_refused(tmp_path):
    out = tmp_path / "shards"
    write_shards(class_tree(tmp_path / "t", 2), str(out), WriteOptions(workers=1), progress=False)
    manifest = json.loads((out / "shards.json").read_text())
    manifest["classes"] = manifest["classes"][:5]  # ids 5..9 now lie outside the list
    (out / "shards.json").write_text(json.dumps(manifest))
    data = EvalSet(str(out))
    with pytest.raises(ConfigError, match="outside the manifest's class list of 5 classes"):
        list(data.read())


def test_k_larger_than_the_smallest_class_is_refused():
    x, y = torch.randn(30, 4), torch.tensor([0] * 12 + [1] * 10 + [2] * 8)
    with pytest.raises(ConfigError, match=r"K=10 is larger than the smallest class.*'c' has 8 samples"):
        lowshot(x, y, x, y, ["a", "b", "c"], shots=(1, 10), splits=1)
