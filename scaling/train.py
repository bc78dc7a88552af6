"""`scaling train --config FILE.yaml [key.sub=value ...]`, also `deepspeed --module scaling.train ...`.

Examples:
  scaling train --config tiny/mae run_dir=runs/tiny_mae
  scaling train --config tiny/wsp init_from=runs/tiny_mae run_dir=runs/tiny_wsp
  scaling train --config my_configs/mae.yaml run_dir=runs/mine      # your own YAML file
  deepspeed --num_gpus 8 --module scaling.train --config mae/vit_huge_patch14 \\
      data.train='/data/shards/{000000..009999}.tar' run_dir=/ckpt/mae_h14 resume=auto
  (`deepspeed --quiet ...`: the launcher's own lines at error level only; `--verbose` shows all warnings)
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from scaling.config import ConfigError


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="scaling train",
        description="Train a stage (mae: MAE pre-pretraining; wsp: weakly-supervised pretraining; finetune) "
        "with DeepSpeed. Settings come from the YAML config, then from key.sub=value overrides.",
        epilog="examples:" + __doc__.split("Examples:", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--config", help="YAML run config: a path, or a ready recipe by name (tiny/mae, "
                        "mae/vit_huge_patch14, ...: the package's configs/); defaults are used where absent")
    parser.add_argument(
        "overrides", nargs="*", help="key.sub=value overrides, e.g. total_samples=4096 seed=1"
    )
    parser.add_argument("--local_rank", "--local-rank", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    parser.add_argument("--verbose", action="store_true",
                        help="show every library warning and log line (known DeepSpeed/torch noise is hidden)")
    return parser.parse_args(argv)


def what_next(cfg, summary: dict, config_path: str | None) -> str:
    """Where the run's outputs are and the commands a user runs next, for the final lines of `scaling train`."""
    run = Path(cfg.run_dir)
    lines = [f"outputs: {run}/ (metrics.jsonl, summary.json, tb/, checkpoints/)", "next:"]
    if summary.get("preempted") and os.environ.get("SCALING_REQUEUES"):  # set by jobs/slurm_train.sh
        lines.append("  continue this run:    nothing to do: this Slurm job requeues itself and resumes from the "
                     "checkpoint (resume=auto)")
    elif summary.get("preempted"):
        lines.append("  continue this run:    the same command with resume=auto")
    lines.append(f"  watch the curves:     tensorboard --logdir {run / 'tb'}")
    if cfg.stage == "mae":
        lines.append(f"  export the encoder:   scaling export {run} {run / 'encoder.safetensors'}")
        wsp = _sibling_config(config_path, "wsp")
        lines.append(f"  WSP from this run:    scaling train --config {wsp or 'WSP_CONFIG.yaml'} init_from={run} "
                     f"run_dir={run.parent / (run.name + '_wsp')}")
    else:
        lines.append(f"  export the model:     scaling export {run} {run / 'model.safetensors'} --with-head")
        if cfg.stage == "wsp":
            ft = _sibling_config(config_path, "finetune")
            if ft:
                lines.append(f"  fine-tune it:         scaling train --config {ft} init_from={run} "
                             f"run_dir={run.parent / (run.name + '_ft')}")
    return "\n".join(lines)


def _sibling_config(config_path: str | None, stage: str) -> str | None:
    """configs/mae/vit_huge_patch14.yaml -> configs/wsp/vit_huge_patch14.yaml; configs/tiny/mae.yaml ->
    configs/tiny/wsp.yaml (a ready recipe given by name: tiny/mae -> tiny/wsp); None when there is none."""
    if not config_path:
        return None
    from scaling.resources import find_config

    path = find_config(config_path)
    candidates = [path.parent.parent / stage / path.name, path.with_name(f"{stage}{path.suffix}")]
    found = next((c for c in candidates if c != path and c.is_file()), None)
    if found is not None and not Path(config_path).is_file():
        return f"{found.parent.name}/{found.stem}"
    return str(found) if found else None


def main(argv: list[str] | None = None) -> int:
    args = parse_args(list(sys.argv[1:] if argv is None else argv))
    if not args.verbose and not os.environ.get("SCALING_VERBOSE"):
        from scaling.console import quiet_known_noise

        quiet_known_noise()  # before deepspeed is imported
    from scaling.engine.config import load_config

    # Every rank checks the same config (rank-0-only checks are broadcast), so only rank 0 prints the error:
    # one line in a job's log, not one per rank.
    main_rank = int(os.environ.get("RANK", "0")) == 0
    try:
        cfg = load_config(args.config, args.overrides)
    except ConfigError as e:
        if main_rank:
            print(f"scaling train: config error: {e}", file=sys.stderr)
        return 2
    if args.print_config:
        import yaml

        from scaling.config import to_dict

        print(yaml.safe_dump(to_dict(cfg), sort_keys=False))
        return 0
    # Ranks other than 0 log warnings only: N copies of each start-up line say nothing more.
    level = logging.INFO if main_rank or args.verbose else logging.WARNING
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from tqdm.contrib.logging import logging_redirect_tqdm

    from scaling.engine.progress import warnings_above_bar
    from scaling.engine.trainer import TrainingDiverged, train

    try:
        # a log line during training goes above the progress bar, not into it (DeepSpeed's logger has its own
        # handler and does not propagate: named too)
        with logging_redirect_tqdm(loggers=[logging.root, logging.getLogger("DeepSpeed")]), warnings_above_bar():
            summary = train(cfg)
    except ConfigError as e:
        if main_rank:
            print(f"scaling train: config error: {e}", file=sys.stderr)
        return 2
    except TrainingDiverged as e:  # the same on every rank (the losses are all-reduced)
        if main_rank:
            print(f"scaling train: {e}", file=sys.stderr)
        return 3
    if main_rank and summary.get("already_complete"):
        print(f"already complete: {summary['steps']} steps, {summary['samples_seen']} samples; nothing trained, "
              f"nothing written ({cfg.run_dir})")
        return 0
    if main_rank:
        state = "stopped by a signal (checkpoint saved)" if summary.get("preempted") else "done"
        print(f"{state}: {summary['steps']} steps, {summary['samples_seen']} samples, loss {summary['loss']:.4f}")
        print(what_next(cfg, summary, args.config))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
