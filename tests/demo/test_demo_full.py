"""The full `scaling demo` (3 seeds, the 2-model sweep) end to end: stage 2 learns, the sweep spans a range
and rises with compute, and the held-out runs are predicted and checked. About 8 minutes on 2 CPU cores."""

from __future__ import annotations

import pytest
from demo_checks import (
    check_held_out_prediction,
    check_next_runs,
    check_stage2_learns,
    check_sweep_spans_and_rises,
    demo,
)


@pytest.mark.slow
def test_full_demo_trains_spans_and_predicts(tmp_path):
    out = tmp_path / "demo"
    done = demo("--out", str(out))
    assert done.returncode == 0, done.stdout + done.stderr
    check_stage2_learns(out)
    check_sweep_spans_and_rises(out)
    check_next_runs(out)
    report = (out / "report.md").read_text()
    assert "3 seeds" in report and "(1 seed, no interval)" not in report
    check_held_out_prediction(out)
