"""Which encoder `--weights` names: an exported .safetensors file, a run directory, or `random:MODEL[:SEED]`.

Every form becomes a plain VisionTransformer (no head, token pooling) with its weights loaded strictly: a file
whose architecture does not match the model is an error naming the keys, never a partial load. The
fingerprint (sha256 of every tensor's name, shape and bytes) keys the feature cache, so new weights under the
same file name are never served stale features.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import torch

from scaling.config import ConfigError, load_yaml
from scaling.models import MODELS, VisionTransformer, create_model
from scaling.models.weights import WeightsError, load_encoder_weights, read_weights, to_timm_encoder


@dataclass
class Encoder:
    model: VisionTransformer
    name: str  # registry model name
    fingerprint: str
    weights: str  # as given
    run_dir: Path | None  # the run whose summary.json gets the results (None: none known)


def fingerprint(sd: dict[str, torch.Tensor]) -> str:
    h = hashlib.sha256()
    for k in sorted(sd):
        t = sd[k].detach().to("cpu").contiguous()
        h.update(f"{k}|{tuple(t.shape)}|{t.dtype}".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def _check_name(name: str, where: str) -> str:
    if name not in MODELS:
        raise ConfigError(f"{where}: unknown model {name!r}; valid names: {', '.join(MODELS)}.")
    return name


def _run_model(run_dir: Path) -> tuple[str, dict[str, int]]:
    """(model name, spec overrides) from a run directory's resolved config.yaml."""
    cfg = load_yaml(run_dir / "config.yaml") if (run_dir / "config.yaml").is_file() else {}
    model = cfg.get("model", {}) or {}
    overrides = {"img_size": int(model["img_size"])} if model.get("img_size") else {}
    return str(model.get("name", "")), overrides


def load_encoder(weights: str, model: str = "", img_size: int = 0) -> Encoder:
    """The encoder `weights` names (see module doc). `model` overrides the file's model name (needed for
    safetensors without `model` metadata); `img_size` the registry's input size."""
    overrides = {"img_size": img_size} if img_size else {}
    if weights.startswith("random:"):
        parts = weights.split(":")
        name = _check_name(model or parts[1], f"--weights {weights}")
        seed = int(parts[2]) if len(parts) > 2 and parts[2] else 0
        torch.manual_seed(seed)
        enc = create_model(name, **overrides).eval()
        sd = enc.state_dict()
        return Encoder(enc, name, fingerprint(sd) + f":random{seed}", weights, None)
    path = Path(weights)
    run_dir: Path | None = None
    if path.is_dir():
        from scaling.engine.consolidate import consolidate_run

        sd, marker = consolidate_run(path)
        name, run_overrides = _run_model(path)
        name = model or name or str(marker.get("model", ""))
        overrides = {**run_overrides, **overrides}
        run_dir = path
    elif path.is_file():
        sd = read_weights(path)
        meta = _safetensors_metadata(path)
        name = model or meta.get("model", "")
        source = Path(meta.get("source", "")) if meta.get("source") else None
        run_dir = source if source is not None and (source / "summary.json").is_file() else None
        if not name:
            raise ConfigError(f"--weights {weights}: the file names no model (no `model` metadata); pass --model "
                              f"NAME (one of {', '.join(MODELS)}).")
    else:
        raise ConfigError(f"--weights {weights!r} does not exist: give an exported .safetensors file, a run "
                          "directory, or random:MODEL.")
    name = _check_name(name, f"--weights {weights}")
    sd = to_timm_encoder(sd, keep_head=False)
    enc = create_model(name, **overrides)
    try:
        load_encoder_weights(enc, sd, strict=True)
    except WeightsError as e:
        raise WeightsError(f"--weights {weights} does not fit model {name}: {e} Is --model right?") from e
    return Encoder(enc.eval(), name, fingerprint(enc.state_dict()), weights, run_dir)


def _safetensors_metadata(path: Path) -> dict[str, str]:
    if path.suffix != ".safetensors":
        return {}
    with open(path, "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        header = json.loads(f.read(n))
    return dict(header.get("__metadata__", {}) or {})
