"""Weight files: safetensors save/load and explicit, tested key maps between formats (timm's
`checkpoint_filter_fn` idea).

Formats recognised by `detect_format`:
  timm      timm VisionTransformer keys (`blocks.0.attn.qkv.weight`, ...): also what `scaling export` writes
  mae       facebookresearch/mae checkpoints: encoder keys at top level, `decoder_*`, `mask_token`
  maws      facebookresearch/maws CLIP checkpoints: timm keys under `vision_encoder.`
  ours_mae  our MaskedAutoencoder: `encoder.*`, `decoder.*`
Untrusted files are never unpickled as code: safetensors, or torch.load(weights_only=True).
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
import torch.nn as nn

from scaling.models.pos_embed import resample_pos_embed

log = logging.getLogger(__name__)

# facebookresearch/mae decoder names -> our MAEDecoder names (under `decoder.`)
_MAE_DECODER_KEYS = {
    "decoder_embed.": "embed.",
    "mask_token": "mask_token",
    "decoder_pos_embed": "pos_embed",
    "decoder_blocks.": "blocks.",
    "decoder_norm.": "norm.",
    "decoder_pred.": "pred.",
}


class WeightsError(ValueError):
    """A weight file that does not fit the model: the message names the keys."""


def save_safetensors(
    state_dict: dict[str, torch.Tensor], path: str | Path, metadata: dict[str, str] | None = None
) -> None:
    from safetensors.torch import save_file

    # safetensors refuses shared or non-contiguous storage; exported weights are small enough to copy.
    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in state_dict.items()}
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(path), metadata=metadata or {})


def read_weights(path: str | Path) -> dict[str, torch.Tensor]:
    """Tensors of a .safetensors file or a torch checkpoint (weights_only), unwrapped from
    the usual containers (`model`, `module`, `state_dict`)."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"weights file {str(path)!r} does not exist.")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # pickle with code in it, or not a torch file at all
        raise WeightsError(
            f"cannot read {str(path)!r} safely ({type(e).__name__}: {e}). Only safetensors files and torch "
            "checkpoints holding plain tensors are loaded; re-save it with safetensors."
        ) from e
    for key in ("model", "module", "state_dict", "model_state"):
        if isinstance(obj, dict) and key in obj and isinstance(obj[key], dict):
            obj = obj[key]
            break
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise WeightsError(f"{str(path)!r} does not hold a flat mapping of tensor names to tensors.")
    return dict(obj)


def detect_format(sd: dict[str, torch.Tensor]) -> str:
    keys = list(sd)
    if any(k.startswith("vision_encoder.") for k in keys):
        return "maws"
    if any(k.startswith("encoder.") for k in keys) and any(k.startswith("decoder.") for k in keys):
        return "ours_mae"
    if any(k.startswith("decoder_") or k == "mask_token" for k in keys):
        return "mae"
    return "timm"


def to_timm_encoder(sd: dict[str, torch.Tensor], keep_head: bool = False) -> dict[str, torch.Tensor]:
    """Encoder tensors with timm key names from any recognised format (decoder and text tower dropped)."""
    fmt = detect_format(sd)
    if fmt == "maws":
        out = {k[len("vision_encoder.") :]: v for k, v in sd.items() if k.startswith("vision_encoder.")}
    elif fmt == "ours_mae":
        out = {k[len("encoder.") :]: v for k, v in sd.items() if k.startswith("encoder.")}
    elif fmt == "mae":
        out = {k: v for k, v in sd.items() if not (k.startswith("decoder_") or k == "mask_token")}
    else:
        out = dict(sd)
    if not keep_head:
        out = {k: v for k, v in out.items() if not k.startswith(("head.", "fc_norm."))}
    return out


