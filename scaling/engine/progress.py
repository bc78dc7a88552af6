"""The training progress bar: tqdm on a terminal, plain periodic lines in a log.

tqdm redraws its bar with carriage returns. In a file (a Slurm job's log, nohup, a pipe) that made one line of
megabytes with every log message spliced into it, so when the stream is not a TTY the first step, the first step
`every_s` seconds after the last printed line, and the last step each print one whole line:
  mae vit_micro_patch4: step 40/64 (62%), loss 0.4127, 512 img/s, 3.1 step/s, 0:00:13
"""

from __future__ import annotations

import contextlib
import datetime
import sys
import time
import warnings
from collections.abc import Iterator
from typing import Any, TextIO


class PlainProgress:
    """The subset of tqdm's interface the metrics logger uses (update, set_postfix, close), as whole lines. A line
    that is due is printed when the step's numbers arrive (set_postfix, right after update in the trainer) or at
    close, so it never shows the previous step's loss."""

    def __init__(self, total: int, initial: int, desc: str, every_s: float = 30.0, stream: TextIO | None = None):
        self.total, self.n, self.desc, self.every_s = total, initial, desc, every_s
        self.stream = stream or sys.stderr
        self.postfix: dict[str, Any] = {}
        self.start, self.start_n = time.monotonic(), initial
        self.printed_at: float | None = None
        self.due = False  # a line waits for the step's numbers
        self.printed_n = -1

    def update(self, n: int = 1) -> None:
        self.n += n
        now = time.monotonic()
        if self.printed_at is None or now - self.printed_at >= self.every_s or self.n >= self.total:
            self.due = True

    def set_postfix(self, postfix: dict[str, Any], refresh: bool = False) -> None:  # noqa: ARG002 (tqdm's)
        self.postfix = dict(postfix)
        if self.due:
            self._print()

    def close(self) -> None:
        if self.due or self.printed_n != self.n:
            self._print()

    def _print(self) -> None:
        now = time.monotonic()
        seconds = now - self.start
        rate = (self.n - self.start_n) / seconds if seconds > 0 else 0.0
        parts = [f"step {self.n}/{self.total} ({100 * self.n / max(self.total, 1):.0f}%)"]
        parts += [f"{k} {v}" for k, v in self.postfix.items()]
        parts += [f"{rate:.2f} step/s", str(datetime.timedelta(seconds=round(seconds)))]
        self.stream.write(f"{self.desc}: {', '.join(parts)}\n")
        self.stream.flush()
        self.printed_at, self.printed_n, self.due = now, self.n, False


def progress_bar(total: int, initial: int, desc: str, stream: TextIO | None = None):
    """tqdm when `stream` (stderr by default) is a terminal, else PlainProgress."""
    stream = stream or sys.stderr
    if stream.isatty():
        from tqdm import tqdm

        return tqdm(total=total, initial=initial, desc=desc, unit="step", dynamic_ncols=True, file=stream)
    return PlainProgress(total, initial, desc, stream=stream)


@contextlib.contextmanager
def warnings_above_bar() -> Iterator[None]:
    """Python warnings printed through tqdm.write while training: on a terminal above the bar, not spliced into
    its line (logging_redirect_tqdm does this for log records; warnings go through warnings.showwarning)."""
    from tqdm import tqdm

    shown = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None) -> None:
        text = warnings.formatwarning(message, category, filename, lineno, line).rstrip("\n")
        tqdm.write(text, file=file or sys.stderr)

    warnings.showwarning = show
    try:
        yield
    finally:
        warnings.showwarning = shown
