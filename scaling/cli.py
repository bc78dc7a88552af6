"""The `scaling` console script: one thin dispatcher over subcommand modules.

Each subcommand lives in its own module with a `main(argv) -> int`, imported only when called so that
`scaling --help` stays fast and a broken optional dependency breaks only its own command.
"""

from __future__ import annotations

import importlib
import os
import sys

# name -> (module with main(argv), one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "train": ("scaling.train", "train a stage (mae | wsp | finetune) from a YAML config"),
    "export": ("scaling.export", "consolidate a run's ZeRO-3 checkpoint into timm-named safetensors"),
    "data": ("scaling.data.cli", "write, inspect and benchmark webdataset tar shards"),
    "eval": ("scaling.eval.cli", "linear probe, kNN, low-shot and fine-tune accuracy of an encoder"),
    "results": ("scaling.laws.cli", "collect run directories into a results table (results collect)"),
    "fit": ("scaling.laws.cli", "fit a scaling law to a results table, with bootstrap intervals"),
    "plot": ("scaling.laws.cli", "draw compute-vs-accuracy and scaling-law figures"),
    "advise": ("scaling.advise.cli", "which runs to train next: the ones that narrow a decision most per FLOP"),
    "plan": ("scaling.plan.cli", "what a run costs: memory per GPU per policy, largest micro batch, GPU-hours"),
    "demo": ("scaling.demo.cli", "the whole pipeline on bundled real images, ending in a report (--quick: 2-3 min)"),
    "sweep": ("scaling.sweep.cli", "a scaling study: configs, job scripts, sweep.csv; sweep status / submit / run"),
}


def _usage() -> str:
    width = max(len(n) for n in COMMANDS)
    lines = ["usage: scaling <command> [options]", "", "commands:"]
    lines += [f"  {name:<{width}}  {help_}" for name, (_, help_) in COMMANDS.items()]
    lines += ["", "Run `scaling <command> --help` for the options and an example of each command."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        return 0
    if argv[0] in ("-V", "--version"):
        from scaling import __version__

        print(__version__)
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"scaling: unknown command {name!r}.\n\n{_usage()}", file=sys.stderr)
        return 2
    if "--verbose" not in rest and not os.environ.get("SCALING_VERBOSE"):
        from scaling.console import quiet_known_noise

        quiet_known_noise()  # known DeepSpeed/torch noise, before any command imports them
    module = importlib.import_module(COMMANDS[name][0])
    try:
        # Modules that serve several commands (fit, plot, results) take the command name first.
        if getattr(module, "MULTI_COMMAND", False):
            return int(module.main([name, *rest]) or 0)
        return int(module.main(rest) or 0)
    except BrokenPipeError:
        # `scaling plan ... | head`: the reader left; no traceback, and none again when Python flushes stdout
        # at exit (the Python docs' recipe: point stdout at devnull).
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
