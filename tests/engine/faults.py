"""`python -m faults --config ... key=value ...`: `scaling train` with faults patched in, for the tests of the
failure paths. Nothing of this is in the product code: the trainer's `_loss` is wrapped here, once, at start.

FAULTS (environment), comma-separated `KIND@STEP:RANK`:
  nan_loss@3:1  the first micro-batch of optimizer step 3 on rank 1 has a NaN loss;
  nan_grad@5:0  the first micro-batch of step 5 on rank 0 has a finite loss and NaN gradients;
  sleep@4:0     step 4 on rank 0 takes 2 s longer (a slow step, for the throughput window).
Run it through train_helpers (module="faults"), which puts this folder on PYTHONPATH.
"""

from __future__ import annotations

import os
import time

import torch

from scaling.engine import trainer


class _NanGrad(torch.autograd.Function):
    """Identity forward, NaN backward: a finite loss whose gradients are not finite."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:  # noqa: ARG004
        return x.clone()

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # noqa: ARG004
        return grad * float("nan")


def _parse(spec: str) -> dict[tuple[int, int], str]:
    faults = {}
    for part in filter(None, (p.strip() for p in spec.split(","))):
        kind, where = part.split("@")
        step, rank = where.split(":")
        faults[(int(step), int(rank))] = kind
    return faults


def install(spec: str) -> None:
    faults, done = _parse(spec), set()
    real_loss = trainer._loss

    def loss_with_faults(s, batch, stream, index):
        loss = real_loss(s, batch, stream, index)
        key = (s.state.step + 1, s.dist.rank)
        if key in faults and key not in done:
            done.add(key)
            if faults[key] == "sleep":
                time.sleep(2.0)
            else:
                loss = loss * float("nan") if faults[key] == "nan_loss" else _NanGrad.apply(loss)
        return loss

    trainer._loss = loss_with_faults


if __name__ == "__main__":
    install(os.environ.get("FAULTS", ""))
    from scaling.train import main

    raise SystemExit(main())
