"""Loading weights into a model that may be ZeRO-3-sharded, one module's parameters gathered at a time; and the
stage-1 weights of `init_from`, which only rank 0 reads.

At 1,024 ranks a stage-1 checkpoint read by every rank would be 1,024 x (6.5B: ~78 GB of optimizer shards).
So rank 0 reads (an exported .safetensors memory-mapped, one tensor at a time; a run directory consolidated),
broadcasts the key -> shape map so every rank reaches the same fit verdict, and copies under
GatheredParameters(modifier_rank=0): the other ranks receive their shards when each module is re-partitioned.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, MutableMapping
from pathlib import Path

import torch
import torch.nn as nn

from scaling.engine.distributed import broadcast_object
from scaling.models.vit import fit_encoder_to_pool
from scaling.models.weights import WeightsError, check_fit, fit_pos_embed, read_weights, to_timm_encoder


def _real_shape(p: torch.Tensor) -> tuple[int, ...]:
    return tuple(getattr(p, "ds_shape", p.shape))


def _shapes(sd) -> dict[str, tuple[int, ...]]:
    return sd.shapes() if isinstance(sd, LazyWeights) else {k: tuple(v.shape) for k, v in sd.items()}


def load_into_model(model: nn.Module, sd, strict: bool = True, allow_missing: tuple[str, ...] = (),
                    rank: int = 0) -> None:
    """Copy `sd` (a mapping name -> tensor, given on rank 0 only: None elsewhere) into `model`'s parameters,
    sharded or not, gathering one module's own parameters at a time (peak memory: the largest module). Every
    rank must call it. Keys and shapes are checked first (`check_fit`) on every rank, from rank 0's shapes."""
    import deepspeed
    import torch.distributed as dist

    shapes = {k: _real_shape(p) for k, p in model.named_parameters()}
    theirs = None
    if rank == 0:
        fit_pos_embed(sd, shapes)
        theirs = _shapes(sd)
    theirs = broadcast_object(theirs, rank)
    # Shape-only stand-ins: check_fit needs .shape, nothing else, and meta tensors hold no memory.
    mismatched = check_fit(shapes, {k: torch.empty(s, device="meta") for k, s in theirs.items()}, strict,
                           allow_missing)
    spread = dist.is_initialized() and dist.get_world_size() > 1
    for prefix, module in model.named_modules():
        own = list(module.named_parameters(recurse=False))
        if not own:
            continue
        with deepspeed.zero.GatheredParameters([p for _, p in own], modifier_rank=0):
            with torch.no_grad():
                for name, p in own:
                    key = f"{prefix}.{name}" if prefix else name
                    if key not in theirs or key in mismatched:
                        continue
                    if rank == 0:
                        p.data.copy_(sd[key].to(p.dtype))
                    if spread and not hasattr(p, "ds_id"):  # not ZeRO-3 (the gather is a no-op): send it
                        dist.broadcast(p.data, src=0)


class LazyWeights(MutableMapping):
    """Tensors of a .safetensors file under (renamed) keys, each read from the memory-mapped file when asked;
    keys set here (a resampled pos_embed) shadow the file's."""

    def __init__(self, path: str | Path, names: dict[str, str] | None = None, _file=None) -> None:
        import safetensors

        self.path = Path(path)
        self._file = _file or safetensors.safe_open(str(path), framework="pt")
        self._names = names if names is not None else {k: k for k in self._file.keys()}
        self._set: dict[str, torch.Tensor] = {}

    def metadata(self) -> dict[str, str]:
        return self._file.metadata() or {}

    def shapes(self) -> dict[str, tuple[int, ...]]:
        # Keys set here (fc_norm made for global_pool=avg, a resampled pos_embed) are not in the file.
        out = {k: tuple(self._file.get_slice(src).get_shape()) for k, src in self._names.items() if k not in self._set}
        out.update({k: tuple(v.shape) for k, v in self._set.items()})
        return out

    def renamed(self, fn) -> LazyWeights:
        """The same file under the keys `fn` (a key map on state dicts, like to_timm_encoder) gives: applied to
        shape-only stand-ins, whose identity says which file key each output key came from."""
        probes = {k: torch.empty(s, device="meta") for k, s in self.shapes().items()}
        source = {id(v): self._names[k] for k, v in probes.items()}
        return LazyWeights(self.path, {k: source[id(v)] for k, v in fn(probes).items()}, self._file)

    def __getitem__(self, key: str) -> torch.Tensor:
        if key in self._set:
            return self._set[key]
        return self._file.get_tensor(self._names[key])

    def __setitem__(self, key: str, value: torch.Tensor) -> None:
        self._set[key] = value
        self._names.setdefault(key, key)

    def __delitem__(self, key: str) -> None:
        self._set.pop(key, None)
        del self._names[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)