def mae_to_ours(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """facebookresearch/mae checkpoint -> our MaskedAutoencoder keys (`encoder.*`, `decoder.*`)."""
    out = {}
    for k, v in sd.items():
        for theirs, ours in _MAE_DECODER_KEYS.items():
            if k.startswith(theirs):
                out["decoder." + ours + k[len(theirs) :]] = v
                break
        else:
            out["encoder." + k] = v
    return out


def fit_pos_embed(sd: dict[str, torch.Tensor], shapes: dict[str, tuple[int, ...]]) -> None:
    """Resample every `*pos_embed` of `sd` in place whose token count differs from `shapes[key]`."""
    for key, want in shapes.items():
        if key.endswith("pos_embed") and key in sd and sd[key].shape[1] != want[1]:
            grid = int(round((want[1] - 1) ** 0.5))
            sd[key] = resample_pos_embed(sd[key], grid)


def check_fit(
    shapes: dict[str, tuple[int, ...]],
    sd: dict[str, torch.Tensor],
    strict: bool = True,
    allow_missing: tuple[str, ...] = (),
) -> set[str]:
    """Compare `sd` with a model's tensor shapes (name -> shape). Strict: a WeightsError naming the missing
    and unexpected keys and the shape mismatches (keys starting with `allow_missing` may be absent);
    non-strict: a log line. Returns the mismatched keys, which a loader must skip."""
    missing = sorted(k for k in set(shapes) - set(sd) if not k.startswith(allow_missing))
    unexpected = sorted(set(sd) - set(shapes))
    mismatched = sorted(k for k in set(shapes) & set(sd) if tuple(shapes[k]) != tuple(sd[k].shape))
    if strict and (missing or unexpected or mismatched):
        parts = []
        if missing:
            parts.append(f"missing keys {missing[:12]}{' ...' if len(missing) > 12 else ''}")
        if unexpected:
            parts.append(f"unexpected keys {unexpected[:12]}{' ...' if len(unexpected) > 12 else ''}")
        if mismatched:
            parts.append("shape mismatches " + ", ".join(
                f"{k}: file {tuple(sd[k].shape)} vs model {tuple(shapes[k])}" for k in mismatched[:6]))
        raise WeightsError("weights do not fit the model: " + "; ".join(parts)
                           + ". Pass strict=False to load the rest and skip these.")
    if missing or unexpected or mismatched:
        log.warning("non-strict load: skipped missing %s, unexpected %s, mismatched %s", missing, unexpected,
                    mismatched)
    return set(mismatched)


def load_into(model: nn.Module, sd: dict[str, torch.Tensor], strict: bool = True) -> None:
    """model.load_state_dict, checked by `check_fit` first (no silent partial load)."""
    own = model.state_dict()
    mismatched = check_fit({k: tuple(v.shape) for k, v in own.items()}, sd, strict)
    model.load_state_dict({k: v for k, v in sd.items() if k in own and k not in mismatched}, strict=False)


def load_encoder_weights(
    model: nn.Module,
    source: str | Path | dict[str, torch.Tensor],
    strict: bool = True,
    keep_head: bool = False,
) -> None:
    """Load any recognised format into a VisionTransformer (timm keys), resampling pos-embed if needed."""
    sd = read_weights(source) if not isinstance(source, dict) else dict(source)
    sd = to_timm_encoder(sd, keep_head=keep_head)
    fit_pos_embed(sd, {k: tuple(v.shape) for k, v in model.state_dict().items()})
    if not keep_head and getattr(model, "num_classes", 0):
        # A fresh head for the new task: keep the model's own initialisation of head.*.
        sd.update({k: v for k, v in model.state_dict().items() if k.startswith("head.")})
    load_into(model, sd, strict=strict)


def load_mae_weights(
    model: nn.Module, source: str | Path | dict[str, torch.Tensor], strict: bool = True
) -> None:
    """Load an MAE checkpoint (facebookresearch/mae or ours) into our MaskedAutoencoder."""
    sd = read_weights(source) if not isinstance(source, dict) else dict(source)
    fmt = detect_format(sd)
    if fmt == "mae":
        sd = mae_to_ours(sd)
    elif fmt != "ours_mae":
        raise WeightsError(
            f"expected an MAE checkpoint with decoder weights, got a {fmt!r} encoder-only file; "
            "load it with load_encoder_weights(model.encoder, ...) instead."
        )
    fit_pos_embed(sd, {k: tuple(v.shape) for k, v in model.state_dict().items()})
    load_into(model, sd, strict=strict)
