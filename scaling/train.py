"""`scaling train --config FILE.yaml [key.sub=value ...]`, also `deepspeed --module scaling.train ...`.

Examples:
  scaling train --config configs/tiny/mae.yaml run_dir=runs/tiny_mae
  scaling train --config configs/tiny/wsp.yaml init_from=runs/tiny_mae run_dir=runs/tiny_wsp
  deepspeed --num_gpus 8 --module scaling.train --config configs/mae/vit_huge_patch14.yaml \\
      data.train='/data/shards/{000000..009999}.tar' run_dir=/ckpt/mae_h14 resume=auto
"""

from __future__ import annotations

import argparse
import logging
import sys

from scaling.config import ConfigError


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="scaling train",
        description="Train a stage (mae: MAE pre-pretraining; wsp: weakly-supervised pretraining; finetune) "
        "with DeepSpeed. Settings come from the YAML config, then from key.sub=value overrides.",
        epilog="examples:" + __doc__.split("Examples:", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--config", help="YAML run config (configs/...); defaults are used where absent")
    parser.add_argument(
        "overrides", nargs="*", help="key.sub=value overrides, e.g. total_samples=4096 seed=1"
    )
    parser.add_argument("--local_rank", "--local-rank", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(list(sys.argv[1:] if argv is None else argv))
    from scaling.engine.config import load_config

    try:
        cfg = load_config(args.config, args.overrides)
    except ConfigError as e:
        print(f"scaling train: config error: {e}", file=sys.stderr)
        return 2
    if args.print_config:
        import yaml

        from scaling.config import to_dict

        print(yaml.safe_dump(to_dict(cfg), sort_keys=False))
        return 0
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from scaling.engine.trainer import TrainingDiverged, train

    try:
        summary = train(cfg)
    except ConfigError as e:
        print(f"scaling train: config error: {e}", file=sys.stderr)
        return 2
    except TrainingDiverged as e:
        print(f"scaling train: {e}", file=sys.stderr)
        return 3
    print(
        f"done: {summary['steps']} steps, {summary['samples_seen']} samples, loss {summary['loss']:.4f} "
        f"-> {cfg.run_dir}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
