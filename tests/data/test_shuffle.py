"""The external write-time shuffle: every record once, a random order that depends only on the keys and the
seed, unique keys, the --labels join, and memory that does not grow with the number of inputs."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from scaling.data import shuffle as shuffle_mod
from scaling.data.inputs import Record, open_inputs, scan
from scaling.data.shuffle import ExternalShuffle


def _records(n: int, offset: int = 0) -> list[Record]:
    return [Record(f"k{i}", [f"c{i % 3}"], f"/img/{i}.jpg") for i in range(offset, offset + n)]


def _order(tmp_path: Path, records: list[Record], seed: int = 0, buckets: int = 16) -> list[str]:
    folder = tmp_path / f"b{len(list(tmp_path.iterdir()))}"
    folder.mkdir()
    sh = ExternalShuffle(folder, seed, buckets)
    for r in records:
        sh.add(r)
    out = [r.key for r in sh.shuffled()]
    sh.remove()
    assert not folder.exists()
    return out


def test_every_record_once_in_a_random_order_that_ignores_input_order(tmp_path):
    records = _records(3000)
    order = _order(tmp_path, records)
    assert sorted(order) == sorted(r.key for r in records)
    assert _order(tmp_path, records[::-1]) == order  # same keys and seed: same order (byte-identical shards)
    assert _order(tmp_path, records, seed=1) != order
    position = np.array([int(k[1:]) for k in order])
    assert abs(np.corrcoef(position, np.arange(len(position)))[0, 1]) < 0.1
    halves = position[:1500] < 1500  # the first half of the output holds about half of the first inputs
    assert 0.45 < halves.mean() < 0.55


def test_repeated_keys_become_unique_and_labels_join(tmp_path):
    sh = ExternalShuffle(tmp_path / "b", 0, 8)
    (tmp_path / "b").mkdir()
    for r in [Record("a", [], "/1.jpg"), Record("a", [], "/2.jpg"), Record("b", [], "/3.jpg")]:
        sh.add(r)
    sh.add_labels("a", ["cat"])
    sh.add_labels("a_1", ["dog"])  # matches the renamed repeat, when it lands in the same bucket as `a`
    sh.add_labels("zzz", ["bird"])  # no such record
    got = {r.path: (r.key, r.labels) for r in sh.shuffled()}
    assert got["/1.jpg"] == ("a", ["cat"]) and got["/2.jpg"][0] == "a_1" and got["/3.jpg"] == ("b", [])


def _peak_bytes(tmp_path: Path, list_file: Path, buckets: int = shuffle_mod.BUCKETS) -> int:
    """Peak Python memory of streaming a list file through the shuffle and reading it back."""
    folder = tmp_path / f"peak{list_file.stat().st_size}"
    folder.mkdir()
    tracemalloc.start()
    sh = ExternalShuffle(folder, 0, buckets)
    for rec in open_inputs(str(list_file)).records:
        sh.add(rec)
    n = sum(1 for _ in sh.shuffled())
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    sh.remove()
    assert n == sh.records
    return peak


def _list_file(tmp_path: Path, n: int) -> Path:
    path = tmp_path / f"list{n}.txt"
    path.write_text("".join(f"images/{i:09d}.jpg class_{i % 100}\n" for i in range(n)))
    return path


def _held(list_file: Path) -> int:
    """Peak Python memory of holding every record (the writer's old in-memory shuffle; `scan` for eval sets)."""
    tracemalloc.start()
    records, _ = scan(str(list_file))
    held = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert records
    return held


def test_memory_is_one_bucket_not_all_inputs(tmp_path, monkeypatch):
    """Memory follows the bucket size (inputs / buckets) and the buffers, not the number of inputs."""
    monkeypatch.setattr(shuffle_mod, "BUFFER_BYTES", 64 << 10)
    small = _peak_bytes(tmp_path, _list_file(tmp_path, 5_000), buckets=16)
    large = _peak_bytes(tmp_path, _list_file(tmp_path, 20_000), buckets=64)  # 4x the inputs, same bucket size
    assert large < 1.3 * small, (small, large)
    assert large < 0.25 * _held(_list_file(tmp_path, 20_000))


@pytest.mark.slow
def test_memory_per_sample_on_a_million_records(tmp_path):
    """The default buffers and buckets, a million-record list: holding every Record (what the writer did
    before, and what `scan` still does for small evaluation sets) against the external shuffle."""
    n = 1_000_000
    path = _list_file(tmp_path, n)
    peak, held = _peak_bytes(tmp_path, path), _held(path)
    print(f"external shuffle: peak {peak / n:.1f} bytes per input sample; all records held: {held / n:.1f}")
    assert peak / n < 48 and held > 5 * peak
