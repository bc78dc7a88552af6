"""What our entry points let through to the terminal: known library noise a user cannot act on is dropped.

Each filter names one exact message (and its category or logger); nothing is silenced wholesale, so any new
warning still shows. `scaling train --verbose` (or SCALING_VERBOSE=1 for every command) skips
`quiet_known_noise()` and shows everything. Calling it twice adds nothing twice.
"""

from __future__ import annotations

import logging
import re
import sys
import warnings

# (category, message regex). torch 2.6+ deprecates the collectives DeepSpeed 0.19's ZeRO-3 calls twice per step
# (c10d_logger.py); the warning is re-armed each time something touches the warnings filters, so an 11,000-line
# tiny run printed it ~350 times per 100 steps. Nothing in this project calls them.
KNOWN_WARNINGS: tuple[tuple[type[Warning], str], ...] = (
    (FutureWarning, r"`torch\.distributed\.reduce_scatter_tensor` is deprecated"),
    (FutureWarning, r"`torch\.distributed\.all_gather_into_tensor` is deprecated"),
)
# (logger name, message prefix): start-up notices of a CPU-only machine, where they state the obvious.
KNOWN_LOG_LINES: tuple[tuple[str, str], ...] = (
    ("DeepSpeed", "Setting accelerator to CPU. If you have GPU or other accelerator, we were unable to detect it."),
    ("torch.utils.cpp_extension", "No CUDA runtime is found, using CUDA_HOME="),
)
# Lines DeepSpeed print()s on stdout: building/loading its CPU communication op, and zero_to_fp32's account of
# the checkpoint it consolidates (`scaling export`, init_from).
KNOWN_STDOUT_LINES: tuple[re.Pattern[str], ...] = (
    re.compile(r"^DeepSpeed deepspeed\.ops\.comm\.\w+ built successfully$"),
    re.compile(r"^Processing zero checkpoint '.*'$"),
    re.compile(r"^Parsing checkpoint created by deepspeed==\S+$"),
    re.compile(r"^Detected checkpoint of type zero stage \S+, world_size: \d+$"),
    re.compile(r"^Reconstructed (Frozen|Trainable) fp32 state dict with \d+ params \d+ elements$"),
)


_installed = False


class _DropMessages(logging.Filter):
    def __init__(self, prefixes: list[str]) -> None:
        super().__init__()
        self.prefixes = tuple(prefixes)

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(self.prefixes)


class LineFilter:
    """A text stream that drops whole lines matching KNOWN_STDOUT_LINES and passes everything else on."""

    def __init__(self, stream) -> None:
        self._stream, self._pending = stream, ""

    def write(self, text: str) -> int:
        self._pending += text
        *lines, self._pending = self._pending.split("\n")
        for line in lines:
            if not any(p.match(line) for p in KNOWN_STDOUT_LINES):
                self._stream.write(line + "\n")
        return len(text)

    def flush(self) -> None:
        if self._pending and not any(p.match(self._pending) for p in KNOWN_STDOUT_LINES):
            self._stream.write(self._pending)
            self._pending = ""
        self._stream.flush()

    def __getattr__(self, name: str):  # isatty, fileno, encoding, ...
        return getattr(self._stream, name)


def ignore_known_warnings() -> None:
    for category, message in KNOWN_WARNINGS:
        warnings.filterwarnings("ignore", message=message, category=category)


def quiet_known_noise() -> None:
    """Install the filters above in this process (before deepspeed or torch.distributed is imported)."""
    global _installed
    if _installed:
        return
    _installed = True
    ignore_known_warnings()
    by_logger: dict[str, list[str]] = {}
    for name, prefix in KNOWN_LOG_LINES:
        by_logger.setdefault(name, []).append(prefix)
    for name, prefixes in by_logger.items():
        logging.getLogger(name).addFilter(_DropMessages(prefixes))  # the logger object outlives its setup
    if not isinstance(sys.stdout, LineFilter):
        sys.stdout = LineFilter(sys.stdout)
