"""A heavy-hitters sketch of term document frequencies: memory bounded by its capacity, whatever the stream.

Misra-Gries, in its mergeable form (Agarwal et al., "Mergeable Summaries", PODS 2012): counters are added
exactly until more than 2 x `capacity` terms are held; then the (capacity + 1)-th largest document frequency
d is subtracted from every counter and the counters left at or below 0 are dropped (at most `capacity`
remain). Each prune lowers any one term's count by at most d while removing at least (capacity + 1) x d of
total count, so for every term

    df_est <= df_true <= df_est + error_bound,   error_bound = (N - sum of kept df) / (capacity + 1)

where N is the total of all document-frequency increments (terms per caption, summed). Every term with
df_true > error_bound is kept. Summaries of disjoint streams (one per worker) merge by adding counters and
pruning the same way, with the same bound over the merged N. Before the first prune the counts are exact
(error_bound 0). Occurrence counts ride along: a prune lowers them by d too and drops them with their term,
so they are lower bounds, exact for a term never pruned.
"""

from __future__ import annotations

import heapq
from collections import Counter
from typing import Any

import numpy as np

try:  # the C loop behind Counter(iterable)
    from _collections import _count_elements
except ImportError:  # pragma: no cover - other Pythons
    from collections import _count_elements  # type: ignore[attr-defined]


class TermSketch:
    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"sketch capacity {capacity}: must be >= 1.")
        self.capacity = capacity
        self.df: Counter[str] = Counter()
        self.count: Counter[str] = Counter()
        self.total = 0  # N: document-frequency increments seen
        self.prunes = 0

    def add(self, distinct: list[str], occurrences: list[str]) -> None:
        """Count a batch of captions: `distinct` holds each caption's distinct terms, back to back;
        `occurrences` all their terms, repeats included."""
        _count_elements(self.df, distinct)
        _count_elements(self.count, occurrences)
        self.total += len(distinct)
        if len(self.df) > 2 * self.capacity:
            self.prune()

    def prune(self) -> None:
        """Subtract the (capacity + 1)-th largest df from every counter; drop those left <= 0."""
        if len(self.df) <= self.capacity:
            return
        values = np.fromiter(self.df.values(), dtype=np.int64, count=len(self.df))
        d = int(np.partition(values, len(values) - self.capacity - 1)[len(values) - self.capacity - 1])
        df, count = self.df, self.count
        self.df = Counter({t: v - d for t, v in df.items() if v > d})
        self.count = Counter({t: max(count.get(t, 0) - d, v) for t, v in self.df.items()})  # count >= df
        self.prunes += 1

    def merge(self, other: TermSketch) -> None:
        self.df.update(other.df)
        self.count.update(other.count)
        self.total += other.total
        self.prunes += other.prunes
        if len(self.df) > self.capacity:
            self.prune()

    @property
    def error_bound(self) -> float:
        """The most any reported df is below the true one (0 while no prune happened)."""
        return (self.total - sum(self.df.values())) / (self.capacity + 1)

    def top(self, k: int, min_df: int = 1) -> list[tuple[str, int, int]]:
        """(term, count, df) of the k largest document frequencies >= min_df; ties by term, for a
        deterministic order. Sorts only the terms above the k-th largest df (fewer than k) and picks the
        ties at it by name: the sketch holds up to 2 x capacity terms, ten times k."""
        df = self.df
        floor = min_df
        if len(df) > k:
            values = np.fromiter(df.values(), dtype=np.int64, count=len(df))
            floor = max(min_df, int(np.partition(values, len(values) - k)[len(values) - k]))  # k-th largest
        above = sorted((-v, t) for t, v in df.items() if v > floor)
        ties = heapq.nsmallest(k - len(above), (t for t, v in df.items() if v == floor))
        return [(t, self.count[t], df[t]) for t in [t for _, t in above] + ties]

    def state(self) -> dict[str, Any]:
        """What a worker process sends back (plain data: pickles fast)."""
        return {"capacity": self.capacity, "df": dict(self.df), "count": dict(self.count), "total": self.total,
                "prunes": self.prunes}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> TermSketch:
        out = cls(state["capacity"])
        out.df, out.count = Counter(state["df"]), Counter(state["count"])
        out.total, out.prunes = state["total"], state["prunes"]
        return out
