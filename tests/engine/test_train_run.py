"""`scaling train` end to end in one process: the files a run leaves, the guards on bad input."""

import json
from pathlib import Path

import torch
import yaml
from train_helpers import REPO, losses, run_train

from scaling.engine.checkpoint import complete_checkpoints
from scaling.engine.metrics import METRIC_KEYS

FAST = ["total_samples=256", "data.train=synthetic", "batch.micro_batch=16", "batch.grad_accum=2"]


def test_mae_run_leaves_every_file(tmp_path, tiny_mae):
    run = tmp_path / "mae"
    run_train(tiny_mae, [f"run_dir={run}", *FAST, "checkpoint_every=128"])
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    assert cfg["stage"] == "mae" and cfg["total_samples"] == 256 and cfg["run_dir"] == str(run)
    ds = json.loads((run / "ds_config.json").read_text())
    assert ds["train_batch_size"] == 32 and ds["zero_optimization"]["stage"] == 3
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == list(range(1, 9))
    assert all(set(METRIC_KEYS) <= set(r) for r in rows)
    assert rows[-1]["samples_seen"] == 256 and rows[0]["mfu"] is None and rows[0]["tflops_per_device"] > 0
    assert list((run / "tb").glob("events.out.tfevents.*"))
    assert [p.name for p in complete_checkpoints(run)] == ["step_000000004", "step_000000008"]
    summary = json.loads((run / "summary.json").read_text())
    assert summary["samples_seen"] == 256 and summary["stage"] == "mae" and summary["params"] > 0
    assert summary["flops"] > 0 and abs(summary["loss"] - rows[-1]["loss"]) < 1e-9
    # the saved config reloads and reproduces the run's settings
    again = run_train(str(run / "config.yaml"), ["--print-config"])
    assert yaml.safe_load(again.stdout)["total_samples"] == 256


def test_existing_run_is_never_overwritten(tmp_path, tiny_mae):
    run = tmp_path / "mae"
    run_train(tiny_mae, [f"run_dir={run}", *FAST])
    before = (run / "metrics.jsonl").read_text()
    proc = run_train(tiny_mae, [f"run_dir={run}", *FAST], check=False)
    assert proc.returncode != 0 and "already holds a run" in proc.stderr and "resume=auto" in proc.stderr
    bad = run_train(tiny_mae, [f"run_dir={run}", "optim.lrr=1"], check=False)
    assert bad.returncode == 2 and "Did you mean 'lr'" in bad.stderr
    assert (run / "metrics.jsonl").read_text() == before


def test_batch_sizes_that_do_not_divide_fail_before_training(tmp_path, tiny_mae):
    run = tmp_path / "mae"
    proc = run_train(tiny_mae, [f"run_dir={run}", "batch.global_batch=100"], check=False)
    assert proc.returncode == 2 and "global_batch=100" in proc.stderr and "= 64" in proc.stderr
    assert not run.exists()


def test_nan_loss_is_skipped_then_stops_with_checkpoint_intact(tmp_path, tiny_mae):
    run = tmp_path / "nan"
    run_train(tiny_mae, [f"run_dir={run}", *FAST, "debug.nan_loss_at_steps=[3]"])
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["skipped_steps"] == 1 and rows[-1]["samples_seen"] == 256
    stop = tmp_path / "stop"
    proc = run_train(
        tiny_mae,
        [f"run_dir={stop}", *FAST, "checkpoint_every=64", "max_bad_steps=1", "debug.nan_loss_at_steps=[5]"],
        check=False,
    )
    assert (
        proc.returncode == 3 and "NaN/Inf" in proc.stderr and "last good checkpoint is intact" in proc.stderr
    )
    assert [p.name for p in complete_checkpoints(stop)] == ["step_000000002", "step_000000004"]


