"""The --out folder: a foreign one is refused before anything is written (unless --force), a demo made with
other settings is refused, and a re-run skips the runs that finished."""

from __future__ import annotations

import json

import pytest
from demo_fixtures import finish_runs, make_folder

from scaling.config import ConfigError
from scaling.demo.cli import main
from scaling.demo.folder import STAMP, open_folder
from scaling.demo.settings import demo_settings
from scaling.demo.steps import Demo, step_stage1, step_stage2


def _tree(path):
    return sorted((str(p.relative_to(path)), p.stat().st_mtime_ns) for p in path.rglob("*"))


def test_a_folder_holding_something_else_is_refused_untouched(tmp_path, capsys):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    before = _tree(out)
    assert main(["--quick", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "not empty and holds no demo" in err and "--force" in err
    assert _tree(out) == before

    settings = open_folder(out, demo_settings(True, None, 1), force=True)  # what --force then does
    assert settings.quick and (out / STAMP).is_file() and (out / "notes.txt").read_text() == "keep me"


def test_a_file_as_out_is_refused(tmp_path, capsys):
    (tmp_path / "f").write_text("x")
    assert main(["--quick", "--out", str(tmp_path / "f")]) == 2
    assert "is a file" in capsys.readouterr().err


def test_a_demo_with_other_settings_is_refused(tmp_path):
    out = tmp_path / "demo"
    open_folder(out, demo_settings(True, None, 1), force=False)
    stamp = (out / STAMP).read_text()
    with pytest.raises(ConfigError, match="other settings.*--quick --seeds 1"):
        open_folder(out, demo_settings(False, None, 1), force=True)
    assert (out / STAMP).read_text() == stamp
    # The same flags resume it, with the number of ranks it was made with.
    assert open_folder(out, demo_settings(True, None, 2), force=False).ranks == 1


def test_rerun_skips_finished_runs(tmp_path):
    out = make_folder(tmp_path / "demo")
    finish_runs(out, {"mae_wsp": [0.8] * 3, "wsp": [0.7] * 3})
    said: list[str] = []
    demo = Demo(out, demo_settings(False, None, 1), echo=said.append)
    step_stage1(demo)  # would start training (and fail: the runs have no checkpoints) if anything were not done
    step_stage2(demo)
    assert len(said) == 9 and all("done before, skipped" in s for s in said)
    assert not list((out / "compare" / "logs").glob("*.log"))


def test_a_failed_run_stops_the_demo_with_its_log(tmp_path):
    from scaling.demo.launch import RunFailed, run_jobs

    out = make_folder(tmp_path / "demo", seeds=1)
    finish_runs(out, {"mae_wsp": [0.8], "wsp": [0.7]})
    stage1 = next((out / "compare" / "runs").glob("mae1-*"))
    (stage1 / "summary.json").unlink()
    job = next((out / "compare" / "jobs").glob("mae1-*.sh"))
    job.write_text("#!/usr/bin/env bash\necho 'config error: something named here' >&2\nexit 2\n")
    with pytest.raises(RunFailed, match="failed .*exit 2: config error: something named here.*log"):
        run_jobs(out / "compare", "mae", echo=lambda s: None)
    assert json.loads((stage1 / "metrics.jsonl").read_text().splitlines()[0])["step"] == 1  # nothing removed


def test_bad_seeds_are_refused_before_anything_is_written(tmp_path, capsys):
    assert main(["--seeds", "0", "--out", str(tmp_path / "demo")]) == 2
    assert "--seeds 0: give at least 1" in capsys.readouterr().err
    assert not (tmp_path / "demo").exists()
