"""A classifier's val loss / top-1 / top-5 / per-class accuracy: the pass validation during training runs
(scaling/engine/validation.py, `classification_sums`), here on a weights file with its head, one process."""

from __future__ import annotations

from pathlib import Path

import torch

from scaling.config import ConfigError
from scaling.data.config import IMAGENET_MEAN, IMAGENET_STD
from scaling.data.eval_set import EvalSet, EvalTransform
from scaling.engine.validation import classification_sums
from scaling.eval.encoder import _safetensors_metadata
from scaling.models import create_model
from scaling.models.weights import WeightsError, load_encoder_weights, read_weights, to_timm_encoder


@torch.no_grad()
def classifier_eval(
    weights: str, val: str, *, model: str = "", global_pool: str = "token", img_size: int = 0,
    micro_batch: int = 64, center_fraction: float = 0.875, interpolation: str = "bicubic",
    mean: tuple = IMAGENET_MEAN, std: tuple = IMAGENET_STD, device: str = "cpu",
) -> dict[str, object]:
    path = Path(weights)
    sd = to_timm_encoder(read_weights(path), keep_head=True)
    if "head.weight" not in sd:
        raise ConfigError(f"--weights {weights}: no classifier head in the file; export the run with "
                          "`scaling export RUN_DIR OUT.safetensors --with-head`.")
    name = model or _safetensors_metadata(path).get("model", "")
    if not name:
        raise ConfigError(f"--weights {weights}: the file names no model; pass --model NAME.")
    data = EvalSet(val)
    num_classes = int(sd["head.weight"].shape[0])
    if num_classes != len(data.classes):
        raise ConfigError(f"--weights {weights} has a {num_classes}-class head but {val!r} has "
                          f"{len(data.classes)} classes.")
    pool = "avg" if "fc_norm.weight" in sd else global_pool
    net = create_model(name, num_classes=num_classes, global_pool=pool, **({"img_size": img_size} if img_size else {}))
    try:
        load_encoder_weights(net, sd, strict=True, keep_head=True)
    except WeightsError as e:
        raise WeightsError(f"--weights {weights} does not fit model {name}: {e}") from e
    net = net.to(device).eval()
    transform = EvalTransform(net.spec.img_size, center_fraction, interpolation)
    sums = classification_sums(net, data, transform, micro_batch, 0, 1, torch.device(device), torch.float32,
                               mean, std, num_classes)
    n, c = float(sums[3]), num_classes
    return {"loss": float(sums[0]) / n, "top1": float(sums[1]) / n, "top5": float(sums[2]) / n, "samples": int(n),
            "per_class": {k: (float(h) / float(m) if m else None)
                          for k, h, m in zip(data.classes, sums[4 : 4 + c], sums[4 + c :])},
            "settings": {"center_fraction": center_fraction, "interpolation": interpolation, "global_pool": pool,
                         "micro_batch": micro_batch}}
