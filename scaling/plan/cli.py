"""`scaling plan --model NAME --stage mae|wsp|finetune --gpus N --gpu h100|h200|a100 [...]`.

Examples:
  scaling plan --model vit_huge_patch14 --stage mae --gpus 64 --gpu h100 --samples 2e9
  scaling plan --model vit_2b_patch14 --stage wsp --gpus 256 --gpu h200 --micro-batch 96 --json
"""

from __future__ import annotations

import argparse
import json
import sys

from scaling.config import ConfigError


def _on_off(text: str) -> bool:
    if text not in ("on", "off"):
        raise argparse.ArgumentTypeError(f"expected on or off, got {text!r}")
    return text == "on"


def _samples(text: str) -> int:
    try:
        value = float(text.replace("_", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of samples such as 2e9, got {text!r}") from None
    return int(value)


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="scaling plan", description="What a run costs before it runs: parameters, "
                                "FLOPs per sample, memory per GPU under each ds_configs/ policy, the largest micro "
                                "batch that fits, time and GPU-hours.",
                                epilog="examples:" + __doc__.split("Examples:", 1)[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="a registry name, e.g. vit_huge_patch14")
    p.add_argument("--stage", required=True, help="mae | wsp | finetune")
    p.add_argument("--gpus", type=int, required=True, help="total number of GPUs")
    p.add_argument("--gpu", required=True, help="h100 | h200 | a100")
    p.add_argument("--micro-batch", type=int, default=None, help="per GPU (default: the ready config's)")
    p.add_argument("--activation-checkpointing", type=_on_off, default=None, help="on | off")
    p.add_argument("--ds-config", default=None, help="the DeepSpeed policy to plan for (default: the config's)")
    p.add_argument("--samples", type=_samples, default=None, help="samples seen (default: the config's)")
    p.add_argument("--mfu", type=float, default=None, help="model FLOPs utilisation (default: best measured)")
    p.add_argument("--num-classes", type=int, default=None, help="classifier head (default: the config's)")
    p.add_argument("--json", action="store_true", help="print the plan as JSON")
    return p.parse_args(argv)


def _text(plan) -> str:
    lines = [f"{plan.model} {plan.stage} on {plan.gpus} x {plan.gpu}: {plan.params / 1e6:.1f}M encoder parameters "
             f"({plan.model_params / 1e6:.1f}M trained), {plan.train_flops_per_sample / 1e9:.1f} GFLOPs per sample",
             f"memory per GPU at micro batch {plan.micro_batch}, activation checkpointing "
             f"{'on' if plan.activation_checkpointing else 'off'} ({plan.gpu_memory_gb:.1f} GB usable):",
             f"  {'policy':<32}{'states':>8}{'activ.':>8}{'total':>8}  max micro batch"]
    for name, m in plan.memory_gb.items():
        mark = " *" if name == plan.policy else ""
        lines.append(f"  {name + mark:<32}{m['model_states']:>8.1f}{m['activations']:>8.1f}{m['total']:>8.1f}  "
                     f"{m['max_micro_batch']}{'' if m['fits'] else ' (does not fit)'}")
    lines.append(f"{plan.samples:.3g} samples: {plan.gpu_hours:,.0f} GPU-hours, {plan.hours:,.1f} h wall-clock at "
                 f"MFU {plan.mfu:.1%} ({plan.mfu_source})")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(list(sys.argv[1:] if argv is None else argv))
    from scaling.plan.plan import make_plan

    try:
        plan = make_plan(args.model, args.stage, args.gpus, args.gpu.lower(), micro_batch=args.micro_batch,
                         activation_checkpointing=args.activation_checkpointing, ds_config=args.ds_config,
                         samples=args.samples, mfu=args.mfu, num_classes=args.num_classes)
    except (ConfigError, ValueError) as e:
        print(f"scaling plan: {e}", file=sys.stderr)
        return 2
    print(json.dumps(plan.as_dict(), indent=2) if args.json else _text(plan))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
