"""Where the files that ship with the toolkit are, wherever it is installed.

Ready recipes (`configs/`), DeepSpeed policies (`ds_configs/`), job scripts and sweep specs (`jobs/`) sit at
the top of the repository and install inside the package (setup.py maps them, as it maps `kernels/` to
`scaling.kernels`): `site-packages/scaling/configs/...` from a wheel, `REPO/configs/...` in a checkout or an
editable install. Bundled data is `scaling/assets/` in both. Every command finds them here, so a recipe, a
policy or a spec is named the same way from any folder:

  --config tiny/mae                    a ready recipe by name (also `tiny/mae.yaml`, or the repository path
                                       `configs/tiny/mae.yaml`, which works from any folder)
  deepspeed.config=zero3_bf16.json     a packaged policy (or any path)
  scaling sweep tiny_cpu               a packaged sweep spec (or `jobs/sweeps/tiny_cpu.yaml`, or any path)
  data.train=bundled:photos7           bundled data, never resolved against the current folder

A path that exists as given (relative to the current folder, or absolute) always wins, so a user's own
`configs/tiny/mae.yaml` in their project is read rather than ours.
"""

from __future__ import annotations

from pathlib import Path

from scaling.config import ConfigError

PACKAGE = Path(__file__).resolve().parent
ASSETS = PACKAGE / "assets"
BUNDLED = "bundled:"  # data.train=bundled:photos7 -> ASSETS/photos7
LEGACY_ASSETS = "scaling/assets/"  # how ready configs named bundled data before `bundled:`


def folder(kind: str) -> Path:
    """The folder of `kind` (configs, ds_configs, jobs): inside the package when installed from a wheel,
    beside it in a checkout."""
    installed = PACKAGE / kind
    return installed if installed.is_dir() else PACKAGE.parent / kind


def _names(root: Path, suffix: str, keep_suffix: bool) -> list[str]:
    if not root.is_dir():
        return []
    paths = (p.relative_to(root) for p in root.rglob(f"*{suffix}"))
    return sorted(str(p if keep_suffix else p.with_suffix("")) for p in paths)


def _find(text: str, root: Path, prefix: str, suffix: str, what: str, keep_suffix: bool = False) -> Path:
    """`text` as a path if it is a file; else the packaged file it names, with or without `prefix` (the
    repository path, e.g. `configs/`) and `suffix`."""
    path = Path(text).expanduser()
    if path.is_file():
        return path
    name = text[len(prefix):] if text.startswith(prefix) else text
    candidate = root / (name if name.endswith(suffix) else name + suffix)
    if not path.is_absolute() and candidate.is_file():
        return candidate
    ready = _names(root, suffix, keep_suffix)
    listed = ", ".join(ready) if ready else f"none (no {root})"
    raise ConfigError(f"{what} {text!r} does not exist, as a path or as a ready name; ready ones: {listed}.")


def find_config(text: str | Path) -> Path:
    """A run config: a YAML path, or a ready recipe by name (`tiny/mae`, `mae/vit_huge_patch14`)."""
    return _find(str(text), folder("configs"), "configs/", ".yaml", "config file")


def find_ds_config(text: str | Path) -> Path:
    """A DeepSpeed policy: a JSON path, or a packaged one by name (`zero3_bf16.json`, `zero3_bf16`)."""
    return _find(str(text), folder("ds_configs"), "ds_configs/", ".json", "DeepSpeed config", keep_suffix=True)


def find_sweep_spec(text: str | Path) -> Path:
    """A sweep spec: a YAML path, or a packaged one by name (`tiny_cpu`, `jobs/sweeps/paper_grid.yaml`)."""
    return _find(str(text), folder("jobs") / "sweeps", "jobs/sweeps/", ".yaml", "sweep spec")


def ds_config_names() -> list[str]:
    """The packaged DeepSpeed policies' file names."""
    return sorted(p.name for p in folder("ds_configs").glob("*.json"))


def ready_config(stage: str, model: str) -> Path | None:
    """configs/STAGE/MODEL.yaml of the packaged recipes, or None."""
    path = folder("configs") / stage / f"{model}.yaml"
    return path if path.is_file() else None


def job_script(name: str) -> Path:
    """A packaged job script (`slurm_train.sh`, `single_node.sh`)."""
    return folder("jobs") / name


def data_source(spec: str) -> str:
    """A data source with its bundled names made absolute: `bundled:NAME/...` always, and the older
    repository path `scaling/assets/NAME/...` when it does not exist in the current folder. Each part of a
    `::` list is resolved; everything else (paths, patterns, URLs, `synthetic`) is returned unchanged."""
    if BUNDLED not in spec and LEGACY_ASSETS not in spec:
        return spec
    return "::".join(_bundled(part) for part in spec.split("::"))


def _bundled(part: str) -> str:
    stripped = part.strip()
    if stripped.startswith(BUNDLED):
        rest = stripped[len(BUNDLED):].strip("/")
        if not rest or not (ASSETS / rest.split("/")[0]).exists():
            names = ", ".join(sorted(p.name for p in ASSETS.iterdir() if p.is_dir()))
            raise ConfigError(f"bundled data {stripped!r} does not exist; bundled data sets: {names}.")
        return str(ASSETS / rest)
    if stripped.startswith(LEGACY_ASSETS) and not Path(stripped.split("{")[0]).exists():
        return str(ASSETS / stripped[len(LEGACY_ASSETS):])
    return part
