"""Labels at read time from captions (data.caption_vocab): soft targets over the caption's vocabulary terms,
no-term samples skipped and counted as no_label, exact resume, the head width, and the vocabulary's hash in the
config (a resume with another vocabulary is refused by the config check)."""

from __future__ import annotations

import shutil

import pytest
import torch
from data_helpers import caption_shards, manifest_for

from scaling.config import ConfigError, to_dict
from scaling.data import DataConfig, build_train_loader
from scaling.data.captions import TermOptions
from scaling.data.vocab import load_vocab, write_vocab
from scaling.engine.config import load_config
from scaling.engine.config_diff import check_resume_config

CAPTIONS = ["a red dress #ootd", "two ankle boots", "", "of the and", "red bag and boots", None, "a bag",
            "dresses", "#ootd"]
TERMS = [("red", 9, 9), ("boot", 9, 9), ("bag", 9, 9), ("dress", 9, 9), ("#ootd", 9, 9)]


@pytest.fixture
def data(tmp_path):
    captions = [[CAPTIONS[(s * 16 + i) % len(CAPTIONS)] for i in range(16)] for s in range(4)]
    caption_shards(tmp_path / "shards", captions)
    manifest_for(tmp_path / "shards")  # img2dataset shards after `scaling data inspect --write-manifest`
    write_vocab(str(tmp_path / "vocab.json"), TERMS, TermOptions())
    by_key = {f"{s:05d}{i:04d}": c for s, shard in enumerate(captions) for i, c in enumerate(shard)}
    return tmp_path, by_key


def _loader(tmp_path, stage="wsp", workers=0, **kw):
    cfg = DataConfig(train=str(tmp_path / "shards"), caption_vocab=str(tmp_path / "vocab.json"), mode="epoch",
                     workers=workers, shuffle_buffer=8, **kw)
    return cfg, build_train_loader(cfg, stage=stage, image_size=16, micro_batch=8, rank=0, world_size=1, seed=3)


@pytest.mark.parametrize("workers", [0, 2])
def test_targets_are_the_caption_terms_and_no_term_samples_are_counted(data, workers):
    tmp_path, by_key = data
    vocab = load_vocab(str(tmp_path / "vocab.json"))
    cfg, loader = _loader(tmp_path, workers=workers)
    assert loader.num_classes == 5 and cfg.caption_vocab_hash == vocab.sha256
    seen = set()
    for _ in range(loader.batches_per_epoch):  # one epoch: every sample's slot once
        batch = next(loader)
        for key, row in zip(batch["key"], batch["target"]):
            ids = vocab.labels(by_key[key])
            expected = torch.zeros(5)
            expected[ids] = 1 / len(ids)
            assert torch.equal(row, expected), by_key[key]
            seen.add(key)
    loader.close()
    stats = loader.stats()
    no_term = [k for k, c in by_key.items() if c is not None and not vocab.labels(c)]
    assert stats["no_label"] == len(no_term) == 14 and stats["missing_field"] == 7  # the None captions
    assert seen == {k for k, c in by_key.items() if c is not None and vocab.labels(c)}


def test_resume_is_exact_with_caption_labels(data):
    tmp_path, _ = data
    _, loader = _loader(tmp_path)
    for _ in range(3):
        next(loader)
    state = loader.state_dict()
    rest = [next(loader) for _ in range(4)]
    _, again = _loader(tmp_path)
    again.load_state_dict(state)
    for want in rest:
        got = next(again)
        assert got["key"] == want["key"] and torch.equal(got["target"], want["target"])
    assert again.stats() == loader.stats()


def test_head_width_and_the_recorded_hash(data):
    tmp_path, _ = data
    assert _loader(tmp_path, num_classes=8)[1].num_classes == 8
    with pytest.raises(ConfigError, match="data.num_classes=3 is smaller than the 5 terms"):
        _loader(tmp_path, num_classes=3)
    cfg, _ = _loader(tmp_path)
    with pytest.raises(ConfigError, match="drop data.caption_vocab_hash") as e:
        _loader(tmp_path, caption_vocab_hash="0" * 16)
    assert "\n" not in str(e.value)
    assert _loader(tmp_path, caption_vocab_hash=cfg.caption_vocab_hash)[0] == cfg
    mae_cfg, mae = _loader(tmp_path, stage="mae")  # stage 1 reads no labels: the vocabulary is not used
    assert mae_cfg.caption_vocab_hash == "" and mae.source.caption_vocab is None


def test_without_a_vocabulary_the_error_names_data_vocab(data):
    tmp_path, _ = data
    cfg = DataConfig(train=str(tmp_path / "shards"), workers=0)
    with pytest.raises(ConfigError, match="scaling data vocab SHARDS --out VOCAB.json"):
        build_train_loader(cfg, stage="wsp", image_size=16, micro_batch=8, rank=0, world_size=1, seed=0)


def test_a_resume_with_another_vocabulary_is_refused(data):
    """The loader records the file's hash in the run config; the resume check compares it (not the path)."""
    tmp_path, _ = data
    shutil.copy(tmp_path / "vocab.json", tmp_path / "moved.json")
    write_vocab(str(tmp_path / "other.json"), TERMS[::-1], TermOptions())

    def resolved(vocab: str):
        cfg = load_config(None, ["stage=wsp", f"data.train={tmp_path / 'shards'}", f"data.caption_vocab={vocab}"])
        build_train_loader(cfg.data, stage="wsp", image_size=16, micro_batch=8, rank=0, world_size=1, seed=0)
        return cfg

    saved = to_dict(resolved(str(tmp_path / "vocab.json")))
    moved = resolved(str(tmp_path / "moved.json"))
    assert check_resume_config(saved, 64, moved, 64, "step_1") == []  # the same vocabulary at another path
    with pytest.raises(ConfigError) as e:
        check_resume_config(saved, 64, resolved(str(tmp_path / "other.json")), 64, "step_1")
    assert "data.caption_vocab_hash:" in str(e.value) and "\n" not in str(e.value)
