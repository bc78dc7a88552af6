"""The demo's --out folder: DIR/demo.json records the settings it was made with, so a re-run resumes with
the same ones (finished steps are skipped) and a folder that holds something else is refused."""

from __future__ import annotations

import json
from pathlib import Path

from scaling.config import ConfigError
from scaling.demo.settings import DemoSettings
from scaling.engine.run_dir import write_json

STAMP = "demo.json"


def open_folder(out: Path, settings: DemoSettings, force: bool) -> DemoSettings:
    """The settings to run with: the folder's own when it holds this demo already (its number of ranks is
    kept, so a resumed run keeps its world size). Refuses, before writing anything, a folder that holds
    something else (unless force) or a demo made with other settings."""
    stamp = out / STAMP
    if stamp.is_file():
        saved = DemoSettings(**json.loads(stamp.read_text())["settings"])
        mine = {**settings.as_dict(), "ranks": saved.ranks}
        diff = [k for k, v in mine.items() if saved.as_dict()[k] != v]
        if diff:
            flag = "--quick" if saved.quick else "no --quick"
            raise ConfigError(f"{out} holds a demo made with other settings ({', '.join(diff)} differ; it was made "
                              f"with {flag} --seeds {saved.seeds}, or by another version of the demo); re-run "
                              "with those flags to resume it, or choose another --out.")
        return saved
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file; give a folder (new or empty).")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise ConfigError(f"--out {out} is not empty and holds no demo ({STAMP} missing); choose a new or empty "
                          "folder, or pass --force to write the demo into it (its files are left alone).")
    out.mkdir(parents=True, exist_ok=True)
    write_json(stamp, {"settings": settings.as_dict(), "steps": {}})
    return settings


def record_step(out: Path, step: str, seconds: float, summary: str) -> None:
    """Each finished step's wall time and summary line (the report's timing table)."""
    data = json.loads((out / STAMP).read_text())
    data["steps"][step] = {"seconds": round(seconds, 1), "summary": summary}
    write_json(out / STAMP, data)


def read_stamp(out: Path) -> dict:
    path = out / STAMP
    if not path.is_file():
        raise ConfigError(f"{out} holds no demo ({STAMP} missing); run `scaling demo --out {out}` first.")
    return json.loads(path.read_text())
