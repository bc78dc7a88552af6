"""Every numeric key of the run config is range-checked at load: the error names the key, the value and the
valid range (scaling.config.check_ranges); `optim.lr: auto` is the spelling of "derive it"."""

import dataclasses
import typing

import pytest

from scaling.config import ConfigError, Range
from scaling.engine.config import TrainConfig, load_config
from scaling.engine.config_diff import math_config
from scaling.engine.schedule import peak_lr


def _numeric(tp) -> bool:
    args = typing.get_args(tp)
    if tp in (int, float):
        return True
    return bool(args) and any(_numeric(a) for a in args if a is not type(None) and a is not Ellipsis)


def _numeric_keys(cls=TrainConfig, prefix=""):
    """(dotted key, owning class, field name) of every numeric field, nested sections included."""
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        if dataclasses.is_dataclass(tp):
            yield from _numeric_keys(tp, f"{prefix}{f.name}.")
        elif _numeric(tp):
            yield f"{prefix}{f.name}", cls, f.name


def _outside(r: Range, key: str) -> list[float]:
    """Values just outside the range: below it, on an open bound (optim.lr=0 is excepted: it reads as auto)."""
    values = [r.lo - 1] if r.lo is not None else []
    values += [r.lo] if r.lo_open and key != "optim.lr" else []
    values += [r.hi + 1] if r.hi is not None else []
    return values + ([r.hi] if r.hi_open else [])


KEYS = list(_numeric_keys())


def test_every_numeric_key_declares_its_range():
    missing = [key for key, cls, name in KEYS if name not in getattr(cls, "RANGES", {})]
    assert not missing, f"numeric config keys without a Range in their class's RANGES: {missing}"
    assert len(KEYS) >= 45  # the walk reached every section


@pytest.mark.parametrize("key,cls,name", KEYS, ids=[k for k, _, _ in KEYS])
def test_a_value_outside_the_range_is_refused_naming_key_value_and_range(key, cls, name):
    r = cls.RANGES[name]
    default = getattr(cls(), name)
    for bad in _outside(r, key):
        value = [bad] * len(default) if isinstance(default, tuple) else bad
        with pytest.raises(ConfigError) as e:
            load_config(None, [f"{key}={value}"])
        message = str(e.value)
        assert message.startswith(f"{key}=") and "out of range" in message and r.text() in message, message


def test_lr_minus_one_is_refused_and_auto_derives_it():
    with pytest.raises(ConfigError, match=r"optim.lr=-1.0 is out of range: it must be > 0 .*auto"):
        load_config(None, ["optim.lr=-1"])
    cfg = load_config(None, ["optim.base_lr=1.5e-4"])
    assert cfg.optim.lr == "auto" and peak_lr(cfg.optim.base_lr, cfg.optim.lr, 4096) == pytest.approx(2.4e-3)
    assert load_config(None, ["optim.lr=0"]).optim.lr == "auto"  # how older configs wrote auto
    assert peak_lr(1.5e-4, load_config(None, ["optim.lr=3e-4"]).optim.lr, 4096) == 3e-4
    with pytest.raises(ConfigError, match="optim.lr=nan is out of range"):
        load_config(None, ["optim.lr=.nan"])


def test_a_run_saved_with_lr_0_resumes_under_auto():
    assert math_config({"optim": {"lr": 0.0}}, 64) == math_config({"optim": {"lr": "auto"}}, 64)
    assert math_config({"optim": {"lr": 1e-3}}, 64) != math_config({"optim": {"lr": "auto"}}, 64)


def test_the_ready_configs_are_in_range():
    from scaling.resources import folder

    for path in sorted(folder("configs").rglob("*.yaml")):
        load_config(path)
