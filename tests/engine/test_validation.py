"""Validation during training (scaling/engine/validation.py): exact over ranks, and equal to a separate
`scaling eval` pass (scaling/eval/classify.py) on the run's exported weights."""

from __future__ import annotations

import json

import pytest
import torch
from fmnist_tree import class_tree
from train_helpers import REPO, losses, run_train

from scaling.data.eval_set import EvalSet, EvalTransform
from scaling.engine.validation import classification_sums, feature_table, forwards_per_rank
from scaling.models import create_model

FMNIST = REPO / "scaling" / "assets" / "fashion_mnist"
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


@pytest.mark.parametrize("n", [1, 7, 50, 2000])
def test_rank_ranges_cover_every_sample_once(n, tmp_path):
    data = EvalSet(str(FMNIST / "val"))
    data.num_samples = n  # the ranges are a pure function of the count
    for world in (1, 2, 3, 8, 64):
        ranges = [data.rank_range(r, world) for r in range(world)]
        covered = [i for lo, hi in ranges for i in range(lo, hi)]
        assert covered == list(range(n))
        assert max(hi - lo for lo, hi in ranges) - min(hi - lo for lo, hi in ranges) <= 1


def test_sums_over_three_ranks_equal_one_pass_with_equal_forward_counts(tmp_path):
    data = EvalSet(class_tree(tmp_path / "val", 5))  # 50 samples: ranks of 16, 17, 17; batches of 8 end partial
    torch.manual_seed(0)
    model = create_model("vit_micro_patch4", num_classes=10).eval()
    calls: list[int] = []

    def forward(x):
        calls[-1] += 1
        return model(x)

    args = (data, EvalTransform(32), 8)
    cpu = torch.device("cpu")
    with torch.no_grad():
        calls.append(0)
        one = classification_sums(forward, *args, 0, 1, cpu, torch.float32, MEAN, STD, 10)
        parts = []
        for r in range(3):
            calls.append(0)
            parts.append(classification_sums(forward, *args, r, 3, cpu, torch.float32, MEAN, STD, 10))
    three = sum(parts)
    assert one[3] == three[3] == 50 and one[4 + 10 :].sum() == 50
    assert torch.equal(one[1:], three[1:]) and abs(float(one[0] - three[0])) < 1e-6 * float(one[0])
    assert calls[1:] == [forwards_per_rank(50, 3, 8)] * 3 == [3, 3, 3]  # every rank the same forwards


def test_feature_table_of_three_ranks_equals_one(tmp_path):
    data = EvalSet(class_tree(tmp_path / "val", 2))  # 20 samples
    torch.manual_seed(0)
    enc = create_model("vit_micro_patch4").eval()
    args = (EvalTransform(32), 8)
    rest = (torch.device("cpu"), torch.float32, MEAN, STD, 64)
    with torch.no_grad():
        one, y1 = feature_table(lambda x: enc(x), data, *args, 0, 1, *rest)
        parts = [feature_table(lambda x: enc(x), data, *args, r, 3, *rest) for r in range(3)]
    # without a process group each rank keeps its own rows (zeros elsewhere): the all-reduce is their sum
    assert torch.allclose(sum(p[0] for p in parts), one, atol=1e-6)
    assert torch.equal(sum(p[1] for p in parts), y1) and sorted(y1.tolist()) == sorted(list(range(10)) * 2)


def test_more_ranks_than_samples_still_run_equal_forwards(tmp_path):
    data = EvalSet(class_tree(tmp_path / "val", 1))  # 10 samples on 16 ranks: 6 ranks hold none
    torch.manual_seed(0)
    model = create_model("vit_micro_patch4", num_classes=10).eval()
    calls = []
    total = torch.zeros(24, dtype=torch.float64)
    with torch.no_grad():
        for r in range(16):
            calls.append(0)

            def forward(x):
                calls[-1] += 1
                return model(x)

            total += classification_sums(forward, data, EvalTransform(32), 4, r, 16, torch.device("cpu"),
                                         torch.float32, MEAN, STD, 10)
    assert calls == [1] * 16 and total[3] == 10 and total[4 + 10 :].tolist() == [1.0] * 10


