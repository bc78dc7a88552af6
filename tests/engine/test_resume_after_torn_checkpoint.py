"""A run killed while a checkpoint is being written resumes from the previous one, exactly."""

from train_helpers import losses, run_train

from scaling.engine.checkpoint import MARKER, complete_checkpoints


def test_torn_checkpoint_is_ignored(tmp_path, tiny_mae):
    run = tmp_path / "run"
    common = ["data.train=synthetic", "total_samples=256", "batch.micro_batch=16", "batch.grad_accum=2",
              "checkpoint_every=64", "keep_checkpoints=10"]
    run_train(tiny_mae, [f"run_dir={run}", *common])
    reference = losses(run)
    assert [p.name for p in complete_checkpoints(run)][-2:] == ["step_000000006", "step_000000008"]
    # What a kill in the middle of saving step 8 leaves: shards partly written, no completion marker.
    torn = run / "checkpoints" / "step_000000008"
    (torn / MARKER).unlink()
    for f in torn.rglob("*.pt"):
        f.write_bytes(f.read_bytes()[: len(f.read_bytes()) // 3])
    run_train(tiny_mae, [f"run_dir={run}", *common, "resume=auto"])
    assert losses(run) == reference  # steps 7 and 8 replayed from step 6, bit for bit (fp32, one process)
    assert [p.name for p in complete_checkpoints(run)][-1] == "step_000000008"
