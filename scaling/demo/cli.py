"""`scaling demo [--out DIR] [--quick] [--seeds N] [--verbose] [--force]`: a miniature scaling study on the
bundled Fashion-MNIST subset, ending in DIR/report.md: did MAE pre-pretraining speed up stage 2 and raise
accuracy, and does the sweep's fit predict its held-out largest runs?

Examples:
  scaling demo --quick                 # every stage, shrunk: @QUICK@ on 2 CPU cores
  scaling demo --out runs/demo         # 3 seeds, a 2 x 4 x 2 sweep: about 4.5 minutes on 2 CPU cores
  scaling demo --out runs/demo         # again: finished steps are skipped, an interrupted run resumes
  scaling demo --report-only --out runs/demo   # rebuild report.md from the run outputs

--quick: 1 seed (unless --seeds), one pass of stage 1, half the stage-2 samples, a sweep of the smaller model x 5
budgets (10 stage-2 runs, not 16), probes on 2,000 of the 10,000 training images. With 2 free cores, 2 runs go at
once.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import time
from pathlib import Path

from scaling.config import ConfigError


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="scaling demo", description=__doc__.split("\n\n")[0],
                                epilog="examples:" + __doc__.split("Examples:", 1)[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="", help="the demo folder (default runs/demo, runs/demo_quick with --quick)")
    p.add_argument("--quick", action="store_true",
                   help="every stage, shrunk (10 sweep runs, 1 seed): @QUICK@ on 2 cores")
    p.add_argument("--seeds", type=int, default=None, help="seeds of the main comparison (default 3; 1 with --quick)")
    p.add_argument("--ranks", choices=("1", "2"), default="1",
                   help="ranks per main-comparison run: 1 process (default: at these sizes the launcher's start-up "
                   "costs more than a second rank gives), or 2 under the DeepSpeed launcher (kept for the folder once "
                   "chosen)")
    p.add_argument("--verbose", action="store_true", help="show every command's own output")
    p.add_argument("--force", action="store_true", help="write into a folder that holds other files")
    p.add_argument("--report-only", action="store_true", help="only rebuild DIR/report.md from the run outputs")
    return p.parse_args(argv)


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 90 else f"{int(seconds // 60)} min {seconds % 60:02.0f} s"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(list(sys.argv[1:] if argv is None else argv))
    out = Path(args.out or ("runs/demo_quick" if args.quick else "runs/demo")).resolve()
    # Library INFO lines (eval, DeepSpeed) only with --verbose; the commands' mains then find logging set up.
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")
    from scaling.demo.folder import open_folder, read_stamp, record_step
    from scaling.demo.settings import demo_settings

    try:
        if args.report_only:
            read_stamp(out)
            from scaling.demo.report import write_report

            path, headline = write_report(out)
            print(f"{headline}\nwrote {path}")
            return 0
        settings = open_folder(out, demo_settings(args.quick, args.seeds, int(args.ranks)), args.force)
    except (ConfigError, ValueError) as e:
        print(f"scaling demo: {e}", file=sys.stderr)
        return 2
    from scaling.demo.launch import RunFailed

    # SIGTERM unwinds like Ctrl-C, so a running training job is stopped (and checkpoints) with the demo.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    from scaling.demo.stats import plural
    from scaling.demo.steps import STEPS, Demo

    s = settings
    # 2 runs at once wherever 2 cores are allowed, one thread each (`scaling sweep run --jobs 2`): a run's
    # start-up (importing torch and DeepSpeed, building the engine: ~5 s) is one core's work, and one thread per
    # run does more per core than two threads on one run (micro at 16 px: 2,039 img/s on one thread, 3,255 on
    # two). Not only when the cores look idle at start: on a shared box a passing blip then made the runs go one
    # at a time (--quick measured 172 s instead of ~90 s); two runs share whatever is free instead.
    jobs = min(2, len(os.sched_getaffinity(0)))
    how = "2 ranks per run (DeepSpeed launcher)" if s.ranks == 2 else "1 process per run"
    print(f"scaling demo{' --quick' if s.quick else ''}: {s.model}, {plural(s.seeds, 'seed')}, {how}"
          f"{', 2 runs at once' if jobs == 2 else ''} -> {out}")
    demo, start = Demo(out, s, echo=print, verbose=args.verbose, jobs=jobs), time.perf_counter()
    done = read_stamp(out)["steps"]
    for i, (key, title, step) in enumerate(STEPS, start=1):
        print(f"[{i}/{len(STEPS)}] {title}", flush=True)
        t0 = time.perf_counter()
        try:
            summary = step(demo)
        except (ConfigError, ValueError, RunFailed) as e:
            print(f"scaling demo: step {key}: {e}\nFix it and run the same command again: finished steps are "
                  "skipped.", file=sys.stderr)
            return 1
        seconds = time.perf_counter() - t0
        if key not in done:
            record_step(out, key, seconds, summary)
        print(f"      {summary} ({_duration(seconds)})", flush=True)
    print(f"done in {_duration(time.perf_counter() - start)}. Read {out / 'report.md'}")
    print(f"next: tensorboard --logdir {out / 'compare' / 'runs'}; the full demo: scaling demo; one run of your "
          "own: scaling train --config tiny/mae run_dir=runs/my_mae")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
