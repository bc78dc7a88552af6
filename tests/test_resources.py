"""Ready recipes, policies, sweep specs and bundled data are found by name from any folder (scaling.resources);
the wheel install itself is tests/test_wheel_install.py (slow)."""

from pathlib import Path

import pytest

from scaling.config import ConfigError
from scaling.resources import ASSETS, data_source, find_config, find_ds_config, find_sweep_spec, folder

REPO = Path(__file__).resolve().parents[1]


def test_ready_recipe_by_name_and_by_repository_path_from_another_folder(tmp_path, monkeypatch):
    from scaling.engine.config import load_config

    monkeypatch.chdir(tmp_path)
    by_name = find_config("tiny/mae")
    assert by_name == folder("configs") / "tiny" / "mae.yaml" and by_name.is_file()
    assert find_config("tiny/mae.yaml") == by_name == find_config("configs/tiny/mae.yaml")
    cfg = load_config("tiny/mae", ["run_dir=r"])
    # the bundled data of a ready config never resolves against the current folder
    assert Path(cfg.data.train) == ASSETS / "photos7" and (ASSETS / "photos7" / "shards.json").is_file()
    with pytest.raises(ConfigError, match=r"'tiny/nope' does not exist.*tiny/mae, tiny/wsp"):
        find_config("tiny/nope")


def test_a_file_that_exists_as_given_wins(tmp_path, monkeypatch):
    own = tmp_path / "configs" / "tiny" / "mae.yaml"
    own.parent.mkdir(parents=True)
    own.write_text("stage: mae\n")
    monkeypatch.chdir(tmp_path)
    assert find_config("configs/tiny/mae.yaml") == Path("configs/tiny/mae.yaml")
    with pytest.raises(ConfigError, match="does not exist"):  # an absolute path is never looked up by name
        find_config(str(tmp_path / "tiny" / "mae.yaml"))


def test_policies_specs_and_bundled_data_by_name(tmp_path, monkeypatch):
    from scaling.engine.config import load_config
    from scaling.engine.ds_config import load_policy

    monkeypatch.chdir(tmp_path)
    assert find_ds_config("zero3_bf16.json") == find_ds_config("zero3_bf16") == find_ds_config(
        "ds_configs/zero3_bf16.json")
    assert load_policy("zero3_bf16.json")["zero_optimization"]["stage"] == 3
    assert find_sweep_spec("tiny_cpu") == find_sweep_spec("jobs/sweeps/tiny_cpu.yaml") == (
        folder("jobs") / "sweeps" / "tiny_cpu.yaml")
    assert data_source("bundled:fashion_mnist/train") == str(ASSETS / "fashion_mnist" / "train")
    # the older repository spelling still works from another folder; patterns and lists keep their form
    assert data_source("scaling/assets/photos7/{000000..000001}.tar::synthetic") == (
        f"{ASSETS / 'photos7'}/{{000000..000001}}.tar::synthetic")
    assert data_source("/data/shards/{0..9}.tar") == "/data/shards/{0..9}.tar"
    cfg = load_config(None, ["data.val=bundled:fashion_mnist/val", "eval.knn_monitor=bundled:fashion_mnist"])
    assert Path(cfg.data.val).is_dir() and Path(cfg.eval.knn_monitor) == ASSETS / "fashion_mnist"
    with pytest.raises(ConfigError, match="bundled data 'bundled:mnist' does not exist.*fashion_mnist, photos7"):
        data_source("bundled:mnist")


def test_sweep_spec_by_name_from_another_folder(tmp_path, monkeypatch, capsys):
    from scaling.sweep.cli import main

    monkeypatch.chdir(tmp_path)
    assert main(["tiny_cpu", "--out", "sweep"]) == 0, capsys.readouterr().err
    job = next((tmp_path / "sweep" / "jobs").glob("mae1-*.sh")).read_text()
    assert f"cd {tmp_path}" in job  # runs where `scaling sweep` ran, not in the package's folder
    configs = list((tmp_path / "sweep" / "configs").glob("*.yaml"))
    assert len(configs) == 21


def test_repository_folders_are_the_ones_installed(tmp_path):
    """setup.py installs exactly the repository's folders (a checkout has no scaling/configs of its own)."""
    for kind in ("configs", "ds_configs", "jobs", "benchmarks/results"):
        assert folder(kind) == REPO / kind
