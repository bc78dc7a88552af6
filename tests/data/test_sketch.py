"""The heavy-hitters sketch: exact below capacity; above it, the stated error bound holds for every term,
for one stream and for merged summaries of split streams, with memory bounded by the capacity."""

from __future__ import annotations

from collections import Counter

import numpy as np

from scaling.data.sketch import TermSketch


def _zipf_captions(n: int, seed: int, vocab: int = 20_000) -> list[list[str]]:
    rng = np.random.default_rng(seed)
    words = np.minimum(rng.zipf(1.3, size=(n, 6)), vocab)
    return [list(dict.fromkeys(f"w{w}" for w in row)) for row in words]


def _feed(sketch: TermSketch, captions: list[list[str]], batch: int = 500) -> int:
    """Adds the captions in batches; returns the most counters held at any time."""
    most = 0
    for i in range(0, len(captions), batch):
        part = captions[i : i + batch]
        flat = [t for c in part for t in c]
        sketch.add(flat, flat)
        most = max(most, len(sketch.df))
    return most


def _truth(captions: list[list[str]]) -> Counter:
    return Counter(t for c in captions for t in c)


def test_exact_below_capacity():
    captions = _zipf_captions(2000, 0, vocab=300)
    sketch = TermSketch(capacity=1000)
    _feed(sketch, captions)
    truth = _truth(captions)
    assert sketch.prunes == 0 and sketch.error_bound == 0
    assert dict(sketch.df) == dict(truth) and dict(sketch.count) == dict(truth)
    top = sketch.top(5)
    assert [t for t, _, _ in top] == sorted(truth, key=lambda t: (-truth[t], t))[:5]


def test_error_bound_holds_and_memory_is_bounded():
    captions = _zipf_captions(30_000, 1)
    truth = _truth(captions)
    sketch = TermSketch(capacity=200)
    most = _feed(sketch, captions)
    bound = sketch.error_bound
    assert sketch.prunes > 0 and 0 < bound < 0.01 * len(captions)
    assert most <= 2 * 200 + 500 * 6  # 2 x capacity plus one batch's new terms
    for term, est in sketch.df.items():
        assert est <= truth[term] <= est + bound, term
    heavy = [t for t, v in truth.items() if v > bound]
    assert heavy and all(t in sketch.df for t in heavy)
    for term, count, df in sketch.top(50):
        assert df <= count <= truth[term]  # occurrence counts: lower bounds, never below df


def test_merged_summaries_keep_the_bound():
    captions = _zipf_captions(30_000, 2)
    truth = _truth(captions)
    parts = [TermSketch(capacity=200) for _ in range(3)]
    for k, part in enumerate(parts):
        _feed(part, captions[k::3])
    merged = TermSketch(200)
    for part in parts:
        merged.merge(TermSketch.from_state(part.state()))  # as the workers send them
    bound = merged.error_bound
    assert len(merged.df) <= 200 and merged.total == sum(len(c) for c in captions)
    for term, est in merged.df.items():
        assert est <= truth[term] <= est + bound, term
    assert all(t in merged.df for t, v in truth.items() if v > bound)
