"""Who reads what: the closed-form assignment of samples to (rank, lane, batch), identical on every rank.

Epoch mode. The shards are permuted per (seed, epoch) and concatenated into one virtual sequence of N
samples. Every rank gets `nb = N // (world_size * micro_batch)` batches per epoch, so all ranks step
together; the last `N mod (world_size * micro_batch)` positions of the permuted sequence are dropped for
that epoch (fewer than one global batch; which samples they are changes with the epoch's shard order).
Rank r owns positions [r * nb * B, (r + 1) * nb * B). Within a rank, batch i (counted across epochs) comes
from lane `i % lanes`, the order in which DataLoader hands out worker batches. Each lane reads one
contiguous stretch of the rank's range per epoch (sequential tar reads, few shards per worker), sized by how
many of the epoch's batches fall to it.

Resampled mode. Lane (rank, lane) draws shard `hash(seed, rank, lane, d) % S` for its d-th draw and reads it
whole: an infinite stream that needs no sample counts.

Every function takes numpy arrays where it can, so that `simulate_epoch` checks a 1e9-sample, 100k-shard,
1024-rank x 8-lane assignment with the very code the loader runs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from scaling.data import counter_rng

# Purposes of the counter-based random streams (a stream key is (seed, purpose, ...)).
SHARD_ORDER, BLOCK_ORDER, AUGMENT, DRAW = 1, 2, 3, 4


@dataclass(frozen=True)
class Layout:
    """The batch arithmetic every rank agrees on."""

    counts: np.ndarray  # int64 [S] samples per shard
    world_size: int
    lanes: int  # DataLoader workers per rank (1 when the pipeline runs in-process)
    micro_batch: int
    seed: int

    @property
    def total(self) -> int:
        return int(self.counts.sum())

    @property
    def batches_per_epoch(self) -> int:
        """Batches each rank yields per epoch (every rank the same)."""
        return self.total // (self.world_size * self.micro_batch)

    @property
    def dropped_per_epoch(self) -> int:
        return self.total - self.batches_per_epoch * self.world_size * self.micro_batch


def shard_order(seed: int, epoch: int, num_shards: int) -> np.ndarray:
    """The epoch's shard permutation, int64 [S]."""
    return counter_rng.permutation(counter_rng.stream_key(seed, SHARD_ORDER, epoch), num_shards)


