"""`scaling eval`: transfer accuracy of an encoder on a labelled train/val pair; writes EVAL.json and the
evaluated run's summary.json["eval"] (linear_top1, knn_top1, lowshot{K}_top1, finetune_top1, ...).

Examples:
  scaling eval --weights runs/mae_b16 --protocol linear --train in1k/train --val in1k/val --out lin.json
  scaling eval --weights mae_b16.safetensors --protocol knn --train TRAIN --val VAL --out knn.json
  scaling eval --weights random:vit_micro_patch4 --protocol lowshot \\
      --train bundled:fashion_mnist/train --val bundled:fashion_mnist/val --out low.json
  scaling eval --weights runs/wsp_b16 --protocol finetune --config finetune/vit_base_patch16 \\
      --train in1k/train --val in1k/val --out ft.json run_dir=runs/ft_b16
  scaling eval --weights ft_b16.safetensors --protocol classify --val in1k/val --out cls.json

Protocols: linear (L-BFGS logistic regression, weight decay chosen on a split of train), linear_sgd (MAE's
BatchNorm + linear layer, SGD or LARS), knn (k=20, cosine, T=0.07), lowshot (K=1,5,10 per class, 5 splits),
finetune (the engine's finetune stage; key=value overrides after the options), classify (a classifier with
its head, val only). DATA: shards with a manifest, a shards.json, an image folder tree (one class per
sub-folder), or bundled:fashion_mnist/train (the bundled set). Features are cached (--cache-dir, default
~/.cache/scaling/features) and reused by every feature protocol.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

from scaling.config import ConfigError

PROTOCOLS = ("linear", "linear_sgd", "knn", "lowshot", "finetune", "classify")


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="scaling eval", description=__doc__.split("\n\n")[0],
                                epilog="examples:" + __doc__.split("Examples:", 1)[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--weights", required=True, help="exported .safetensors, a run directory, or random:MODEL[:SEED]")
    p.add_argument("--protocol", required=True, choices=PROTOCOLS)
    p.add_argument("--train", help="labelled training data (all protocols but classify)")
    p.add_argument("--val", required=True, help="labelled validation data")
    p.add_argument("--out", required=True, help="EVAL.json to write")
    p.add_argument("--model", default="", help="model name when the weights do not say (safetensors metadata)")
    p.add_argument("--img-size", type=int, default=0, help="input size (default: the model's)")
    p.add_argument("--feature", default="cls", choices=("cls", "mean", "concat"),
                   help="cls token, mean of patch tokens, or both concatenated")
    p.add_argument("--train-samples", type=int, default=0, help="use only the first N training samples")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--cache-dir", default=None)
    p.add_argument("--device", default="cpu")
    p.add_argument("--seed", type=int, default=0, help="seed of the hold-out split / SGD shuffle")
    p.add_argument("--center-fraction", type=float, default=0.875)
    p.add_argument("--interpolation", default="bicubic", choices=("bilinear", "bicubic"))
    p.add_argument("--grid", default="", help="weight decays to try, comma separated (default 1e-6..1)")
    p.add_argument("--k", type=int, default=20)
    p.add_argument("--temperature", type=float, default=0.07)
    p.add_argument("--shots", default="1,5,10")
    p.add_argument("--splits", type=int, default=5)
    p.add_argument("--sgd-optimizer", default="sgd", choices=("sgd", "lars"))
    p.add_argument("--epochs", type=int, default=90)
    p.add_argument("--base-lr", type=float, default=None, help="linear_sgd: per 256 samples (lars 0.1, sgd 1.0)")
    p.add_argument("--config", default=None,
                   help="finetune: a run config (a path, or a ready one: finetune/vit_base_patch16)")
    p.add_argument("--local_rank", "--local-rank", type=int, default=None, help=argparse.SUPPRESS)
    p.add_argument("overrides", nargs="*", help="finetune: key.sub=value overrides of the run config")
    return p.parse_args(argv)


def update_summary(run_dir: Path | None, entries: dict[str, float]) -> Path | None:
    """Merge `entries` into run_dir/summary.json["eval"] (atomic write); None when there is no summary."""
    from scaling.engine.run_dir import write_json

    if run_dir is None or not (Path(run_dir) / "summary.json").is_file():
        return None
    path = Path(run_dir) / "summary.json"
    summary = json.loads(path.read_text())
    summary["eval"] = {**(summary.get("eval") or {}), **entries}
    write_json(path, summary)
    return path


def check_pair(args: argparse.Namespace, same_classes: bool = True):
    """The train and val sets, once checked: the same class list (feature protocols), and no image in both
    (by content: scaling.eval.overlap; equal names are fine). Before any feature or run is computed."""
    from scaling.data.eval_set import EvalSet
    from scaling.eval.features import default_cache_dir
    from scaling.eval.overlap import check_no_leak

    train_set, val_set = EvalSet(args.train), EvalSet(args.val)
    if same_classes and train_set.classes != val_set.classes:
        raise ConfigError(f"--train {args.train!r} and --val {args.val!r} have different class lists "
                          f"({len(train_set.classes)} vs {len(val_set.classes)} classes); they must be the same, "
                          "in order.")
    check_no_leak(train_set, val_set, args.cache_dir or default_cache_dir(), limit=args.train_samples)
    return train_set, val_set


def feature_protocol(args: argparse.Namespace) -> tuple[dict[str, Any], dict[str, float], Any]:
    from scaling.data.eval_set import EvalTransform
    from scaling.eval import features
    from scaling.eval.encoder import load_encoder

    if not args.train:
        raise ConfigError(f"--protocol {args.protocol} needs --train DATA.")
    encoder = load_encoder(args.weights, args.model, args.img_size)
    train_set, val_set = check_pair(args)
    transform = EvalTransform(encoder.model.spec.img_size, args.center_fraction, args.interpolation)
    common = dict(batch_size=args.batch_size, cache_dir=args.cache_dir, device=args.device)
    tr = features.extract(encoder, train_set, transform, limit=args.train_samples, **common)
    va = features.extract(encoder, val_set, transform, **common)
    x, y, vx, vy, classes = tr.get(args.feature), tr.labels, va.get(args.feature), va.labels, tr.classes
    grid = tuple(float(g) for g in args.grid.split(",") if g) if args.grid else None
    if args.protocol == "linear":
        from scaling.eval.probe import DEFAULT_GRID, linear_probe

        result = linear_probe(x, y, vx, vy, classes, grid or DEFAULT_GRID, seed=args.seed)
        entries = {"linear_top1": result["top1"], "linear_top5": result["top5"]}
    elif args.protocol == "linear_sgd":
        from scaling.eval.sgd_probe import sgd_probe

        result = sgd_probe(x, y, vx, vy, classes, optimizer=args.sgd_optimizer, epochs=args.epochs,
                           warmup_epochs=min(10, args.epochs // 9), base_lr=args.base_lr, seed=args.seed)
        entries = {"linear_sgd_top1": result["top1"], "linear_sgd_top5": result["top5"]}
    elif args.protocol == "knn":
        from scaling.eval.knn import knn_eval

        result = knn_eval(x, y, vx, vy, classes, args.k, args.temperature)
        entries = {"knn_top1": result["top1"], "knn_top5": result["top5"]}
    else:
        from scaling.eval.lowshot import lowshot
        from scaling.eval.probe import DEFAULT_GRID

        shots = tuple(int(s) for s in args.shots.split(",") if s)
        result = lowshot(x, y, vx, vy, classes, shots, args.splits, grid or DEFAULT_GRID)
        entries = {f"lowshot{k}_top1": v["top1"] for k, v in result["shots"].items()}
        result["top1"] = {k: v["top1"] for k, v in result["shots"].items()}
        result["seeds"] = list(range(args.splits))
    result.setdefault("seeds", [args.seed])
    result["settings"] = {**result["settings"], "feature": args.feature, "center_fraction": args.center_fraction,
                          "interpolation": args.interpolation, "img_size": transform.size,
                          "train_samples": len(tr.keys), "val_samples": len(va.keys),
                          "features_from_cache": [tr.from_cache, va.from_cache], "feature_files": [tr.path, va.path]}
    return result, entries, encoder


def finetune_protocol(args: argparse.Namespace) -> tuple[dict[str, Any], dict[str, float], Path | None]:
    from scaling.eval.finetune import finetune

    if not args.train:
        raise ConfigError("--protocol finetune needs --train DATA.")
    check_pair(args, same_classes=False)  # the run reads both; its own checks compare the class lists
    return finetune(args.weights, args.train, args.val, args.config, args.overrides, model=args.model)


def run(args: argparse.Namespace) -> dict[str, Any]:
    if args.protocol in ("linear", "linear_sgd", "knn", "lowshot"):
        if "RANK" in os.environ and int(os.environ.get("WORLD_SIZE", "1")) > 1:  # under the launcher
            from scaling.engine.distributed import setup

            info = setup()
            args.device = str(info.device)
            try:
                result, entries, encoder = feature_protocol(args)
            finally:
                from scaling.engine.distributed import teardown

                teardown()
        else:
            result, entries, encoder = feature_protocol(args)
        model, run_dir = encoder.name, encoder.run_dir
    elif args.protocol == "finetune":
        result, entries, run_dir = finetune_protocol(args)
        model = result.get("model", args.model)
    else:
        from scaling.eval.classify import classifier_eval

        result = classifier_eval(args.weights, args.val, model=args.model, img_size=args.img_size,
                                 center_fraction=args.center_fraction, interpolation=args.interpolation,
                                 device=args.device)
        entries, run_dir, model = {}, None, args.model
    out = {"protocol": args.protocol, "weights": args.weights, "model": model, "train": args.train,
           "val": args.val, **result, "metrics": entries}  # metrics: the summary.json["eval"] names
    if int(os.environ.get("RANK", "0")) != 0:  # finetune under the launcher: rank 0 writes the outputs
        return out
    summary = update_summary(run_dir, entries)
    out["summary"] = str(summary) if summary else None
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(str(args.out) + ".tmp")
    tmp.write_text(json.dumps(out, indent=1) + "\n")
    tmp.replace(args.out)
    return out


def main(argv: list[str] | None = None) -> int:
    from scaling.resources import data_source

    args = parse_args(list(sys.argv[1:] if argv is None else argv))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from scaling.models.weights import WeightsError

    try:
        args.train, args.val = (data_source(s) if s else s for s in (args.train, args.val))
        out = run(args)
    except (ConfigError, WeightsError) as e:
        print(f"scaling eval: {e}", file=sys.stderr)
        return 2
    top1 = out.get("top1")
    print(f"{args.protocol}: top1 {json.dumps(top1)} -> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
