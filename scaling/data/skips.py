"""Bad-data bookkeeping: count every skipped sample by kind, log a rate-limited line, never stop the run.

Kinds: corrupt_image (undecodable bytes), missing_field (no image, or no label where the stage needs one),
unknown_label (a label name outside the vocabulary), truncated_tar (the tar ends before its manifest count
or mid-member), unreadable_shard (shards that could not be opened after retries, which their reading process
then never retries: in epoch mode each distinct dead shard once per run, summed over ranks (lane.py
_first_lost); per draw in resampled mode; once per reading process where no manifest gives their counts),
samples_lost (the
manifest's samples of those shards, one per slot refilled), empty_shard (shards with no samples). Each
skipped sample's batch slot is filled with a good sample (lane.py), so the per-sample counts are also the
number of substitutions. no_label: a caption with no term of the caption vocabulary (data.caption_vocab).
"""

from __future__ import annotations

import logging
import time

log = logging.getLogger("scaling.data")

KINDS = (
    "corrupt_image",
    "missing_field",
    "unknown_label",
    "no_label",
    "truncated_tar",
    "unreadable_shard",
    "samples_lost",
    "empty_shard",
)


class SkipCounter:
    """Per-kind counts plus a warning per kind at most every `log_every_s` seconds (the first always)."""

    def __init__(self, log_every_s: float = 60.0, counts: dict[str, int] | None = None) -> None:
        self.log_every_s = log_every_s
        self.counts: dict[str, int] = {k: 0 for k in KINDS}
        self.counts.update(counts or {})
        self._last_log: dict[str, float] = {}
        self._unlogged: dict[str, int] = {}

    def add(self, kind: str, detail: str, n: int = 1, level: int = logging.WARNING) -> None:
        self.counts[kind] = self.counts.get(kind, 0) + n
        now = time.monotonic()
        last = self._last_log.get(kind)
        if last is not None and now - last < self.log_every_s:
            self._unlogged[kind] = self._unlogged.get(kind, 0) + n
            return
        hidden = self._unlogged.pop(kind, 0)
        more = f" (+{hidden} more since the last report)" if hidden else ""
        log.log(level, "data: skipped %s: %s; %d so far%s", kind, detail, self.counts[kind], more)
        self._last_log[kind] = now

    def snapshot(self) -> dict[str, int]:
        return dict(self.counts)
