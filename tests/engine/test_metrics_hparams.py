"""Each run's hyperparameters go into its own tb/ through TensorBoard's HParams plugin, so that
`tensorboard --logdir SWEEP/runs` shows one table of every run (read back here with TensorBoard's own event
multiplexer, the reader the plugin uses); a resume adds no second record. W&B (optional) gets the same
scalars and keeps its run id in the checkpoint (offline mode, slow test)."""

import json
import os
from pathlib import Path

import pytest
from tensorboard.backend.event_processing.plugin_event_multiplexer import EventMultiplexer
from tensorboard.plugins.hparams import metadata
from train_helpers import run_train

from scaling.engine.metrics import MetricsLogger

REPO = Path(__file__).resolve().parents[2]


def _hparams_table(root: Path) -> dict[str, dict]:
    """run -> {"hparams": {...}, "ended": bool, "scalars": {tag: last value}}, as the HParams plugin reads them."""
    mux = EventMultiplexer()
    mux.AddRunsFromDirectory(str(root))
    mux.Reload()
    table = {}
    for run, tags in mux.PluginRunToTagToContent(metadata.PLUGIN_NAME).items():
        start = metadata.parse_session_start_info_plugin_data(tags[metadata.SESSION_START_INFO_TAG])
        hparams = {k: v.number_value if v.HasField("number_value") else v.string_value
                   for k, v in start.hparams.items()}
        tensors = mux.GetAccumulator(run).Tags()["tensors"]
        scalars = {t: mux.Tensors(run, t)[-1].tensor_proto.float_val[0] for t in tensors if t.startswith("train/")}
        table[run] = {"hparams": hparams, "ended": metadata.SESSION_END_INFO_TAG in tags, "scalars": scalars}
    return table


def _start_records(tb: Path) -> int:
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader

    return sum(v.tag == metadata.SESSION_START_INFO_TAG for f in sorted(tb.iterdir())
               for event in EventFileLoader(str(f)).Load() for v in event.summary.value)


def _log(run: Path, start: int, total: int, hp: dict) -> None:
    logger = MetricsLogger(run, True, total, start, "test", hparams=hp)
    for step in range(start + 1, total + 1):
        logger.advance()
        logger.log({"step": step, "loss": 1.0 / step, "lr": 0.1})
    logger.close()


def test_one_table_of_every_run_and_a_resume_adds_no_second_record(tmp_path):
    runs = tmp_path / "sweep" / "runs"
    for name, lr in (("a", 1e-3), ("b", 2e-3)):
        (runs / name).mkdir(parents=True)
        _log(runs / name, 0, 3, {"model": "vit_micro_patch4", "samples": 192, "recipe": "mae", "lr": lr, "seed": 0})
    _log(runs / "a", 3, 5, {"model": "vit_micro_patch4", "samples": 320, "recipe": "mae", "lr": 1e-3, "seed": 0})
    assert [p.name for p in (runs / "a" / "tb").iterdir() if p.is_dir()] == []  # no add_hparams sub-folders
    assert _start_records(runs / "a" / "tb") == 1
    table = _hparams_table(runs)
    assert set(table) == {"a/tb", "b/tb"}
    assert table["b/tb"]["hparams"]["lr"] == pytest.approx(2e-3) and table["a/tb"]["hparams"]["samples"] == 192
    assert table["a/tb"]["hparams"]["recipe"] == "mae" and all(r["ended"] for r in table.values())
    assert table["a/tb"]["scalars"]["train/loss"] == pytest.approx(1 / 5)  # the resumed run's last value


def _wandb_records(path: Path) -> list:
    """The records of a W&B transaction log (RUN.wandb): a 7-byte header, then LevelDB's log format (32 KiB
    blocks of chunks: crc32, length, type FULL=1/FIRST=2/MIDDLE=3/LAST=4) of wandb_internal_pb2.Record."""
    import struct

    from wandb.proto import wandb_internal_pb2

    data, pos, records, chunk = path.read_bytes(), 7, [], b""
    assert data[:4] == b":W&B"
    while pos + 7 <= len(data):
        if 32768 - pos % 32768 < 7:  # a block's tail too short for a chunk header is padding
            pos += 32768 - pos % 32768
            continue
        _, size, kind = struct.unpack("<IHB", data[pos:pos + 7])
        if size == 0 and kind == 0:
            break
        chunk, pos = chunk + data[pos + 7:pos + 7 + size], pos + 7 + size
        if kind in (1, 4):
            records.append(wandb_internal_pb2.Record.FromString(chunk))
            chunk = b""
    return records


