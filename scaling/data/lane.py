"""One lane = what one DataLoader worker of one rank reads: a sequence of segments, cut into shuffle blocks.

Segments: in epoch mode, segment e is the lane's contiguous range of epoch e (assignment.lane_range); in
resampled mode, segment d is the lane's d-th shard draw. A lane's position is (segment, offset), and that
pair is its whole resumable state: everything else is a pure function of it and the seed.

Shuffle: a segment is read `block` samples at a time (raw bytes, not decoded: memory stays bounded), and a
block is emitted in the order of a permutation keyed by (seed, segment, block). Resuming at (segment, q)
re-reads block q // block and skips q % block of its permuted order: the stream continues exactly.

Bad data: a slot whose sample is broken (or fails to decode) is counted by kind and filled with the next good
sample of the lane's own order, so batch shapes, batch counts and resume positions never depend on data
quality. The substitute also appears at its own turn; a duplicate per bad sample is the price. A run of
broken samples (a dead shard's piece, a truncated tar's tail) is found once, and its j-th slot takes the
first good sample at or after run end + j: distinct substitutes at O(1) per slot (scanning the run again for
every slot made a 2,000-sample dead shard cost more than the rest of the epoch). Every choice is a function of
the position and the data, so a resume continues exactly.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch

from scaling.data import assignment, counter_rng
from scaling.data.decode import ImageError
from scaling.data.reader import Item
from scaling.data.skips import SkipCounter
from scaling.data.transforms import UNIFORMS_PER_SAMPLE

MAX_SEARCH_BLOCKS = 64  # how far (in blocks) a substitute is looked for before the lane gives up
MAX_EMPTY_SEGMENTS = 10_000
_NONE = np.zeros(0)


@dataclass
class Plan:
    """Everything a lane needs, identical in every worker of every rank (pickled into workers)."""

    mode: str  # "epoch" | "resampled"
    seed: int
    rank: int
    world_size: int
    lanes: int
    micro_batch: int
    block: int
    counts: np.ndarray | None  # int64 [S]; required in epoch mode
    num_shards: int

    @property
    def layout(self) -> assignment.Layout:
        assert self.counts is not None
        return assignment.Layout(self.counts, self.world_size, self.lanes, self.micro_batch, self.seed)


@dataclass
class Segment:
    pieces: list[tuple[int, int, int | None]]  # (shard, lo, hi) in reading order; hi None: to the shard's end
    length: int | None  # samples; None until read (resampled mode without counts)
    aug_key: int  # counter_rng key of the per-sample augmentation uniforms
    aug_base: int  # added to the offset: the sample's index in its augmentation stream
    block_key: int


class Lane:
    """Yields (items [B], uniforms [B, U]) batch slots for lane `lane` from position (segment, offset)."""

    def __init__(
        self,
        plan: Plan,
        read: Callable[..., Iterator[Item]],
        lane: int,
        segment: int,
        offset: int,
        skips: SkipCounter,
    ) -> None:
        self.plan, self.read, self.lane, self.skips = plan, read, lane, skips
        self.segment, self.offset = segment, offset
        self._segments: OrderedDict[int, Segment] = OrderedDict()
        self._blocks: OrderedDict[tuple[int, int], list[Item]] = OrderedDict()  # permuted block items
        self._bad: set[tuple[int, int]] = set()  # (segment, position) found undecodable
        # Open readers by (segment, next position): the lane's own and the substitution look-ahead, so that
        # filling a broken run does not re-open and re-walk a tar for every block.
        self._cursors: OrderedDict[tuple[int, int], Iterator[Item]] = OrderedDict()
        self._orders: dict[int, np.ndarray] = {}
        self._runs: OrderedDict[tuple[int, int], int] = OrderedDict()  # (segment, start) -> end: broken runs

    # -- segments ---------------------------------------------------------------------------------------
    def _get_segment(self, seg: int) -> Segment:
        if seg not in self._segments:
            self._segments[seg] = self._make_segment(seg)
            while len(self._segments) > 4:
                self._segments.popitem(last=False)
        return self._segments[seg]

    def _make_segment(self, seg: int) -> Segment:
        p = self.plan
        if p.mode == "epoch":
            layout = p.layout
            if seg not in self._orders:
                self._orders = {seg: assignment.shard_order(p.seed, seg, p.num_shards)}
            order = self._orders[seg]
            start, stop = assignment.lane_range(layout, seg, p.rank, self.lane)
            pieces = assignment.lane_pieces(layout, seg, p.rank, self.lane, order)
            return Segment(
                list(pieces),
                int(stop - start),
                counter_rng.stream_key(p.seed, assignment.AUGMENT, seg),
                int(start),
                counter_rng.stream_key(p.seed, assignment.BLOCK_ORDER, seg, p.rank, self.lane),
            )
        shard = assignment.draw_shard(p.seed, p.rank, self.lane, seg, p.num_shards)
        length = None if p.counts is None else int(p.counts[shard])
        key = counter_rng.stream_key(p.seed, assignment.AUGMENT, p.rank, self.lane, seg)
        return Segment(
            [(shard, 0, length)],
            length,
            key,
            0,
            counter_rng.stream_key(p.seed, assignment.BLOCK_ORDER, p.rank, self.lane, seg),
        )

    def where(self) -> dict[str, int]:
        """The shard and in-shard offset where the block holding the next slot starts (for humans)."""
        seg = self._get_segment(self.segment)
        start = self.offset - self.offset % self.plan.block
        for shard, lo, hi in seg.pieces:
            n = (hi - lo) if hi is not None else start + 1
            if start < n:
                return {"shard": shard, "shard_offset": lo + start}
            start -= n
        return {"shard": -1, "shard_offset": 0}

    # -- blocks -----------------------------------------------------------------------------------------
    def _reader_from(self, seg: Segment, pos: int) -> Iterator[Item]:
        for shard, lo, hi in seg.pieces:
            n = None if hi is None else hi - lo
            if n is not None and pos >= n:
                pos -= n
                continue
            yield from self.read(shard, lo + pos, hi, self.skips)
            pos = 0

    def _block(self, seg_id: int, b: int) -> list[Item]:
        """Items of block b of segment seg_id, in shuffled order (cached: substitution looks ahead)."""
        if (seg_id, b) in self._blocks:
            self._blocks.move_to_end((seg_id, b))
            return self._blocks[(seg_id, b)]
        seg, k = self._get_segment(seg_id), self.plan.block
        start = b * k
        want = k if seg.length is None else max(0, min(k, seg.length - start))
        reader = self._cursors.pop((seg_id, start), None) or self._reader_from(seg, start)
        items = [it for _, it in zip(range(want), reader)]
        self._cursors[(seg_id, start + len(items))] = reader
        while len(self._cursors) > 2:
            self._cursors.popitem(last=False)
        if seg.length is None and len(items) < k:
            seg.length = start + len(items)  # the shard ended inside this block
        perm = counter_rng.permutation(counter_rng.stream_key(seg.block_key, b), len(items))
        block = [items[i] for i in perm]
        self._blocks[(seg_id, b)] = block
        while len(self._blocks) > 3:
            self._blocks.popitem(last=False)
        return block

    def _item(self, seg_id: int, pos: int) -> Item | None:
        """The item at (segment, position), or None past the segment's end."""
        seg = self._get_segment(seg_id)
        if seg.length is not None and pos >= seg.length:
            return None
        block = self._block(seg_id, pos // self.plan.block)
        j = pos % self.plan.block
        return block[j] if j < len(block) else None

    # -- slots ------------------------------------------------------------------------------------------
    def _advance(self, seg_id: int, pos: int) -> tuple[int, int, Item]:
        """The first existing position at or after (seg_id, pos), crossing empty segments."""
        empty = 0
        while True:
            item = self._item(seg_id, pos)
            if item is not None:
                return seg_id, pos, item
            seg_id, pos, empty = seg_id + 1, 0, empty + 1
            if empty > MAX_EMPTY_SEGMENTS:
                raise RuntimeError(
                    f"data: rank {self.plan.rank} lane {self.lane} found no samples in {MAX_EMPTY_SEGMENTS} "
                    "segments in a row: every shard it draws is empty or unreadable. Check the shards with "
                    "`scaling data inspect`."
                )

    def _broken(self, seg_id: int, pos: int) -> bool:
        item = self._item(seg_id, pos)
        return item is not None and item.problem is not None

    def _broken_run(self, seg_id: int, pos: int) -> tuple[int, int]:
        """[start, end) of the run of broken items of segment seg_id around pos (one scan per run)."""
        for (seg, start), end in self._runs.items():
            if seg == seg_id and start <= pos < end:
                return start, end
        start, end = pos, pos + 1
        while start > 0 and self._broken(seg_id, start - 1):
            start -= 1
        while self._broken(seg_id, end):
            end += 1
        self._runs[(seg_id, start)] = end
        while len(self._runs) > 4:
            self._runs.popitem(last=False)
        return start, end

    def _first_lost(self, seg_id: int, item: Item) -> bool:
        """Does this lost sample count its dead shard? Once per run over every lane and rank (so the ranks'
        counters sum to the distinct dead shards): at the shard's first sample, which one lane reads per epoch,
        in the first epoch that reads it (an epoch's last, less-than-a-global-batch stretch is not read).
        A shard that dies only after that epoch shows in samples_lost, not here: no rank can tell it from one
        counted before without a collective. Resampled mode: once per draw (a draw is the whole shard).
        A function of the position and the data, so the count survives a resume unchanged."""
        if item.index != 0:
            return False
        p = self.plan
        if p.mode != "epoch":
            return True
        layout = p.layout
        read = layout.batches_per_epoch * p.world_size * p.micro_batch
        for epoch in range(seg_id):  # only when a dead shard is met: O(epochs x shards) then
            order = assignment.shard_order(p.seed, epoch, p.num_shards)
            if p.counts[order[: int(np.flatnonzero(order == item.shard)[0])]].sum() < read:
                return False
        return True

    def _forward(self, seg_id: int, pos: int) -> tuple[int, int]:
        """(segment, position) for a position counted past its segment's end into the next segments."""
        for _ in range(MAX_EMPTY_SEGMENTS):
            length = self._get_segment(seg_id).length
            if length is None or pos < length:
                break
            seg_id, pos = seg_id + 1, pos - length
        return seg_id, pos

    def _substitute(self, seg_id: int, pos: int, fill: Callable[[Item], None]) -> Item:
        """Fill with a good item after (seg_id, pos) in lane order (see the module doc); returns the item used."""
        seg_id, pos = self._forward(seg_id, pos + 1) if not self._broken(seg_id, pos) else (seg_id, pos)
        for _ in range(MAX_SEARCH_BLOCKS):  # a target inside a broken run moves past it by its offset in it
            if not self._broken(seg_id, pos):
                break
            start, end = self._broken_run(seg_id, pos)
            seg_id, pos = self._forward(seg_id, end + pos - start)
        limit = MAX_SEARCH_BLOCKS * self.plan.block
        for _ in range(limit):
            seg_id, pos, item = self._advance(seg_id, pos)
            if item.problem is None and (seg_id, pos) not in self._bad:
                try:
                    fill(item)
                    return item
                except ImageError:
                    self._bad.add((seg_id, pos))
            pos += 1
        raise RuntimeError(
            f"data: rank {self.plan.rank} lane {self.lane} found no usable sample in {limit} samples after "
            f"segment {seg_id}; the shards look broken: check them with `scaling data inspect`."
        )

    def batches(
        self, put: Callable[[int, Item, np.ndarray], None], augment: bool = True
    ) -> Iterator[list[Item]]:
        """Forever: fill B slots by calling put(i, item, uniforms[U]) (which may raise ImageError), then yield
        the B items used; self.segment / self.offset then point at the next slot. augment=False passes no
        uniforms (synthetic data needs none, and 32 px batches must stay cheap)."""
        b = self.plan.micro_batch
        while True:
            used: list[Item] = []
            for i in range(b):
                seg_id, pos, item = self._advance(self.segment, self.offset)
                seg = self._get_segment(seg_id)
                u = (
                    counter_rng.uniforms(seg.aug_key, seg.aug_base + pos, UNIFORMS_PER_SAMPLE)[0]
                    if augment
                    else _NONE
                )
                fill = lambda it, i=i, u=u: put(i, it, u)  # noqa: B023 (bound through defaults)
                if item.problem is not None:
                    if item.problem == "samples_lost" and self._first_lost(seg_id, item):
                        self.skips.add("unreadable_shard", item.detail, level=logging.ERROR)
                    self.skips.add(item.problem, item.detail or str(item.key))
                    item = self._substitute(seg_id, pos, fill)
                elif (seg_id, pos) in self._bad:
                    self.skips.add("corrupt_image", str(item.key))
                    item = self._substitute(seg_id, pos, fill)
                else:
                    try:
                        fill(item)
                    except ImageError as e:
                        self._bad.add((seg_id, pos))
                        self.skips.add("corrupt_image", f"{item.key}: {e}")
                        item = self._substitute(seg_id, pos, fill)
                used.append(item)
                self.segment, self.offset = seg_id, pos + 1
            self._bad = {bp for bp in self._bad if bp >= (self.segment, self.offset)}
            yield used


def pad_labels(items: list[Item]) -> torch.Tensor:
    """int64 [B, L] label ids, -1 padded, L = the most labels in the batch (>= 1)."""
    width = max([1] + [len(it.labels or []) for it in items])
    out = torch.full((len(items), width), -1, dtype=torch.int64)
    for i, it in enumerate(items):
        if it.labels:
            out[i, : len(it.labels)] = torch.as_tensor(it.labels, dtype=torch.int64)
    return out
