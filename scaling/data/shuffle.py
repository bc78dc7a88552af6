"""The write-time shuffle of `scaling data write`, external: memory per input sample stays bounded at any scale.

Records (where an image's bytes are, its key and labels: never the bytes themselves) are scattered into
BUCKETS temporary files by a keyed hash of their key (blake2b, keyed by the seed); then each bucket in turn is
read, sorted by key, given unique keys, joined with the `--labels` rows that hashed to it, and put in a
random order (a generator seeded with (seed, bucket)). Each record lands in a bucket independently and
uniformly (the hash acts as a random function of the key), and each bucket is uniformly permuted, so the
concatenated buckets are a uniformly random permutation of all records (the scatter-then-shuffle method of
Rao and Sandelius), the same as shuffling everything in memory, while only one bucket (about N / BUCKETS
records: 250k at a billion inputs) and the write buffers (BUFFER_BYTES) are ever in memory. The order depends
only on the keys and the seed, not on the input order, so the same inputs give byte-identical shards.

Keys are made unique within a bucket (`key`, `key_1`, ...): repeats of a key hash to the same bucket.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from scaling.data.inputs import KeyMaker, Record

BUCKETS = 4096
BUFFER_BYTES = 16 << 20  # scatter buffers in memory before they are appended to their bucket files


class ExternalShuffle:
    def __init__(self, folder: str | Path, seed: int, buckets: int = BUCKETS) -> None:
        self.folder = Path(folder)
        self.seed, self.buckets = seed, buckets
        self._hash_key = seed.to_bytes(8, "little", signed=True)
        self._buffers: dict[int, list[str]] = {}
        self._buffered = 0
        self.records = 0
        self.max_labels = 0
        self.names: set[str] = set()  # label names of the records (before any --labels join)

    def _bucket(self, key: str) -> int:
        digest = hashlib.blake2b(key.encode(), digest_size=8, key=self._hash_key).digest()
        return int.from_bytes(digest, "little") % self.buckets

    def _put(self, key: str, line: str) -> None:
        self._buffers.setdefault(self._bucket(key), []).append(line)
        self._buffered += len(line)
        if self._buffered > BUFFER_BYTES:
            self.flush()

    def add(self, rec: Record) -> None:
        self.records += 1
        self.max_labels = max(self.max_labels, len(rec.labels))
        self._put(rec.key, json.dumps(["r", rec.key, rec.labels, rec.path, rec.offset, rec.size]) + "\n")

    def add_labels(self, key: str, labels: list[str]) -> None:
        """A `--labels` row: joined in its bucket with the record of the same key."""
        self._put(key, json.dumps(["l", key, labels]) + "\n")

    def flush(self) -> None:
        for bucket, lines in self._buffers.items():
            with open(self.folder / f"{bucket:05d}.jsonl", "a") as f:
                f.write("".join(lines))
        self._buffers, self._buffered = {}, 0

    def _read(self, bucket: int) -> list[Record]:
        path = self.folder / f"{bucket:05d}.jsonl"
        if not path.exists():
            return []
        records, table = [], {}
        with open(path) as lines:
            for line in lines:
                row = json.loads(line)
                if row[0] == "r":
                    records.append(Record(row[1], row[2], row[3], row[4], row[5]))
                else:
                    table[row[1]] = row[2]
        records.sort(key=lambda r: (r.key, r.path, r.offset))  # input order does not matter
        keys = KeyMaker()
        for r in records:
            r.key = keys(r.key)
        if table:
            for r in records:
                r.labels = table.get(r.key, [])
        return records

    def buckets_in_order(self) -> Iterator[list[Record]]:
        """Each bucket's records, unique keys, labels joined, not yet shuffled (one bucket in memory)."""
        self.flush()
        for bucket in range(self.buckets):
            yield self._read(bucket)

    def shuffled(self) -> Iterator[Record]:
        """Every record once, in a uniformly random order."""
        for bucket, records in enumerate(self.buckets_in_order()):
            order = np.random.default_rng([self.seed & 0xFFFFFFFF, bucket]).permutation(len(records))
            yield from (records[i] for i in order)

    def remove(self) -> None:
        for name in os.listdir(self.folder):
            os.remove(self.folder / name)
        self.folder.rmdir()