@pytest.mark.slow  # a real training run: ~60 s of CPU on 2 cores
def test_validation_during_training_equals_a_separate_eval_pass(tmp_path):
    from scaling.eval.classify import classifier_eval
    from scaling.export import export

    val = class_tree(tmp_path / "val", 5)
    run = tmp_path / "wsp"
    run_train(str(REPO / "configs" / "tiny" / "wsp.yaml"),
              [f"run_dir={run}", f"data.train={FMNIST / 'train'}", f"data.val={val}", "total_samples=128",
               "batch.micro_batch=16", "eval.every=64", "eval.micro_batch=16"])
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3, 4]
    assert [r["step"] for r in rows if "val/top1" in r] == [2, 4]
    last = rows[-1]
    assert last["val/samples"] == 50
    summary = json.loads((run / "summary.json").read_text())
    assert summary["eval"] == {"val_top1": last["val/top1"], "val_top5": last["val/top5"]}
    export(run, tmp_path / "wsp.safetensors", with_head=True)
    again = classifier_eval(str(tmp_path / "wsp.safetensors"), val, micro_batch=7)  # other batching
    assert again["samples"] == 50
    assert again["top1"] == last["val/top1"] and again["top5"] == last["val/top5"]
    assert again["loss"] == pytest.approx(last["val/loss"], rel=1e-5)
    assert again["per_class"] == json.loads((run / "val.json").read_text())["per_class"]
    # The run directory itself as --weights: its encoder is consolidated, and its summary gains knn_*.
    from scaling.eval import cli

    assert cli.main(["--weights", str(run), "--protocol", "knn", "--train", class_tree(tmp_path / "bank", 4, skip=5),
                     "--val", val, "--out", str(tmp_path / "knn.json"), "--k", "5",
                     "--cache-dir", str(tmp_path / "cache")]) == 0
    knn = json.loads((tmp_path / "knn.json").read_text())
    assert json.loads((run / "summary.json").read_text())["eval"] == {
        "val_top1": last["val/top1"], "val_top5": last["val/top5"], "knn_top1": knn["top1"], "knn_top5": knn["top5"]}


FT = ["stage=finetune", "deepspeed.precision=fp32", "total_samples=96", "batch.micro_batch=16", "log_every=1",
      "eval.every=64", "model.drop_path=0.1", "model.global_pool=avg", "optim.layer_decay=0.75",
      "augment.rand_augment=rand-m9-mstd0.5-inc1", "augment.mixup=0.8", "augment.cutmix=1.0",
      "augment.label_smoothing=0.1", "augment.reprob=0.25"]


@pytest.mark.slow
@pytest.mark.parametrize("stage", ["finetune", "mae"])
def test_two_ranks_equal_one_process_with_validation(tmp_path, stage):
    """Fine-tuning with MAE's recipe (and MAE with its val loss) on 2 CPU ranks equals 1 process with
    grad_accum 2: the same losses and the same validation numbers. Run under `flock /tmp/cpu_heavy.lock`."""
    val = class_tree(tmp_path / "val", 3)  # 30 samples: 15 per rank, batches of 16 -> partial
    config = str(REPO / "configs" / "tiny" / ("wsp.yaml" if stage == "finetune" else "mae.yaml"))
    monitor = tmp_path / "monitor"  # MAE: a kNN monitor on a small labelled train/val pair
    class_tree(monitor / "train", 6, skip=3)
    class_tree(monitor / "val", 3)
    common = FT if stage == "finetune" else ["deepspeed.precision=fp32", "total_samples=96", "batch.micro_batch=16",
                                             "log_every=1", "eval.every=64", f"eval.knn_monitor={monitor}",
                                             "eval.knn_k=5"]
    common = [*common, f"data.train={FMNIST / 'train'}", f"data.val={val}"]
    one, two = tmp_path / "one", tmp_path / "two"
    run_train(config, [f"run_dir={one}", *common, "batch.grad_accum=2"])
    run_train(config, [f"run_dir={two}", *common, "batch.grad_accum=1"], ranks=2)
    a, b = losses(one), losses(two)
    assert len(a) == len(b) == 3
    for x, y in zip(a, b):
        assert abs(x - y) <= 1e-4 * abs(x), (a, b)
    va = json.loads((one / "val.json").read_text())
    vb = json.loads((two / "val.json").read_text())
    assert va["val/samples"] == vb["val/samples"] == 30
    assert va["val/loss"] == pytest.approx(vb["val/loss"], rel=1e-4)
    if stage == "finetune":
        assert va["val/top1"] == vb["val/top1"]
    else:
        assert 0 < va["val/knn_top1"] == vb["val/knn_top1"] <= 1
        assert [r["step"] for r in map(json.loads, (two / "metrics.jsonl").read_text().splitlines())
                if "val/knn_top1" in r] == [2, 3]


def test_validator_refuses_a_val_set_that_does_not_fit_the_run():
    from scaling.config import ConfigError
    from scaling.engine.config import load_config
    from scaling.engine.validation import Validator

    val = str(FMNIST / "val")
    wsp = load_config(str(REPO / "configs" / "tiny" / "wsp.yaml"), [f"data.val={val}"])
    with pytest.raises(ConfigError, match="has 10 classes but the model's head has 7"):
        Validator(wsp, 0, 1, torch.device("cpu"), 32, 7, 64, 4)
    knn = load_config(str(REPO / "configs" / "tiny" / "wsp.yaml"), [f"eval.knn_monitor={FMNIST}"])
    with pytest.raises(ConfigError, match="knn_monitor is for stage mae"):
        Validator(knn, 0, 1, torch.device("cpu"), 32, 10, 64, 4)
    mae = load_config(str(REPO / "configs" / "tiny" / "mae.yaml"), [f"eval.knn_monitor={FMNIST}", "eval.every=128"])
    v = Validator(mae, 0, 1, torch.device("cpu"), 32, 0, 64, 4)
    assert v.data is None and [v.due(s) for s in (1, 2, 3, 4)] == [False, True, False, True]
