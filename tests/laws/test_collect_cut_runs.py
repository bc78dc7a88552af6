"""`results collect` leaves out runs cut before their end (summary.json "preempted": true: a preemption that was not
requeued, a cancel), as `scaling sweep status` does not call them done; before, they became rows with their partial
sample counts."""

from __future__ import annotations

import json

import pytest
from laws_fixtures import make_run_dir

from scaling.laws.results import collect


def test_a_cut_run_is_left_out_like_an_unfinished_one(tmp_path) -> None:
    done = make_run_dir(tmp_path, "done", 1e8, 6400, 1e15, 2.0)
    cut = make_run_dir(tmp_path, "cut", 1e8, 640, 1e14, 3.0)
    summary = json.loads((cut / "summary.json").read_text())
    (cut / "summary.json").write_text(json.dumps({**summary, "preempted": True}))
    with pytest.raises(ValueError, match=r"1 run\(s\) cut before their end \(preempted or cancelled\): .*cut "
                                         r"\(at 640 samples\).*--skip-incomplete"):
        collect([done, cut])
    with pytest.warns(UserWarning, match="cut before their end"):
        rows = collect([done, cut], skip_incomplete=True)
    assert {r["run"] for r in rows} == {"done"}
