"""The input pipeline: webdataset shards (or `synthetic`) -> uint8 batches, resumable exactly.

    from scaling.data import DataConfig, build_train_loader, normalize_images
    loader = build_train_loader(cfg, stage="mae", image_size=224, micro_batch=64, rank=0, world_size=8,
                                seed=0)
    batch = next(loader)   # {"image": uint8 [64, 3, 224, 224], "key": [...]} (+ "target" [64, C] for wsp)
    x = normalize_images(batch["image"].cuda(non_blocking=True), dtype=torch.bfloat16)
    state = loader.state_dict(); ...; loader.load_state_dict(state)   # exact continuation

Files, in the order data flows: shards.py (what to read) -> assignment.py (who reads what) -> lane.py (one
worker's stream: shuffle blocks, resume, bad-data substitution) -> reader.py (tar members -> samples) ->
decode.py + transforms.py (crop-aware JPEG decode) -> batch.py -> loader.py (workers, state, stats).
writer.py (with shuffle.py), vocab_build.py (with caption_scan.py and sketch.py), cli.py and bench.py are the
`scaling data` commands; captions.py (the caption normaliser) and vocab.py (the vocabulary file) serve both
`scaling data vocab` and the reader's labels from captions (data.caption_vocab).
"""

from __future__ import annotations

import importlib
from typing import Any

from scaling.data.config import DataConfig

__all__ = ["DataConfig", "TrainLoader", "build_train_loader", "normalize_images"]
# Imported on first use (PEP 562): the shard tools (`scaling data vocab`, `inspect`) never load torch.
_LAZY = {"TrainLoader": "scaling.data.loader", "build_train_loader": "scaling.data.loader",
         "normalize_images": "scaling.data.transforms"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'scaling.data' has no attribute {name!r}")
