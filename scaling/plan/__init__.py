"""`scaling plan`: what a run costs before it runs (parameters, FLOPs, memory per GPU, micro batch,
GPU-hours), from the registry, the FLOPs module, DeepSpeed's estimators and our measurements."""

from scaling.plan.plan import Plan, make_plan

__all__ = ["Plan", "make_plan"]
