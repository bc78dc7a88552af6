"""`scaling sweep SPEC.yaml --out DIR [--force]`, `scaling sweep status DIR`, `scaling sweep run DIR` (local),
`scaling sweep submit DIR` (slurm; what DIR/submit.sh runs).

Examples:
  scaling sweep jobs/sweeps/paper_grid.yaml --out /ckpt/paper_grid && bash /ckpt/paper_grid/submit.sh
  bash /ckpt/paper_grid/submit.sh      # again after a failure or a cancel: submits only what needs a job
  scaling sweep status /ckpt/paper_grid
  scaling sweep jobs/sweeps/tiny_cpu.yaml --out runs/tiny_sweep && scaling sweep run runs/tiny_sweep --jobs 2
  scaling results collect runs/tiny_sweep --out results.csv
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from scaling.config import ConfigError

EPILOG = "examples:" + __doc__.split("Examples:", 1)[1]


def _make(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="scaling sweep", description="Write a scaling study: one resolved config and "
                                "one job script per run, sweep.csv and submit.sh (also: scaling sweep status DIR, "
                                "scaling sweep run DIR, scaling sweep submit DIR).", epilog=EPILOG,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("spec", help="the sweep spec (YAML), e.g. jobs/sweeps/tiny_cpu.yaml")
    p.add_argument("--out", required=True, help="the sweep folder")
    p.add_argument("--force", action="store_true", help="write into a folder that holds something else")
    args = p.parse_args(argv)
    from scaling.sweep.spec import load_spec
    from scaling.sweep.write import write_sweep

    spec = load_spec(args.spec)
    runs, changed = write_sweep(spec, Path(args.out), force=args.force)
    hours = sum(float(r.gpu_hours) for r in runs)
    flops = sum(r.flops for r in runs)
    out = Path(args.out)
    print(f"{len(runs)} runs ({flops:.3g} FLOPs, {hours:,.1f} {spec.gpu.upper()}-hours) -> {out}; "
          f"{changed} files written" + (" (already up to date)" if not changed else ""))
    then = f"bash {out / 'submit.sh'}" if spec.scheduler == "slurm" else f"scaling sweep run {out}"
    print(f"next: {then}; then scaling sweep status {out} and scaling results collect {out}")
    return 0


def _sweep_dir(argv: list[str], command: str, description: str) -> Path:
    p = argparse.ArgumentParser(prog=f"scaling sweep {command}", description=description)
    p.add_argument("dir", help="a folder written by `scaling sweep SPEC --out DIR`")
    return Path(p.parse_args(argv).dir)


def _status(argv: list[str]) -> int:
    from scaling.sweep.status import STATES, sweep_status

    rows = sweep_status(_sweep_dir(argv, "status", "Per run: done, running, queued, requeued, blocked (waits on a "
                                   "stage 1 that failed), cancelled, failed (with the first error line of its log) "
                                   "or new. A slurm sweep asks squeue (and sacct) once for all its runs."))
    width = max((len(name) for name, _, _ in rows), default=3)
    counts: dict[str, int] = {}
    for name, state, detail in rows:
        counts[state] = counts.get(state, 0) + 1
        print(f"{name:<{width}}  {state:<9} {detail}".rstrip())
    print(", ".join(f"{counts[s]} {s}" for s in STATES if s in counts))
    return 0


def _submit(argv: list[str]) -> int:
    from scaling.sweep.slurm import SchedulerError, Slurm
    from scaling.sweep.submit import submit_sweep

    out = _sweep_dir(argv, "submit", "Submit a slurm sweep (what its submit.sh runs): every run not done and "
                     "without a live job, each stage 1 before its dependants; safe to run again.")
    if not Slurm.available():
        raise ConfigError("squeue/sbatch not found: run submit.sh on a Slurm login node")
    try:
        plan = submit_sweep(out, Slurm())
    except SchedulerError as e:
        print(f"scaling sweep submit: {e}", file=sys.stderr)
        return 1
    print(f"{len(plan.submitted)} submitted, {len(plan.kept)} already queued or running, {len(plan.done)} done"
          + (f", {len(plan.cancelled)} orphaned jobs cancelled and submitted again" if plan.cancelled else "")
          + f"; next: scaling sweep status {out}")
    return 0


def _run(argv: list[str]) -> int:
    from scaling.sweep.run import run_sweep

    p = argparse.ArgumentParser(prog="scaling sweep run", description="Run a local sweep here, in dependency "
                                "order, skipping runs already done.")
    p.add_argument("dir", help="a folder written by `scaling sweep SPEC --out DIR`")
    p.add_argument("--jobs", type=int, default=1, help="runs at once (default 1); each gets its own port, its "
                   "share of the CPU cores and, on a GPU machine, its own GPU (one-GPU runs only)")
    args = p.parse_args(argv)
    out = Path(args.dir)
    failed = sum(o.state in ("failed", "skipped") for o in run_sweep(out, jobs=args.jobs))
    print(f"{'all runs done' if not failed else f'{failed} runs did not finish'}; "
          f"next: scaling results collect {out}")
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = {"status": _status, "run": _run, "submit": _submit}.get(argv[0] if argv else "", None)
    try:
        return command(argv[1:]) if command else _make(argv)
    except (ConfigError, ValueError) as e:
        print(f"scaling sweep: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