def lane_batches(epoch: int, nb: int, lanes: int, lane: np.ndarray | int) -> np.ndarray:
    """Batches of `epoch` served by `lane`: the j in [0, nb) with (epoch * nb + j) % lanes == lane."""
    first = (np.asarray(lane, dtype=np.int64) - epoch * nb) % lanes  # first j served by the lane
    return np.where(first < nb, (nb - 1 - first) // lanes + 1, 0)


def lane_range(
    layout: Layout, epoch: int, rank: np.ndarray | int, lane: np.ndarray | int
) -> tuple[np.ndarray, np.ndarray]:
    """[start, stop) of the lane's positions in the epoch's virtual sequence (broadcast over rank, lane)."""
    nb, b = layout.batches_per_epoch, layout.micro_batch
    rank = np.asarray(rank, dtype=np.int64)
    lane = np.asarray(lane, dtype=np.int64)
    per_lane = lane_batches(epoch, nb, layout.lanes, np.arange(layout.lanes))  # [L]
    before = np.concatenate([[0], np.cumsum(per_lane)])  # batches of lanes < w, [L + 1]
    start = rank * nb * b + before[lane] * b
    return start, start + per_lane[lane] * b


def pieces(
    order: np.ndarray, counts: np.ndarray, starts: np.ndarray, stops: np.ndarray
) -> tuple[np.ndarray, ...]:
    """Cut position ranges [starts[i], stops[i]) of the virtual sequence into shard pieces.

    Returns (range_id, shard, lo, hi): range `range_id` covers samples [lo, hi) of shard `shard`, in reading
    order. All int64 [P], P <= len(starts) + S.
    """
    ends = np.cumsum(counts[order])  # end position of each permuted shard, [S]
    begins = ends - counts[order]
    starts, stops = np.asarray(starts, np.int64), np.asarray(stops, np.int64)
    first = np.searchsorted(ends, starts, side="right")  # permuted index of the shard holding `start`
    last = np.searchsorted(ends, np.maximum(stops - 1, starts), side="right")
    nonempty = stops > starts
    n_pieces = np.where(nonempty, last - first + 1, 0)
    range_id = np.repeat(np.arange(len(starts)), n_pieces)
    offset_in_range = np.arange(n_pieces.sum()) - np.repeat(np.cumsum(n_pieces) - n_pieces, n_pieces)
    slot = np.repeat(first, n_pieces) + offset_in_range  # permuted shard index of each piece
    lo = np.maximum(starts[range_id], begins[slot]) - begins[slot]
    hi = np.minimum(stops[range_id], ends[slot]) - begins[slot]
    keep = hi > lo  # empty shards inside a range give zero-length pieces
    return range_id[keep], order[slot][keep], lo[keep], hi[keep]


def lane_pieces(
    layout: Layout, epoch: int, rank: int, lane: int, order: np.ndarray
) -> list[tuple[int, int, int]]:
    """The (shard, lo, hi) pieces lane `lane` of rank `rank` reads in `epoch`, in order."""
    start, stop = lane_range(layout, epoch, np.array([rank]), np.array([lane]))
    _, shard, lo, hi = pieces(order, layout.counts, start, stop)
    return [(int(s), int(a), int(b)) for s, a, b in zip(shard, lo, hi)]


def draw_shard(seed: int, rank: int, lane: int, draw: int, num_shards: int) -> int:
    """Resampled mode: the shard of the lane's `draw`-th draw (with replacement)."""
    return int(counter_rng.integers(counter_rng.stream_key(seed, DRAW, rank, lane), draw, num_shards)[0])


def simulate_epoch(layout: Layout, epoch: int = 0) -> dict[str, int | bool]:
    """Pure-index check of one epoch at any scale: every kept sample is assigned once, ranks are equal.

    Runs `lane_range` and `pieces` (the loader's code) over every (rank, lane) at once and verifies that the
    pieces tile each shard exactly once (the shard straddling the dropped tail only up to the cut).
    """
    r, w = np.meshgrid(np.arange(layout.world_size), np.arange(layout.lanes), indexing="ij")
    starts, stops = lane_range(layout, epoch, r.ravel(), w.ravel())  # [R * L]
    order = shard_order(layout.seed, epoch, len(layout.counts))
    range_id, shard, lo, hi = pieces(order, layout.counts, starts, stops)
    per_rank = (stops - starts).reshape(layout.world_size, layout.lanes).sum(axis=1)
    kept = layout.batches_per_epoch * layout.world_size * layout.micro_batch
    # Tiling check: sort pieces by (shard, lo); inside each shard they must be back to back from 0.
    idx = np.lexsort((lo, shard))
    s, a, b = shard[idx], lo[idx], hi[idx]
    new_shard = np.r_[True, s[1:] != s[:-1]]
    contiguous = bool(np.all(np.where(new_shard, a == 0, a == np.r_[0, b[:-1]])))
    covered = np.zeros(len(layout.counts), dtype=np.int64)
    np.add.at(covered, s, b - a)
    full = covered == layout.counts
    partial = int((~full & (covered > 0)).sum())  # at most the one shard cut by the dropped tail
    lane_batch = lane_batches(epoch, layout.batches_per_epoch, layout.lanes, np.arange(layout.lanes))
    return {
        "samples": layout.total,
        "kept": int(covered.sum()),
        "dropped": layout.dropped_per_epoch,
        "pieces": len(range_id),
        "each_sample_at_most_once": contiguous and bool(np.all(covered <= layout.counts)),
        "covered_equals_kept": int(covered.sum()) == kept,
        "partial_shards": partial,
        "ranks_equal": bool(np.all(per_rank == layout.batches_per_epoch * layout.micro_batch)),
        "lane_batches_sum": int(lane_batch.sum()) == layout.batches_per_epoch,
    }
