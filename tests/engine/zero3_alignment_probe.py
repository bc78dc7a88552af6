"""Run as a script by test_zero3_alignment.py: a one-rank ZeRO-3 engine on CPU, real DeepSpeed, for a model
with a 1001-class head (an odd-sized bias). For our group order and for the reverse (no-decay group first) it
prints, as JSON, misaligned_partitions and the Linear weights that a real forward pass reads from an address
off a 16-byte boundary (what cuBLAS sees)."""

import json
import sys

import deepspeed
import torch

from scaling.engine.config import TrainConfig
from scaling.engine.distributed import setup
from scaling.engine.ds_config import build_ds_config, load_policy
from scaling.engine.optim import build_optimizer, param_groups
from scaling.engine.parallelize import build_model, misaligned_partitions
from scaling.models import get_spec


def misaligned(reverse: bool) -> dict[str, list[str]]:
    cfg = TrainConfig(stage="wsp")
    cfg.model.name, cfg.deepspeed.precision = "vit_nano_patch4", "bf16"
    ds_cfg = build_ds_config(load_policy("zero3_bf16.json"), micro_batch=2, grad_accum=1, world_size=1,
                             precision="bf16", clip_grad=1.0, width=get_spec(cfg.model.name).width)
    model = build_model(cfg, ds_cfg, 1001)
    groups = param_groups(model, 0.05)
    groups = groups[::-1] if reverse else groups
    opt = build_optimizer(groups, "torch", 1e-3, (0.9, 0.95), 1e-8, "cpu")
    engine, _, _, _ = deepspeed.initialize(model=model, optimizer=opt, config=ds_cfg)
    read_misaligned: list[str] = []

    def record(name: str):
        def hook(module, _inputs):
            if module.weight.data_ptr() % 16:
                read_misaligned.append(name)
        return hook

    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Linear):
            module.register_forward_pre_hook(record(name))
    engine(torch.randn(2, 3, 16, 16, dtype=torch.bfloat16))
    bad = misaligned_partitions(model)
    engine.destroy()
    return {"partitions": bad, "forward": read_misaligned}


if __name__ == "__main__":
    setup()
    torch.manual_seed(0)
    print(json.dumps({"ours": misaligned(False), "reversed": misaligned(True)}))
    sys.stdout.flush()
