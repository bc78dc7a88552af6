"""What a first `scaling train` prints: a few lines, its progress, no library noise, and what to run next."""

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _train(tmp_path: Path, *extra: str) -> str:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    env.pop("RANK", None)
    proc = subprocess.run([sys.executable, "-m", "scaling.train", *extra, "--config", "configs/tiny/mae.yaml",
                           f"run_dir={tmp_path / 'run'}", "overwrite=true", "total_samples=384"],
                          cwd=REPO, env=env, capture_output=True, timeout=600)
    out = (proc.stdout + proc.stderr).decode()  # bytes: text mode would turn tqdm's \r into line breaks
    assert proc.returncode == 0, out[-3000:]
    return out


def _visible_lines(text: str) -> list[str]:
    """What a terminal shows: per line, the text after the last carriage return (tqdm redraws with \\r)."""
    return [line.rsplit("\r", 1)[-1] for line in text.split("\n") if line.rsplit("\r", 1)[-1].strip()]


def test_tiny_run_prints_few_lines_one_bar_and_what_next(tmp_path):
    out = _train(tmp_path)
    lines = _visible_lines(out)
    assert len(out.split("\n")) <= 15, out[-3000:]  # 6 steps; the old code printed ~90 warning lines per step
    assert "Warning" not in out and "deprecated" not in out, out[-3000:]
    bars = [line for line in lines if "step/s" in line]
    # not a terminal (a log): the progress as whole lines (the first step, then every 30 s, the last), no \r redraws
    assert "\r" not in out and 1 <= len(bars) <= 3 and "step 6/6 (100%)" in bars[-1], bars
    said = [line for line in out.split("\n") if "kernels=auto" in line]  # raw lines: \r-redraws included
    assert len(said) == 1 and "|" not in said[0] and "step" not in said[0], said  # once, not inside the bar
    run = tmp_path / "run"
    assert f"outputs: {run}/" in out
    assert f"tensorboard --logdir {run / 'tb'}" in out
    assert f"scaling export {run} " in out
    assert f"scaling train --config configs/tiny/wsp.yaml init_from={run} " in out  # a config that exists


def test_verbose_shows_the_library_warnings(tmp_path):
    out = _train(tmp_path, "--verbose")
    assert "FutureWarning: `torch.distributed.reduce_scatter_tensor` is deprecated" in out


def test_what_next_names_the_next_stage_and_resume():
    from scaling.engine.config import load_config
    from scaling.train import what_next

    wsp = load_config(None, ["stage=wsp", "run_dir=runs/w"])
    text = what_next(wsp, {"preempted": True}, "configs/wsp/vit_huge_patch14.yaml")
    assert "resume=auto" in text and "--with-head" in text
    assert "scaling train --config configs/finetune/vit_huge_patch14.yaml init_from=runs/w" in text
    mae = load_config(None, ["stage=mae", "run_dir=runs/m"])
    text = what_next(mae, {"preempted": False}, "configs/mae/vit_2b_patch14.yaml")
    assert "resume=auto" not in text
    assert "scaling train --config configs/wsp/vit_2b_patch14.yaml init_from=runs/m run_dir=runs/m_wsp" in text
    assert "--config WSP_CONFIG.yaml" in what_next(mae, {}, None)  # no config file to pair with


def test_a_reader_that_leaves_early_gets_no_traceback():
    """`scaling plan ... | head -1`: the pipe closes before the output is written; one exit code, no traceback
    (there were two: the print's and LineFilter's flush at exit)."""
    proc = subprocess.Popen([sys.executable, "-m", "scaling.cli", "plan", "--model", "vit_huge_patch14", "--stage",
                             "wsp", "--gpus", "64", "--gpu", "h100"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    proc.stdout.close()  # long before the interpreter has imported anything
    err = proc.stderr.read()
    assert proc.wait(timeout=120) == 1 and "Traceback" not in err and "Broken pipe" not in err, err
