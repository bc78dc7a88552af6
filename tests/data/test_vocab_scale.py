"""Scale simulation, as the engine's scale tests do: count the files one rank opens. At 1,024 ranks and 100k
shards the caption vocabulary is read once per rank (its workers get it pickled, without a read), and
`scaling data vocab --sample` lists no folder and opens no shard beyond those it reads."""

from __future__ import annotations

import builtins
import io
import json
import os
import pickle

import pytest
from data_helpers import caption_shards

from scaling.data import DataConfig, build_train_loader
from scaling.data.captions import TermOptions
from scaling.data.cli import main
from scaling.data.vocab import write_vocab

SHARDS, WORLD, REAL = 100_000, 1024, 7


class Opens:
    """Files opened (and folders listed) under `root` while active."""

    def __init__(self, monkeypatch, root) -> None:
        self.root, self.paths, self.listed = str(root), [], []
        real_open, real_listdir, real_scandir = builtins.open, os.listdir, os.scandir

        def recording_open(file, *a, **k):
            if isinstance(file, (str, os.PathLike)) and str(file).startswith(self.root):
                self.paths.append(os.path.basename(str(file)))
            return real_open(file, *a, **k)

        def recording(real):
            def call(path=".", *a, **k):
                if str(path).startswith(self.root):
                    self.listed.append(str(path))
                return real(path, *a, **k)
            return call

        monkeypatch.setattr(builtins, "open", recording_open)
        monkeypatch.setattr(io, "open", recording_open)
        monkeypatch.setattr(os, "listdir", recording(real_listdir))
        monkeypatch.setattr(os, "scandir", recording(real_scandir))

    def take(self) -> list[str]:
        out, self.paths = self.paths, []
        return out


@pytest.fixture(scope="module")
def big(tmp_path_factory):
    """A 100k-shard manifest over REAL small shards (shard i is file s{i % REAL}), 10 captions each."""
    root = tmp_path_factory.mktemp("big")
    captions = [[f"a red dress number {i} #ootd" if i % 3 else "" for i in range(10)] for _ in range(REAL)]
    for path in caption_shards(root / "real", captions):
        path.rename(root / f"s{int(path.stem)}.tar")
    manifest = {"format": "scaling.shards/1", "label_field": "none", "classes": [],
                "shards": [{"name": f"s{i % REAL}.tar", "samples": 10} for i in range(SHARDS)]}
    (root / "shards.json").write_text(json.dumps(manifest))
    write_vocab(str(root / "vocab.json"), [("dress", 1, 1), ("red", 1, 1), ("#ootd", 1, 1)], TermOptions())
    return root


def test_each_rank_reads_the_vocabulary_once(big, monkeypatch):
    opens = Opens(monkeypatch, big)
    cfg = DataConfig(train=str(big / "shards.json"), caption_vocab=str(big / "vocab.json"), mode="epoch",
                     workers=2)
    for rank in (0, 1, WORLD // 2, WORLD - 1):
        loader = build_train_loader(cfg, stage="wsp", image_size=16, micro_batch=4, rank=rank, world_size=WORLD,
                                    seed=0, streams=1)
        assert sorted(opens.take()) == ["shards.json", "vocab.json"]  # one manifest, one vocabulary
        workers_get = pickle.loads(pickle.dumps(loader.source.reader))  # what each DataLoader worker receives
        assert workers_get.captions.labels("Red dresses") == [1, 0] and opens.take() == []
    in_process = build_train_loader(DataConfig(**{**cfg.__dict__, "workers": 0}), stage="wsp", image_size=16,
                                    micro_batch=4, rank=WORLD - 1, world_size=WORLD, seed=0)
    opens.take()
    for _ in range(3):
        next(in_process)
    assert "vocab.json" not in opens.take()  # reading samples never goes back to the file
    assert opens.listed == []


def test_data_vocab_sample_opens_only_the_shards_it_reads(big, monkeypatch, tmp_path):
    opens = Opens(monkeypatch, big)
    out = tmp_path / "v.json"
    assert main(["vocab", str(big / "shards.json"), "--out", str(out), "--sample", "50", "--workers", "1",
                 "--quiet"]) == 0
    got = json.loads(out.read_text())
    assert got["captions"] == 50 and got["shards_read"] == 5 and got["shards"] == SHARDS
    assert opens.take() == ["shards.json"] + [f"s{i % REAL}.tar" for i in (0, 25000, 50000, 74999, 99999)]
    assert opens.listed == []
