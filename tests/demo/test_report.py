"""report.md is rebuilt from the run outputs: its numbers and verdicts follow them."""

from __future__ import annotations

import json

from demo_fixtures import curve, finish_runs, make_folder

from scaling.demo.report import build_report, write_report


def _set_eval(out, recipe: str, seed: int, name: str, value: float) -> None:
    path = next((out / "compare" / "runs").glob(f"{recipe}-*-seed{seed}")) / "summary.json"
    summary = json.loads(path.read_text())
    summary["eval"][name] = value
    path.write_text(json.dumps(summary))


def test_report_follows_one_changed_output(tmp_path):
    out = make_folder(tmp_path / "demo")
    finish_runs(out, {"mae_wsp": [0.80, 0.82, 0.81], "wsp": [0.70, 0.71, 0.72]})
    path, headline = write_report(out)
    text = path.read_text()
    assert "raised linear-probe accuracy" in headline
    assert "| linear probe top-1 | 81.0 [" in text and "| 71.0 [" in text  # means over the three seeds
    assert (out / "figures" / "convergence.png").stat().st_size > 1000

    _set_eval(out, "mae_wsp", 1, "linear_top1", 0.53)  # one run's eval output changes...
    text2, headline2 = build_report(out)
    assert text2 != text
    assert "| linear probe top-1 | 71.3 [" in text2  # ...and the report's mean with it
    assert "did not measurably change linear-probe accuracy" in headline2  # the interval now holds 0


def test_lower_accuracy_is_reported_as_lower(tmp_path):
    out = make_folder(tmp_path / "demo")
    finish_runs(out, {"mae_wsp": [0.60, 0.61, 0.62], "wsp": [0.70, 0.72, 0.71]})
    _, headline = build_report(out)
    assert "lowered linear-probe accuracy" in headline


def test_convergence_speedup_is_measured_from_the_curves(tmp_path):
    out = make_folder(tmp_path / "demo")
    # Random init ends at 1.5 after 32 steps; from MAE the loss falls twice as fast and reaches 1.5 at step 16.
    fast = [curve(2.3, 0.7, 32) for _ in range(3)]
    slow = [curve(2.3, 1.5, 32) for _ in range(3)]
    finish_runs(out, {"mae_wsp": [0.8] * 3, "wsp": [0.8] * 3}, {"mae_wsp": fast, "wsp": slow})
    text, headline = build_report(out)
    assert "sped up stage-2 convergence" in headline
    row = next(ln for ln in text.splitlines() if ln.startswith("| 0 |"))
    cells = [c.strip() for c in row.split("|")]
    # target: the random-init run's trailing mean over its last 4 steps; from MAE reaches it near step 18
    assert 1.6 < float(cells[5].rstrip("x")) < 2.0

    finish_runs(out, {"mae_wsp": [0.8] * 3, "wsp": [0.8] * 3}, {"mae_wsp": slow, "wsp": fast})
    _, headline = build_report(out)
    assert "did not speed up stage-2 convergence" in headline


def test_one_seed_gives_no_interval_and_says_so(tmp_path):
    out = make_folder(tmp_path / "demo", seeds=1)
    finish_runs(out, {"mae_wsp": [0.8], "wsp": [0.7]})
    text, headline = build_report(out)
    assert "1 seed, no interval" in headline and "raised" not in headline
    assert "10.0 (1 seed: no interval) points" in text


def test_report_only_on_a_folder_without_a_demo_names_the_fix(tmp_path, capsys):
    from scaling.demo.cli import main

    (tmp_path / "empty").mkdir()
    assert main(["--report-only", "--out", str(tmp_path / "empty")]) == 2
    err = capsys.readouterr().err
    assert "holds no demo" in err and "scaling demo --out" in err
