"""Wall time of `scaling demo --quick` and of the full `scaling demo`, each in a fresh folder, as a user runs
them (targets on 2 CPU cores: 2 and 10 minutes). Writes the times, each step's seconds (from DIR/demo.json),
the load average before and after each demo and the machine to a JSON file. Run it by hand on an otherwise
idle machine (on a shared one, under its lock, and say so with --conditions):

  python benchmarks/demo_timing.py --out benchmarks/results/demo_timing_cpu.json [--quick-only] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _versions() -> dict[str, str]:
    from importlib.metadata import version

    return {name: version(name) for name in ("torch", "deepspeed")}


def time_demo(args: list[str], folder: Path) -> dict:
    scaling = shutil.which("scaling") or f"{sys.executable} -m scaling"
    load_before, start = os.getloadavg(), time.perf_counter()
    proc = subprocess.run([*scaling.split(), "demo", *args, "--out", str(folder)], capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if proc.returncode:
        raise SystemExit(f"scaling demo {' '.join(args)} failed:\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    stamp = json.loads((folder / "demo.json").read_text())
    return {"command": f"scaling demo {' '.join(args)}".strip(), "wall_s": round(seconds, 1),
            "loadavg_1_5_15_before": [round(v, 2) for v in load_before],
            "loadavg_1_5_15_after": [round(v, 2) for v in os.getloadavg()],
            "first_line": proc.stdout.splitlines()[0],
            "steps_s": {k: v["seconds"] for k, v in stamp["steps"].items()}}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True, help="the JSON file to write")
    p.add_argument("--quick-only", action="store_true", help="time --quick only")
    p.add_argument("--keep", default="", help="write the demo folders here (DIR/quick, DIR/full; new or empty) and "
                   "keep them, instead of a temporary folder")
    p.add_argument("--conditions", default="an otherwise idle machine",
                   help="what else ran on the machine, for the JSON (e.g. 'shared box, under its heavy-work lock')")
    args = p.parse_args()
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(args.keep or tmp)
        for flags in (["--quick"],) if args.quick_only else (["--quick"], []):
            runs.append(time_demo(flags, root / ("quick" if flags else "full")))
            print(f"{runs[-1]['command']}: {runs[-1]['wall_s']} s", flush=True)
    result = {"machine": {"cpus": len(os.sched_getaffinity(0)), "processor": platform.processor() or platform.machine(),
                          "python": platform.python_version(), **_versions()},
              "conditions": args.conditions, "date": time.strftime("%Y-%m-%d"), "runs": runs}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
