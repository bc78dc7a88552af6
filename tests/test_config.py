from dataclasses import dataclass, field
from typing import Literal

import pytest

from scaling.config import ConfigError, apply_overrides, from_dict, load_yaml, to_dict


@dataclass
class Optim:
    lr: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.95)


@dataclass
class Job:
    name: str = "x"
    steps: int = 10
    mode: Literal["a", "b"] = "a"
    resume: str | None = None
    optim: Optim = field(default_factory=Optim)

    def __post_init__(self):
        if self.steps <= 0:
            raise ValueError(f"steps must be positive, got {self.steps}")


def test_defaults_then_yaml_then_overrides(tmp_path):
    (tmp_path / "c.yaml").write_text("steps: 5\noptim:\n  lr: 0.1\n")
    data = apply_overrides(load_yaml(tmp_path / "c.yaml"), ["optim.lr=2e-4", "mode=b", "steps=1e3"])
    job = from_dict(Job, data)
    assert job.steps == 1000 and job.mode == "b" and job.optim.lr == 2e-4 and job.optim.betas == (0.9, 0.95)
    assert to_dict(job)["optim"]["betas"] == [0.9, 0.95]


def test_unknown_key_names_nearest():
    with pytest.raises(ConfigError, match="Did you mean 'lr'"):
        from_dict(Job, {"optim": {"lrr": 1}})


def test_wrong_type_names_field():
    with pytest.raises(ConfigError, match="steps: expected an integer"):
        from_dict(Job, {"steps": "many"})
    with pytest.raises(ConfigError, match="mode: 'c' is not one of"):
        from_dict(Job, {"mode": "c"})


def test_post_init_errors_become_config_errors():
    with pytest.raises(ConfigError, match="steps must be positive"):
        from_dict(Job, {"steps": 0})


def test_override_syntax_and_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="key.sub=value"):
        apply_overrides({}, ["nonsense"])
    with pytest.raises(ConfigError, match="does not exist"):
        load_yaml(tmp_path / "nope.yaml")