def test_wsp_starts_from_stage1_encoder_with_fresh_head(tmp_path, tiny_mae, tiny_wsp):
    from scaling.engine.consolidate import consolidate_run

    mae = tmp_path / "mae"
    run_train(tiny_mae, [f"run_dir={mae}", *FAST])
    wsp = tmp_path / "wsp"
    # total_samples=32 with lr 0: one step that leaves every weight where it started
    run_train(
        tiny_wsp,
        [
            f"run_dir={wsp}",
            f"init_from={mae}",
            "total_samples=32",
            "batch.micro_batch=16",
            "optim.lr=1e-30",
            "optim.min_lr=0",
            "optim.weight_decay=0",
        ],
    )
    stage1, _ = consolidate_run(mae)
    stage2, _ = consolidate_run(wsp)
    encoder = {k[len("encoder.") :]: v for k, v in stage1.items() if k.startswith("encoder.")}
    assert set(stage2) - set(encoder) == {"head.weight", "head.bias"}
    for k, v in encoder.items():
        assert torch.equal(stage2[k], v), k
    assert stage2["head.weight"].abs().max() < 0.1  # fresh, small init
    assert json.loads((wsp / "summary.json").read_text())["recipe"] == "mae_wsp"


def test_missing_stage1_weights_is_clear(tmp_path, tiny_wsp):
    proc = run_train(tiny_wsp, [f"run_dir={tmp_path / 'wsp'}", f"init_from={tmp_path / 'nope'}"], check=False)
    assert proc.returncode != 0 and "does not exist" in proc.stderr


def test_export_loads_into_timm_and_matches(tmp_path, tiny_mae):
    import timm.models.vision_transformer as timm_vit

    from scaling.export import main as export_main
    from scaling.models import create_mae
    from scaling.models.weights import read_weights

    run = tmp_path / "mae"
    run_train(tiny_mae, [f"run_dir={run}", *FAST])
    out = tmp_path / "enc.safetensors"
    assert export_main([str(run), str(out)]) == 0
    sd = read_weights(out)
    theirs = timm_vit.VisionTransformer(
        img_size=32,
        patch_size=4,
        num_classes=0,
        embed_dim=64,
        depth=4,
        num_heads=4,
        mlp_ratio=4.0,
        qkv_bias=True,
    ).eval()
    theirs.load_state_dict(sd, strict=True)
    ours = create_mae("vit_micro_patch4").eval()
    ours.encoder.load_state_dict(sd, strict=True)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert (ours.encoder(x) - theirs(x)).abs().max() < 1e-5


def test_resume_in_one_process_continues_exactly(tmp_path, tiny_mae):
    full = tmp_path / "full"
    run_train(tiny_mae, [f"run_dir={full}", *FAST])
    part = tmp_path / "part"
    run_train(tiny_mae, [f"run_dir={part}", *FAST, "total_samples=128"])
    # total_samples moves the cosine horizon: a resume refuses it unless allowed (both runs use 256's here)
    run_train(tiny_mae, [f"run_dir={part}", *FAST, "resume=auto", "allow_changes=total_samples"])
    assert losses(part) == losses(full)  # fp32, same process count: bit-identical


def test_bf16_on_cpu_learns(tmp_path, tiny_wsp):
    run = tmp_path / "bf16"
    run_train(
        tiny_wsp,
        [
            f"run_dir={run}",
            "deepspeed.precision=bf16",
            "total_samples=1600",
            "batch.micro_batch=32",
            "batch.grad_accum=1",
            "log_every=1",
        ],
    )
    curve = losses(run)
    assert len(curve) == 50
    first, last = sum(curve[:5]) / 5, sum(curve[-5:]) / 5
    assert last < 0.7 * first, (first, last)


def test_help_explains(tmp_path):
    proc = run_train(str(REPO / "configs/tiny/mae.yaml"), ["--help"])
    assert "examples:" in proc.stdout and "deepspeed --num_gpus" in proc.stdout
    assert Path(REPO / "README.md").is_file()
