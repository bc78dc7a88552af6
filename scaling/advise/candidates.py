"""Candidate runs in and out of `scaling advise`: a grid from the model registry x sample budgets (the runs
`scaling sweep` would write, with its params and FLOPs), and the chosen runs back as sweep specs.

A sweep spec is a product models x samples x recipes x seeds, so chosen runs that do not form one product
are written as several specs (OUT.yaml, OUT-2.yaml, ...), each of which `scaling sweep` runs as it is.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import yaml

from scaling.config import ConfigError, from_dict, load_yaml
from scaling.laws.table import DataError

GRID_COLUMNS = ("run", "model", "params", "samples", "flops", "total_flops", "recipe", "seed", "stage",
                "gpu_hours", "depends_on")


def _spec_dict(spec: str | None, models: list[str] | None, samples: list[int] | None,
               recipes: list[str] | None) -> dict:
    base = load_yaml(spec) if spec else {"name": "advise", "recipes": ["wsp"]}
    if models:
        base["models"] = models
    if samples:
        base["samples"] = samples
        base.pop("flops", None)
    if recipes:
        base["recipes"] = recipes
    return base


def _expand(data: dict) -> list:
    from scaling.sweep.grid import expand
    from scaling.sweep.spec import SweepSpec

    try:
        spec = from_dict(SweepSpec, data)
        with tempfile.TemporaryDirectory() as tmp:
            return expand(spec, Path(tmp))
    except (ConfigError, ValueError) as e:
        raise DataError(f"candidate grid: {e}") from e


def grid(spec: str | None = None, models: list[str] | None = None, samples: list[int] | None = None,
         recipes: list[str] | None = None) -> list[dict]:
    """One row per run the sweep would train (stage-1 runs shared by mae_wsp runs left out: they are not a
    choice), with its params, samples (whole global batches), flops and total_flops."""
    data = _spec_dict(spec, models, samples, recipes)
    rows = []
    for run in _expand(data):
        if run.name.startswith("mae1-"):
            continue
        row = run.row(Path("."))
        rows.append({c: row.get(c, "") for c in GRID_COLUMNS})
    return rows


def _parts(chosen: list[dict]) -> list[dict]:
    """The chosen runs as products: {samples-set, recipe, seed} -> models, then recipes merged."""
    missing = [c for c in ("model", "samples") if any(c not in r or r[c] in ("", None) for r in chosen)]
    if missing:
        raise DataError(f"--sweep-spec: the chosen candidates have no {', '.join(missing)} column; write "
                        f"candidates with `scaling advise --grid` (or give model and samples columns)")
    by_run: dict[tuple, set] = {}
    for r in chosen:
        key = (r["model"], str(r.get("recipe") or "wsp"), int(float(r.get("seed") or 0)))
        by_run.setdefault(key, set()).add(int(float(r["samples"])))
    parts: dict[tuple, list[str]] = {}
    for (model, recipe, seed), samples in by_run.items():
        parts.setdefault((tuple(sorted(samples)), recipe, seed), []).append(model)
    merged: dict[tuple, list[str]] = {}
    for (samples, recipe, seed), models in parts.items():
        merged.setdefault((samples, tuple(sorted(models)), seed), []).append(recipe)
    return [{"samples": list(s), "models": list(m), "seeds": [seed], "recipes": sorted(r)}
            for (s, m, seed), r in merged.items()]


def write_sweep_specs(chosen: list[dict], out: str | Path, spec: str | None = None,
                      stage1_from: str | None = None) -> list[Path]:
    """Write the chosen runs as sweep spec(s) based on `spec` (its scheduler, configs, overrides); each is
    checked by expanding it as `scaling sweep` will, so a spec that would not run is never written.
    `stage1_from`: the sweep folder whose finished stage-1 runs the mae_wsp runs start from (not trained again)."""
    out = Path(out)
    paths = []
    base = load_yaml(spec) if spec else {"name": "advise", "scheduler": "slurm"}
    texts = []
    for i, part in enumerate(_parts(chosen)):
        data = {k: v for k, v in base.items() if k not in ("flops", "samples", "models", "recipes", "seeds")}
        data.update(part)
        data["name"] = f"{base.get('name', 'sweep')}_advise" + (f"_{i + 1}" if i else "")
        if "mae_wsp" in data["recipes"] and not data.get("stage1_samples"):
            raise DataError("--sweep-spec: mae_wsp runs need stage1_samples; pass --spec with the sweep's spec")
        if stage1_from and "mae_wsp" in data["recipes"]:
            data["stage1_from"] = str(Path(stage1_from).resolve())
        _expand(data)
        path = out if i == 0 else out.with_name(f"{out.stem}-{i + 1}{out.suffix}")
        texts.append((path, data))
        paths.append(path)
    for path, data in texts:
        path.parent.mkdir(parents=True, exist_ok=True)
        head = "# written by `scaling advise --sweep-spec`: the chosen runs; run with `scaling sweep THIS --out DIR`\n"
        path.write_text(head + yaml.safe_dump(data, sort_keys=False))
    return paths
