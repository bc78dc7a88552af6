"""`scaling data vocab`: counts, document frequencies, --sample, workers, and bad inputs (one line, nothing
written)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from data_helpers import caption_shards, write_tar

from scaling.data.captions import Normalizer
from scaling.data.cli import main

CAPTIONS = ["A red dress #ootd", "Red dresses and a red bag", "", "of the and", "Ankle boots, women's boots",
            None, "a bag"]


def _shards(tmp_path: Path, n: int = 4, per: int = 21, fields: str = "txt+json") -> list[list[str | None]]:
    captions = [[CAPTIONS[(s + i) % len(CAPTIONS)] for i in range(per)] for s in range(n)]
    caption_shards(tmp_path / "shards", captions, fields)
    return captions


def _vocab(tmp_path: Path, *args: str, source: str | None = None, out: str = "vocab.json") -> tuple[int, dict]:
    path = tmp_path / out
    code = main(["vocab", source or str(tmp_path / "shards"), "--out", str(path), "--quiet", *args])
    return code, (json.loads(path.read_text()) if code == 0 else {})


@pytest.mark.parametrize("fields", ["txt+json", "json"])
def test_counts_and_document_frequencies_are_exact(tmp_path, fields):
    captions = _shards(tmp_path, fields=fields)
    code, vocab = _vocab(tmp_path, "--workers", "2")
    assert code == 0
    n = Normalizer()
    flat = [c for shard in captions for c in shard if c is not None]
    df = Counter(t for c in flat for t in n.terms(c))
    count = Counter(t for c in flat for t in n.term_list(c))
    assert [e["term"] for e in vocab["terms"]] == sorted(df, key=lambda t: (-df[t], t))
    assert all(e["df"] == df[e["term"]] and e["count"] == count[e["term"]] for e in vocab["terms"])
    assert count["red"] == df["red"] + sum(c.lower().count("red") - 1 for c in flat if "red" in c.lower())
    assert vocab["samples"] == 84 and vocab["captions"] == len(flat) and vocab["no_caption"] == 84 - len(flat)
    assert vocab["no_terms"] == sum(1 for c in flat if not n.terms(c)) and vocab["sketch"]["error_bound"] == 0
    assert vocab["options"] == {"hashtags": True, "plurals": True, "stop_words": "english", "min_length": 2,
                                "synsets": False}


def test_one_worker_or_several_write_the_same_terms(tmp_path):
    _shards(tmp_path, n=5)
    _, one = _vocab(tmp_path, "--workers", "1", "--size", "4", out="one.json")
    _, three = _vocab(tmp_path, "--workers", "3", "--size", "4", out="three.json")
    assert one["terms"] == three["terms"] and len(one["terms"]) == 4 and one["sha256"] == three["sha256"]


def test_min_count_and_size(tmp_path):
    _shards(tmp_path)
    _, vocab = _vocab(tmp_path, "--min-count", "20", "--size", "2")
    assert [e["term"] for e in vocab["terms"]] == ["bag", "dress"] and vocab["terms"][0]["df"] == 24
    _, vocab = _vocab(tmp_path, "--min-count", "20", "--size", "9", "--overwrite")
    assert [e["term"] for e in vocab["terms"]] == ["bag", "dress", "red"]


def test_sample_reads_the_first_captions_of_evenly_spread_shards(tmp_path):
    _shards(tmp_path, n=9, per=10)
    code, vocab = _vocab(tmp_path, "--sample", "25", "--workers", "1")
    assert code == 0 and vocab["captions"] == 25 and vocab["shards_read"] == 3  # ceil(25 / 10) shards
    assert vocab["sample"] == 25


def test_a_dead_shard_and_a_cut_one_are_counted_not_fatal(tmp_path):
    _shards(tmp_path, n=3)
    (tmp_path / "shards" / "00001.tar").write_bytes(b"")  # empty file: no samples
    whole = (tmp_path / "shards" / "00002.tar").read_bytes()
    (tmp_path / "shards" / "00002.tar").write_bytes(whole[: len(whole) // 2 + 700])  # inside a member
    source = str(tmp_path / "shards" / "{00000..00003}.tar")  # 00003.tar does not exist
    code, vocab = _vocab(tmp_path, source=source)
    assert code == 0 and vocab["unreadable_shards"] == 1 and vocab["damaged_shards"] == 1
    assert 21 < vocab["samples"] < 42


def _has_wordnet() -> bool:
    from scaling.config import ConfigError
    from scaling.data.wordnet import wordnet_version

    try:
        return bool(wordnet_version())
    except ConfigError:
        return False


def _error(tmp_path: Path, capsys, *args: str, source: str | None = None) -> str:
    before = sorted(tmp_path.rglob("*"))
    code, _ = _vocab(tmp_path, *args, source=source)
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1, err
    assert sorted(tmp_path.rglob("*")) == before  # nothing written
    return err


def test_bad_inputs_are_one_line_errors_before_anything_is_written(tmp_path, capsys):
    _shards(tmp_path)
    assert "--size 0: must be an integer >= 1" in _error(tmp_path, capsys, "--size", "0")
    assert "--min-count -1" in _error(tmp_path, capsys, "--min-count", "-1")
    assert "--workers 0" in _error(tmp_path, capsys, "--workers", "0")
    if not _has_wordnet():
        assert "--synsets needs a WordNet" in _error(tmp_path, capsys, "--synsets")
    assert "none of its" in _error(tmp_path, capsys, source=str(tmp_path / "nowhere/{0..3}.tar"))
    (tmp_path / "vocab.json").mkdir()
    assert "is a folder" in _error(tmp_path, capsys)
    (tmp_path / "vocab.json").rmdir()
    (tmp_path / "plain").mkdir()
    write_tar(tmp_path / "plain" / "000.tar", [{"__key__": f"k{i}", "jpg": b"x", "cls": b"1"} for i in range(3)])
    err = _error(tmp_path, capsys, source=str(tmp_path / "plain"))
    assert "holds no captions" in err and "caption_col" in err
    caption_shards(tmp_path / "stop", [["of the", "", "and a"]])
    assert "reaches --min-count" in _error(tmp_path, capsys, source=str(tmp_path / "stop"))


def test_an_existing_file_needs_overwrite(tmp_path, capsys):
    _shards(tmp_path)
    (tmp_path / "vocab.json").write_text("precious")
    assert "--overwrite" in _error(tmp_path, capsys)
    assert (tmp_path / "vocab.json").read_text() == "precious"
    code, vocab = _vocab(tmp_path, "--overwrite")
    assert code == 0 and vocab["terms"]


@pytest.mark.parametrize("fmt", ["gnu", "pax", "ustar"])
def test_the_header_walk_reads_long_names_as_tarfile_does(tmp_path, fmt):
    """Member names over 100 bytes: GNU long-name members, pax path records, ustar prefixes."""
    import io
    import tarfile

    from scaling.data.caption_scan import shard_captions

    formats = {"gnu": tarfile.GNU_FORMAT, "pax": tarfile.PAX_FORMAT, "ustar": tarfile.USTAR_FORMAT}
    folder = "deep/" + "/".join(["d" * 40] * 3)  # 126 bytes of folders: past the 100-byte name field
    path = tmp_path / "long.tar"
    with tarfile.open(path, "w", format=formats[fmt]) as tar:
        for i, caption in enumerate(["first dress", "", "third boots", None]):
            for ext, data in (("jpg", b"\xff\xd8x\xff\xd9"), ("txt", None if caption is None else caption.encode())):
                if data is not None:
                    info = tarfile.TarInfo(f"{folder}/sample{i}.{ext}")
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))
    assert list(shard_captions(str(path))) == ["first dress", "", "third boots", None]