def _missing(source: str) -> WeightsError:
    return WeightsError(
        f"init_from={source!r} does not exist: give a stage-1 run directory or an "
        "exported .safetensors file (`scaling export RUN_DIR OUT.safetensors`)."
    )


def check_stage1(source: str) -> None:
    """The cheap part of reading `source` (it exists, a run directory has a complete checkpoint), for the
    checks made before anything is written. Rank 0 only."""
    from scaling.engine.checkpoint import CHECKPOINTS, complete_checkpoints

    path = Path(source)
    if path.is_dir() and not complete_checkpoints(path):
        raise WeightsError(
            f"init_from={source!r} has no complete checkpoint under {CHECKPOINTS}/ (was the stage-1 run started? "
            "did it save? checkpoints need COMPLETE.json)."
        )
    if not path.exists():
        raise _missing(source)


def read_stage1_encoder(source: str):
    """Encoder tensors (timm keys, no head) of a stage-1 run directory or weights file. Rank 0 only."""
    path = Path(source)
    if path.is_dir():
        from scaling.engine.consolidate import consolidate_run

        sd, _ = consolidate_run(path)
    elif path.suffix == ".safetensors" and path.is_file():
        return LazyWeights(path).renamed(lambda sd: to_timm_encoder(sd, keep_head=False))
    elif path.is_file():
        sd = read_weights(path)
    else:
        raise _missing(source)
    return to_timm_encoder(sd, keep_head=False)


def load_stage1_encoder(model: nn.Module, source: str, rank: int) -> None:
    """Stage-1 encoder into a classifier: every encoder tensor must fit (checked before any copy); the head
    keeps its fresh initialisation. Every rank calls it; only rank 0 reads `source`."""
    sd, error = None, None
    if rank == 0:
        try:
            sd = fit_encoder_to_pool(model, read_stage1_encoder(source))
        except WeightsError as e:
            error = str(e)
    error = broadcast_object(error, rank)
    if error:
        raise WeightsError(error)
    try:
        load_into_model(model, sd, strict=True, allow_missing=("head.",), rank=rank)
    except WeightsError as e:
        raise WeightsError(f"stage-1 {e} Is model.name the same as stage 1's?") from e


def stage1_flops(source: str) -> float | None:
    """Total FLOPs that produced `source` (its whole init_from chain), or None when unknown: a run directory's
    newest checkpoint marker (else its summary.json) `total_flops`, else `flops`; a .safetensors file's
    metadata (`scaling export` writes it). Rank 0 only: one small file."""
    path = Path(source)
    record: dict = {}
    if path.is_dir():
        from scaling.engine.checkpoint import complete_checkpoints, read_marker

        tags = complete_checkpoints(path)
        record = read_marker(tags[-1]) if tags else {}
        if record.get("total_flops") is None and (path / "summary.json").is_file():
            record = json.loads((path / "summary.json").read_text())
    elif path.suffix == ".safetensors" and path.is_file():
        record = LazyWeights(path).metadata()
    for key in ("total_flops", "flops"):
        try:
            value = float(record.get(key))
        except (TypeError, ValueError):
            continue
        if value > 0:
            return value
    return None
