"""S1 and S2 as Tissue et al. 2024 define them, and lr schedules rebuilt from settings or logs."""

from __future__ import annotations

import numpy as np
import pytest

from scaling.laws.convergence import annealing_areas, lr_per_step, lr_schedule


def _s2_double_sum(lr: np.ndarray, decay: float) -> np.ndarray:
    """The reference form: S2(s) = sum_{i<=s} sum_{k<=i} (lr_{k-1} - lr_k)^+ decay^(i-k)."""
    out = np.zeros(len(lr))
    for s in range(len(lr)):
        total = 0.0
        for i in range(s + 1):
            for k in range(1, i + 1):
                total += max(lr[k - 1] - lr[k], 0.0) * decay ** (i - k)
        out[s] = total
    return out


@pytest.mark.parametrize("kind", ["cosine", "linear", "wsd", "constant"])
def test_areas_match_the_double_sum_definition(kind: str) -> None:
    lr = lr_schedule(kind, 2e-4, 60, warmup=8, final=1e-5, decay_steps=20)
    s1, s2 = annealing_areas(lr, decay=0.9)
    assert s1 == pytest.approx(np.cumsum(lr), rel=1e-12)
    assert s2 == pytest.approx(_s2_double_sum(lr, 0.9), rel=1e-10, abs=1e-18)


def test_warmup_is_area_but_not_annealing() -> None:
    lr = lr_schedule("constant", 1e-3, 100, warmup=30)
    s1, s2 = annealing_areas(lr)
    assert s1[-1] == pytest.approx(1e-3 * (70 + 31 / 2))  # ramp (sum of k/30 for k=1..30) + 70 flat steps
    assert np.all(s2 == 0.0)  # rising lr is not annealing: a constant schedule has S2 = 0 throughout


def test_a_full_cosine_keeps_its_annealing_area() -> None:
    # Counted with rises as negative drops, a cosine back to 0 after warmup would cancel to S2 ~ 0 at the end.
    lr = lr_schedule("cosine", 1e-3, 20_000, warmup=500)
    _, s2 = annealing_areas(lr)
    assert s2[-1] > 0.5 * 1e-3 / (1 - 0.999)
    assert np.all(np.diff(s2) >= 0)


def test_schedules_have_their_shape() -> None:
    cos = lr_schedule("cosine", 1.0, 110, warmup=10, final=0.1)
    assert cos[9] == pytest.approx(1.0) and cos[-1] == pytest.approx(0.1)
    assert cos[59] == pytest.approx(0.55, abs=0.02)  # half way through the decay
    wsd = lr_schedule("wsd", 1.0, 100, warmup=0, final=0.0, decay_steps=20)
    assert np.all(wsd[:80] == 1.0) and wsd[-1] == pytest.approx(0.0)
    with pytest.raises(ValueError, match="unknown lr schedule"):
        lr_schedule("step", 1.0, 10)


def test_logged_lr_is_interpolated_to_every_step() -> None:
    lr = lr_per_step(np.array([1, 11, 21]), np.array([0.0, 1.0, 0.0]))
    assert len(lr) == 21
    assert lr[5] == pytest.approx(0.5) and lr[10] == pytest.approx(1.0) and lr[15] == pytest.approx(0.5)
