"""LazyWeights (a memory-mapped .safetensors file as a state dict): keys set on it shadow the file's, and a key
set that the file lacks (fc_norm for global_pool=avg) does not send shapes() looking for it in the file."""

from __future__ import annotations

import torch

from scaling.engine.load_weights import LazyWeights
from scaling.models.weights import save_safetensors


def test_a_key_set_here_is_shaped_and_read_from_memory(tmp_path):
    path = tmp_path / "w.safetensors"
    save_safetensors({"norm.weight": torch.ones(4), "pos_embed": torch.zeros(1, 5, 4)}, path, {"model": "x"})
    sd = LazyWeights(path)
    sd["fc_norm.weight"] = torch.full((4,), 2.0)  # not in the file
    sd["pos_embed"] = torch.zeros(1, 9, 4)  # shadows the file's
    assert sd.shapes() == {"norm.weight": (4,), "pos_embed": (1, 9, 4), "fc_norm.weight": (4,)}
    assert sd["fc_norm.weight"][0] == 2.0 and sd["norm.weight"][0] == 1.0
    del sd["fc_norm.weight"]
    assert sorted(sd) == ["norm.weight", "pos_embed"]
