"""CSV tables with line numbers kept, so that every complaint about the data can name its rows."""

from __future__ import annotations

import csv
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

RESULT_COLUMNS = ("run", "model", "params", "samples", "flops", "total_flops", "recipe", "metric", "value")


class DataError(ValueError):
    """Bad input data: the message names the file, rows or column, and the fix."""


@dataclass
class Table:
    columns: dict[str, list[str]]
    lines: np.ndarray  # CSV line number of each row (header is line 1)
    source: str

    def __len__(self) -> int:
        return len(self.lines)

    def has(self, name: str) -> bool:
        return name in self.columns

    def column(self, name: str) -> np.ndarray:
        if name not in self.columns:
            raise DataError(f"{self.source}: no column {name!r}; columns are: {', '.join(self.columns)}")
        return np.array(self.columns[name], dtype=object)

    def numbers(self, name: str, positive: bool = False) -> np.ndarray:
        """A numeric column; empty cells, text and NaN are errors naming the rows."""
        raw = self.column(name)
        out = np.full(len(raw), np.nan)
        for i, v in enumerate(raw):
            try:
                out[i] = float(v)
            except (TypeError, ValueError):
                pass
        bad = ~np.isfinite(out)
        if bad.any():
            raise DataError(
                f"{self.source}: column {name!r} is missing, not a number or not finite at "
                f"{self.where(bad)}; fix or drop those rows (e.g. --where to filter)"
            )
        if positive and (out <= 0).any():
            raise DataError(
                f"{self.source}: column {name!r} must be > 0 (it is logged or raised to a power) "
                f"but is <= 0 at {self.where(out <= 0)}; drop those rows or pick another column"
            )
        return out

    def where(self, mask: np.ndarray, limit: int = 8) -> str:
        """'lines 4, 9 (runs a, b)' for the rows in mask, shortened after `limit`."""
        idx = np.flatnonzero(mask)
        lines = ", ".join(str(self.lines[i]) for i in idx[:limit])
        more = f" and {len(idx) - limit} more" if len(idx) > limit else ""
        runs = ""
        if "run" in self.columns:
            runs = " (runs " + ", ".join(str(self.columns["run"][i]) for i in idx[:limit]) + ")"
        return f"line{'s' if len(idx) > 1 else ''} {lines}{more}{runs}"

    def take(self, mask: np.ndarray) -> Table:
        idx = np.flatnonzero(mask)
        cols = {k: [v[i] for i in idx] for k, v in self.columns.items()}
        return Table(cols, self.lines[idx], self.source)


def read_table(path: str | Path) -> Table:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file; pass a results CSV (build one with `scaling results collect`)")
    with path.open(newline="") as fh:
        reader = csv.reader(fh)
        header = next(reader, None)
        if not header:
            raise DataError(f"{path}: empty file; expected a CSV header such as {','.join(RESULT_COLUMNS)}")
        header = [h.strip() for h in header]
        dupes = {h for h in header if header.count(h) > 1}
        if dupes:
            raise DataError(f"{path}: column(s) {', '.join(sorted(dupes))} appear twice in the header; rename one")
        cols: dict[str, list[str]] = {h: [] for h in header}
        lines = []
        for row in reader:
            if not any(cell.strip() for cell in row):
                continue
            if len(row) != len(header):
                raise DataError(
                    f"{path}: line {reader.line_num} has {len(row)} fields, the header has "
                    f"{len(header)}; quote fields that contain commas"
                )
            for h, cell in zip(header, row):
                cols[h].append(cell.strip())
            lines.append(reader.line_num)
    return Table(cols, np.array(lines, dtype=int), str(path))


def write_table(rows: Iterable[dict], path: str | Path, first: tuple[str, ...] = RESULT_COLUMNS) -> int:
    """Write dict rows as CSV, `first` columns leading and any extra ones after; returns the row count."""
    rows = list(rows)
    extra = sorted({k for r in rows for k in r} - set(first))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=[*first, *extra], extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return len(rows)


def sha256_of(paths: Iterable[str | Path]) -> str:
    """One digest over the bytes of every input file, in order: what FIT.json was computed from."""
    h = hashlib.sha256()
    for p in paths:
        h.update(Path(p).read_bytes())
    return h.hexdigest()
