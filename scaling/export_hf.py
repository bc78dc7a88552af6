"""`scaling export RUN_DIR --hf DIR`: a Hugging Face / timm model folder, loadable with
`timm.create_model("local-dir:DIR", pretrained=True)` (and, once uploaded, `"hf-hub:USER/NAME"`).

DIR/config.json   timm's format: `architecture` (a timm ViT; `model_args` give our exact size, since timm does
                  not register every one of ours), `num_classes`, `global_pool`, and `pretrained_cfg` with the
                  run's mean, std, input size, and the evaluation transform's interpolation and centre crop.
DIR/model.safetensors  one file: the encoder (with its head for wsp/finetune runs), timm's key names.
DIR/README.md     a model card: recipe, data, samples seen, FLOPs, eval numbers from summary.json.
The folder is written under a temporary name and renamed, so a failed export leaves nothing half written.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from scaling.config import ConfigError

# our sizes timm registers under these names; every other size goes through model_args
TIMM_NAMES = {"vit_tiny_patch16": "vit_tiny_patch16_224", "vit_small_patch16": "vit_small_patch16_224",
              "vit_base_patch16": "vit_base_patch16_224", "vit_large_patch16": "vit_large_patch16_224",
              "vit_huge_patch14": "vit_huge_patch14_224"}
GENERIC = "vit_base_patch16_224"  # any timm VisionTransformer: model_args set every size-defining argument


def hf_config(cfg: Any, spec: Any, num_classes: int, classes: list[str]) -> dict[str, Any]:
    """config.json for run config `cfg` and model spec `spec` (registry ViTSpec with the run's overrides)."""
    model_args = {"img_size": spec.img_size, "patch_size": spec.patch_size, "in_chans": spec.in_chans,
                  "embed_dim": spec.width, "depth": spec.depth, "num_heads": spec.heads,
                  "mlp_ratio": spec.mlp_dim / spec.width, "qkv_bias": True, "class_token": True,
                  "global_pool": cfg.model.global_pool}
    pretrained_cfg = {"tag": "scaling", "custom_load": False, "input_size": [spec.in_chans, spec.img_size,
                      spec.img_size], "fixed_input_size": True, "interpolation": cfg.eval.interpolation,
                      "crop_pct": cfg.eval.center_fraction, "crop_mode": "center", "mean": list(cfg.data.mean),
                      "std": list(cfg.data.std), "num_classes": num_classes, "pool_size": None,
                      "first_conv": "patch_embed.proj", "classifier": "head"}
    out = {"architecture": TIMM_NAMES.get(cfg.model.name, GENERIC), "num_classes": num_classes,
           "num_features": spec.width, "global_pool": cfg.model.global_pool, "model_args": model_args,
           "pretrained_cfg": pretrained_cfg}
    if num_classes and len(classes) == num_classes:
        out["label_names"] = list(classes)
    return out


def _classes(cfg: Any) -> list[str]:
    """The label vocabulary of the run's training data, when its manifest is still readable."""
    try:
        from scaling.data.shards import list_shards

        return [] if cfg.data.train.strip() == "synthetic" else list(list_shards(cfg.data.train).classes)
    except Exception:  # noqa: BLE001 - the data may have moved; the card and config do without label names
        return []


def model_card(cfg: Any, summary: dict[str, Any], info: dict[str, Any], params: int) -> str:
    recipe = summary.get("recipe") or cfg.stage
    stage_text = {"mae": "MAE pre-pretraining (stage 1: masked autoencoding, 75% of the patches masked)",
                  "wsp": "weakly-supervised pretraining (stage 2: softmax cross-entropy over soft targets)",
                  "finetune": "supervised fine-tuning (MAE's recipe)"}[cfg.stage]
    tags = ["image-classification" if info["num_classes"] else "image-feature-extraction", "timm",
            "vision-transformer", "scaling", *(["mae"] if "mae" in recipe else [])]
    flops = summary.get("flops")
    total = summary.get("total_flops")
    evals = summary.get("eval") or {}
    lines = ["---", "library_name: timm", "tags:", *(f"- {t}" for t in tags), "---", "",
             f"# {cfg.model.name} ({recipe})", "",
             f"A {params / 1e6:,.1f}M-parameter Vision Transformer ({cfg.model.name}: width {info['width']}, depth "
             f"{info['depth']}, {info['heads']} heads, patch {info['patch']}, {info['img_size']} px) trained by "
             f"{stage_text}, exported by `scaling export --hf` from run `{summary.get('run', '?')}`.", "",
             "## Training", "",
             f"- recipe: `{recipe}`" + (f", initialised from `{cfg.init_from}`" if cfg.init_from else ""),
             f"- data: `{cfg.data.train}` ({cfg.data.mode} mode)",
             f"- samples seen: {summary.get('samples_seen', info['samples_seen'])}",
             f"- FLOPs: {float(flops):.3e} this stage" + (f", {float(total):.3e} with its init_from chain"
                                                          if total not in (None, "", flops) else "")
             if flops not in (None, "") else "- FLOPs: unknown",
             f"- timm: `{info['architecture']}` with this size in `model_args` (config.json)",
             f"- optimiser: AdamW, peak lr {info['peak_lr']:.3g}, weight decay {cfg.optim.weight_decay}, global "
             f"batch {info['global_batch']}, seed {cfg.seed}, {cfg.deepspeed.precision}", "",
             "## Evaluation", ""]
    lines += ["| metric | value |", "| --- | --- |", *(f"| {k} | {v:.4f} |" if isinstance(v, (int, float))
                                                       else f"| {k} | {v} |" for k, v in sorted(evals.items()))] \
        if evals else ["No evaluation in summary.json (`scaling eval --weights RUN_DIR ...` adds them)."]
    lines += ["", "## Use", "", "```python", "import timm", "",
              'model = timm.create_model("local-dir:THIS_FOLDER", pretrained=True)  # or "hf-hub:USER/NAME"',
              "model.eval()", "cfg = timm.data.resolve_data_config({}, model=model)  # mean, std, size, crop",
              "transform = timm.data.create_transform(**cfg)", "```", ""]
    return "\n".join(lines)


def export_hf(run_dir: str | Path, out_dir: str | Path, overwrite: bool = False) -> dict[str, Any]:
    """Write the folder (module doc); returns what was written."""
    from scaling.engine.config import load_config
    from scaling.engine.consolidate import consolidate_run
    from scaling.flops import encoder_params
    from scaling.models.registry import get_spec
    from scaling.models.weights import save_safetensors, to_timm_encoder

    run_dir, out_dir = Path(run_dir), Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()) and not overwrite:
        raise ConfigError(f"--hf {str(out_dir)!r} is not empty; choose a new folder (or --overwrite).")
    if not (run_dir / "config.yaml").is_file():
        raise ConfigError(f"{str(run_dir)!r} is not a run directory (no config.yaml).")
    cfg = load_config(run_dir / "config.yaml")
    summary_path = run_dir / "summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.is_file() else {}
    sd, marker = consolidate_run(run_dir)
    keep_head = cfg.stage != "mae"
    weights = to_timm_encoder(sd, keep_head=keep_head)
    spec = get_spec(cfg.model.name, **cfg.model.spec_overrides())
    num_classes = int(weights["head.weight"].shape[0]) if "head.weight" in weights else 0
    from scaling.engine.schedule import peak_lr

    steps = summary.get("steps") or 0  # every step is one global batch
    global_batch = summary["samples_seen"] // steps if steps else (
        cfg.batch.global_batch or cfg.batch.micro_batch * max(cfg.batch.grad_accum, 1))
    info = {"num_classes": num_classes, "architecture": TIMM_NAMES.get(cfg.model.name, GENERIC),
            "width": spec.width, "depth": spec.depth, "heads": spec.heads,
            "patch": spec.patch_size, "img_size": spec.img_size, "samples_seen": marker.get("samples_seen"),
            "global_batch": global_batch, "peak_lr": peak_lr(cfg.optim.base_lr, cfg.optim.lr, global_batch)}
    tmp = out_dir.with_name(out_dir.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    config = hf_config(cfg, spec, num_classes, _classes(cfg) if num_classes else [])
    (tmp / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    meta = {"model": cfg.model.name, "stage": cfg.stage, "samples_seen": str(marker.get("samples_seen", "")),
            "format": "timm", "source": str(run_dir.resolve())}
    save_safetensors(weights, tmp / "model.safetensors", metadata=meta)
    (tmp / "README.md").write_text(model_card(cfg, summary, info, encoder_params(spec)))
    if out_dir.exists():
        shutil.rmtree(out_dir)
    tmp.rename(out_dir)
    return {"out": str(out_dir), "architecture": config["architecture"], "num_classes": num_classes,
            "tensors": len(weights), "files": sorted(p.name for p in out_dir.iterdir())}
