"""`scaling export RUN_DIR OUT.safetensors`: consolidate a run's ZeRO-3 checkpoint into one file of
encoder weights with timm's key names (`timm.create_model(..., pretrained_cfg_overlay=dict(file=OUT))`).
`scaling export RUN_DIR --hf DIR`: a Hugging Face / timm model folder (config.json, model.safetensors, a model
card README.md) that `timm.create_model("local-dir:DIR", pretrained=True)` loads (scaling/export_hf.py).

Examples:
  scaling export runs/mae_h14 mae_h14_encoder.safetensors
  scaling export runs/wsp_h14 wsp_h14.safetensors --with-head
  scaling export runs/mae_h14 mae_h14_full.safetensors --full   # encoder + decoder, our key names
  scaling export runs/wsp_h14 --hf hf/wsp_h14                    # then publish it from your account:
      hf auth login && python -c "import huggingface_hub as h; h.create_repo('USER/wsp_h14', exist_ok=True); \\
          h.upload_folder(repo_id='USER/wsp_h14', folder_path='hf/wsp_h14')"
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def export(run_dir: str | Path, out: str | Path, with_head: bool = False, full: bool = False) -> dict:
    from scaling.engine.consolidate import consolidate_run
    from scaling.models.weights import save_safetensors, to_timm_encoder

    sd, marker = consolidate_run(run_dir)
    weights = sd if full else to_timm_encoder(sd, keep_head=with_head)
    meta = {
        "model": str(marker.get("model", "")),
        "stage": str(marker.get("stage", "")),
        "step": str(marker.get("step", "")),
        "samples_seen": str(marker.get("samples_seen", "")),
        **_flops(Path(run_dir), marker),
        "format": "ours_mae" if full else "timm",
        "source": str(Path(run_dir).resolve()),
    }
    save_safetensors(weights, out, metadata=meta)
    return {"tensors": len(weights), "params": int(sum(v.numel() for v in weights.values())), **meta}


def _flops(run_dir: Path, marker: dict) -> dict[str, str]:
    """`flops` and `total_flops` (CONTRACTS.md; "" when unknown) of the exported checkpoint: from its marker;
    checkpoints written before markers held them: the run's summary.json when it describes the same step."""
    record = marker
    summary = run_dir / "summary.json"
    if "flops" not in marker and summary.is_file():
        data = json.loads(summary.read_text())
        if data.get("samples_seen") == marker.get("samples_seen"):
            record = data
    return {k: "" if record.get(k) is None else str(record[k]) for k in ("flops", "total_flops")}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="scaling export",
        description=__doc__.split("\n\n")[0],
        epilog="examples:" + __doc__.split("Examples:", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("run_dir", help="a training run directory (with checkpoints/)")
    parser.add_argument("out", nargs="?", help="output .safetensors file")
    parser.add_argument("--hf", metavar="DIR", help="write a Hugging Face / timm folder instead (config.json, "
                        "model.safetensors, README.md); the head is kept for wsp/finetune runs")
    parser.add_argument("--overwrite", action="store_true", help="--hf: replace a folder that is not empty")
    parser.add_argument(
        "--with-head", action="store_true", help="keep the classifier head (wsp/finetune runs)"
    )
    parser.add_argument(
        "--full", action="store_true", help="everything, our key names (MAE decoder included)"
    )
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    if bool(args.out) == bool(args.hf):
        print("scaling export: give either OUT.safetensors or --hf DIR.", file=sys.stderr)
        return 2
    if args.out and not args.out.endswith(".safetensors"):
        print("scaling export: the output must be a .safetensors file.", file=sys.stderr)
        return 2
    from scaling.config import ConfigError
    from scaling.models.weights import WeightsError

    try:
        if args.hf:
            from scaling.export_hf import export_hf

            info = export_hf(args.run_dir, args.hf, overwrite=args.overwrite)
        else:
            info = export(args.run_dir, args.out, with_head=args.with_head, full=args.full)
    except (WeightsError, ConfigError) as e:
        print(f"scaling export: {e}", file=sys.stderr)
        return 2
    print(json.dumps(info, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
