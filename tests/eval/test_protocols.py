"""Linear probe, SGD probe, kNN and low-shot on the bundled Fashion-MNIST subset with a fixed random encoder."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import TRAIN, TRAIN_SAMPLES, VAL

from scaling.data.eval_set import EvalSet, EvalTransform
from scaling.eval import probe
from scaling.eval.encoder import load_encoder
from scaling.eval.features import extract
from scaling.eval.knn import knn_eval, knn_scores
from scaling.eval.lowshot import lowshot
from scaling.eval.sgd_probe import sgd_probe

GRID = (1e-4, 1e-3, 1e-2)
CHANCE = 0.1


def test_linear_probe_and_knn_well_above_chance_and_reproducible(micro_features, tmp_path):
    train, val, _ = micro_features
    assert len(train.keys) == TRAIN_SAMPLES and len(val.keys) == 2000
    lin = probe.linear_probe(train.cls, train.labels, val.cls, val.labels, train.classes, GRID)
    knn = knn_eval(train.cls, train.labels, val.cls, val.labels, train.classes)
    assert lin["top1"] > 4 * CHANCE and knn["top1"] > 4 * CHANCE, (lin["top1"], knn["top1"])
    assert 0 <= lin["top1"] <= lin["top5"] <= 1 and set(lin["per_class"]) == set(train.classes)
    # A fresh extraction (no cache) and fresh fits give the same numbers to the digit.
    enc = load_encoder("random:vit_micro_patch4")
    again = extract(enc, EvalSet(VAL), EvalTransform(enc.model.spec.img_size), cache_dir=tmp_path)
    assert not again.from_cache and torch.equal(again.cls, val.cls) and again.keys == val.keys
    wd = (lin["settings"]["weight_decay"],)
    lin1 = probe.linear_probe(train.cls, train.labels, val.cls, val.labels, train.classes, wd)
    lin2 = probe.linear_probe(train.cls, train.labels, again.cls, again.labels, train.classes, wd)
    assert lin1["top1"] == lin2["top1"] == lin["top1"]
    assert knn_eval(train.cls, train.labels, again.cls, again.labels, train.classes)["top1"] == knn["top1"]


def test_knn_vote_is_dinos_weighted_vote():
    bank = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0]])
    labels = torch.tensor([0, 1, 1])
    q = torch.tensor([[1.0, 0.05]])
    s = knn_scores(bank, labels, q, 2, k=2, temperature=0.1)
    cos = torch.nn.functional.normalize(bank, dim=1) @ torch.nn.functional.normalize(q, dim=1).T
    assert torch.allclose(s[0], torch.tensor([(cos[0] / 0.1).exp().item(), (cos[1] / 0.1).exp().item()]))


def test_lbfgs_and_sgd_probes_agree_within_two_points(micro_features):
    train, val, _ = micro_features
    lin = probe.linear_probe(train.cls, train.labels, val.cls, val.labels, train.classes, GRID)
    sgd = sgd_probe(train.cls, train.labels, val.cls, val.labels, train.classes, epochs=100, warmup_epochs=5)
    assert abs(lin["top1"] - sgd["top1"]) <= 0.02, (lin["top1"], sgd["top1"])
    # MAE's LARS variant at MAE's absolute lr (0.1 x 16384 / 256) learns too
    lars = sgd_probe(train.cls, train.labels, val.cls, val.labels, train.classes, optimizer="lars", epochs=5,
                     warmup_epochs=1, base_lr=6.4)
    assert lars["top1"] > 2 * CHANCE


def test_lowshot_reports_five_seeded_splits(micro_features):
    train, val, _ = micro_features
    out = lowshot(train.cls, train.labels, val.cls, val.labels, train.classes, shots=(1, 5), splits=5, grid=GRID)
    for k in ("1", "5"):
        runs = out["shots"][k]["splits"]
        assert [r["seed"] for r in runs] == [0, 1, 2, 3, 4]
        picks = [tuple(r["train_keys_index"]) for r in runs]
        assert len(set(picks)) == 5 and all(len(p) == int(k) * 10 for p in picks)
        top1 = np.array([r["top1"] for r in runs])
        assert out["shots"][k]["top1"] == pytest.approx(top1.mean()) and out["shots"][k]["top1_std"] > 0
    assert out["shots"]["5"]["top1"] > out["shots"]["1"]["top1"] > CHANCE
    again = lowshot(train.cls, train.labels, val.cls, val.labels, train.classes, shots=(1,), splits=5, grid=GRID)
    assert again["shots"]["1"] == out["shots"]["1"]


def test_grid_never_sees_the_validation_set(micro_features, monkeypatch):
    """The weight decay and its grid scores are the same whatever val holds, and every array the solver is
    given is made of training rows only."""
    train, val, _ = micro_features
    seen: list[torch.Tensor] = []
    real_fit = probe.fit_logreg

    def spy(x, *args, **kwargs):
        seen.append(x)
        return real_fit(x, *args, **kwargs)

    monkeypatch.setattr(probe, "fit_logreg", spy)
    a = probe.linear_probe(train.cls, train.labels, val.cls, val.labels, train.classes, GRID)
    noise = torch.randn_like(val.cls) * 100
    b = probe.linear_probe(train.cls, train.labels, noise, val.labels.flip(0), train.classes, GRID)
    assert a["settings"]["grid"] == b["settings"]["grid"]
    assert a["settings"]["weight_decay"] == b["settings"]["weight_decay"]
    train_rows = {tuple(r) for r in train.cls.tolist()}
    val_rows = {tuple(r) for r in val.cls.tolist()} | {tuple(r) for r in noise.tolist()}
    for x in seen:
        rows = {tuple(r) for r in x.tolist()}
        assert rows <= train_rows and not rows & val_rows


def _pixels(spec: str, limit: int) -> tuple[np.ndarray, np.ndarray]:
    data = EvalSet(spec)
    xs, ys = [], []
    for batch in data.batches(EvalTransform(28, center_fraction=1.0), 500, 0, limit):
        xs.append(batch["image"][:, 0].reshape(len(batch["key"]), -1).double() / 255)  # grey: channel 0
        ys.append(batch["label"])
    return torch.cat(xs).numpy(), torch.cat(ys).numpy()


def test_raw_pixel_probe_matches_scikit_learn():
    sklearn = pytest.importorskip("sklearn", reason="scikit-learn is in the dev extras")
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x, y = _pixels(TRAIN, 1500)
    vx, vy = _pixels(VAL, 2000)
    wd = 1e-2
    ours = probe.fit_logreg(torch.from_numpy(x), torch.from_numpy(y), 10, wd)
    ours_top1 = probe.topk_accuracy(ours.scores(torch.from_numpy(vx)), torch.from_numpy(vy), 1)
    # scikit-learn minimises C x sum(log-loss) + ||W||^2 / 2: the same as ours with C = 1 / (wd x N).
    ref = make_pipeline(StandardScaler(), LogisticRegression(C=1 / (wd * len(y)), max_iter=2000, tol=1e-6))
    ref_top1 = float((ref.fit(x, y).predict(vx) == vy).mean())
    assert abs(ours_top1 - ref_top1) <= 0.02, (ours_top1, ref_top1, sklearn.__version__)
    assert ours_top1 > 0.7
