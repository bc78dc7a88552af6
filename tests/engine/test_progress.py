"""The progress bar: tqdm on a terminal; whole lines (first update, every `every_s`, last) in a log."""

from __future__ import annotations

import io

from scaling.engine.progress import PlainProgress, progress_bar


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_log_gets_whole_lines_never_carriage_returns(monkeypatch):
    now = [0.0]
    monkeypatch.setattr("scaling.engine.progress.time.monotonic", lambda: now[0])
    log = io.StringIO()
    bar = progress_bar(total=6, initial=0, desc="mae vit_micro_patch4", stream=log)
    assert isinstance(bar, PlainProgress)
    for step, t in zip(range(1, 7), [0, 1, 2, 31, 32, 33]):  # as the trainer calls it: the step, then its numbers
        now[0] = float(t)
        bar.update()
        bar.set_postfix({"loss": f"{1 / step:.4f}", "img/s": "512"})
    bar.close()
    lines = log.getvalue().splitlines()
    assert "\r" not in log.getvalue()
    # step 1 (the first), step 4 (30 s after it), step 6 (the last); close adds nothing new
    assert [ln.split(",")[0] for ln in lines] == ["mae vit_micro_patch4: step 1/6 (17%)",
                                                  "mae vit_micro_patch4: step 4/6 (67%)",
                                                  "mae vit_micro_patch4: step 6/6 (100%)"]
    assert "loss 1.0000" in lines[0] and "loss 0.1667, img/s 512" in lines[-1] and "step/s" in lines[-1]


def test_a_terminal_gets_tqdm():
    from tqdm import tqdm

    bar = progress_bar(total=3, initial=1, desc="x", stream=_Terminal())
    assert isinstance(bar, tqdm)
    bar.close()


def test_a_warning_during_training_prints_above_the_bar_not_into_its_line(monkeypatch):
    """On a terminal the bar's line ends in no newline; a warning written straight to the stream was spliced
    into it. Under warnings_above_bar it goes through tqdm.write: the bar's line is cleared first, the warning
    gets a line of its own, and the bar is drawn again after it."""
    import warnings

    from scaling.engine.progress import warnings_above_bar

    term = _Terminal()
    monkeypatch.setattr("sys.stderr", term)
    bar = progress_bar(total=10, initial=0, desc="mae", stream=term)
    bar.update(3)
    bar.refresh()
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        # Python's own showwarning: formatwarning's text straight to stderr (pytest replaces it with a recorder)
        warnings.showwarning = lambda m, c, f, n, file=None, line=None: term.write(warnings.formatwarning(m, c, f, n))
        with warnings_above_bar():
            warnings.warn("an odd shard", UserWarning, stacklevel=1)
        assert warnings.showwarning.__name__ == "<lambda>"  # given back after training
    bar.close()
    text = term.getvalue()
    line = next(ln for ln in text.split("\n") if "an odd shard" in ln)
    shown = line.split("\r")[-1]  # what the terminal shows on that line: the text after its last carriage return
    assert "UserWarning: an odd shard" in shown and "mae" not in shown, repr(line)