def _wandb_history(run: Path) -> tuple[set[str], list[int]]:
    """(W&B run ids, logged steps) of the offline runs under run/wandb/; every history record must hold the
    scalars of metrics.jsonl."""
    ids, steps = set(), []
    for log in sorted((run / "wandb").glob("offline-run-*/*.wandb")):
        for record in _wandb_records(log):
            if record.WhichOneof("record_type") == "run":
                ids.add(record.run.run_id)
            if record.WhichOneof("record_type") == "history":
                items = {i.key or "/".join(i.nested_key): i.value_json for i in record.history.item}
                assert "train/loss" in items and "train/lr" in items, items
                steps.append(int(items["_step"]))
    return ids, steps


def test_wandb_offline_gets_the_scalars_and_a_resume_continues_its_run(tmp_path, monkeypatch):
    wandb = pytest.importorskip("wandb")  # optional: pip install 'maws-scaling[wandb]'
    from scaling.engine.wandb_run import LoggingConfig

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    cfg, run = LoggingConfig(wandb="scaling-test"), tmp_path / "run"
    run.mkdir()
    first = MetricsLogger(run, True, 4, 0, "test", hparams={"lr": 1e-3}, wandb=cfg)
    for step in (1, 2):
        first.advance()
        first.log({"step": step, "loss": 1.0 / step, "lr": 0.1})
    first.close()  # as a preempted job: the id goes into the checkpoint (TrainState.wandb_id)
    again = MetricsLogger(run, True, 4, 2, "test", hparams={"lr": 1e-3}, wandb=cfg, wandb_id=first.wandb_id)
    for step in (3, 4):
        again.advance()
        again.log({"step": step, "loss": 1.0 / step, "lr": 0.1})
    again.close()
    wandb.teardown()  # stops W&B's service process (a training process ends it by exiting)
    ids, steps = _wandb_history(run)
    assert ids == {first.wandb_id} and again.wandb_id == first.wandb_id and steps == [1, 2, 3, 4]


@pytest.mark.slow
def test_a_real_run_and_its_resume_in_tensorboard_and_wandb_offline(tmp_path):
    """Two steps, a checkpoint, a resume to four: one HParams session with the run's real hyperparameters; with
    W&B (offline) both processes log to the run whose id the checkpoint kept."""
    pytest.importorskip("wandb")
    run = tmp_path / "runs" / "mae"
    common = ["tiny/mae", f"run_dir={run}", "batch.micro_batch=32", "batch.grad_accum=1",
              "logging.wandb=scaling-test", "resume=auto"]
    os.environ.update(WANDB_MODE="offline", WANDB_SILENT="true")
    try:
        run_train(common[0], [*common[1:], "total_samples=64"])
        first = json.loads((run / "summary.json").read_text())
        run_train(common[0], [*common[1:], "total_samples=128", "allow_changes=total_samples"])
    finally:
        os.environ.pop("WANDB_MODE")
        os.environ.pop("WANDB_SILENT")
    assert first["samples_seen"] == 64
    assert _start_records(run / "tb") == 1
    hp = _hparams_table(tmp_path / "runs")["mae/tb"]["hparams"]
    assert hp["model"] == "vit_micro_patch4" and hp["samples"] == 64 and hp["batch"] == 32
    assert hp["lr"] == pytest.approx(2e-3) and hp["recipe"] == "mae" and hp["seed"] == 0
    ids, steps = _wandb_history(run)
    assert len(ids) == 1 and steps == [1, 2, 3, 4]  # two processes, one W&B run (the checkpoint kept its id)
