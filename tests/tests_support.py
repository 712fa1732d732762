"""Small things several test modules need."""

from __future__ import annotations

from pathlib import Path

import yaml

TINY_RECIPE = {
    "seed": 1,
    "data": {"dataset": "synthetic:band=low,n_train=200,n_test=40", "val_fraction": 0.2},
    "model": {"name": "cnn_small"},
    "optim": {"epochs": 1, "batch_size": 64, "lr": 0.05, "milestones": []},
    "attack": {"eps": "8/255", "alpha": "4/255", "steps": 1},
    "validation": {"n": 20, "pgd_steps": 1},
    "run": {"progress": False},
}


ROOT = Path(__file__).resolve().parents[1]


def script(path: str):
    """A script of the repository (``benchmarks/NAME.py``, ``docs/generate.py``) as a module,
    for the tests that check it or use its functions: scripts are not part of the package."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(Path(path).stem, ROOT / path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def tiny_recipe(directory: Path) -> Path:
    """A one-epoch recipe on tiny synthetic data, written to ``directory/tiny.yaml``."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "tiny.yaml"
    path.write_text(yaml.safe_dump(TINY_RECIPE))
    return path


def at_and_sar_recipes(directory: Path, epochs: int, decay: int, n_train: int = 200) -> None:
    """``directory/at.yaml`` (tiny PGD-AT with SWA, learning rate decayed and a snapshot kept
    after epoch ``decay``) and ``at_sar.yaml`` (the same with SAR, to branch from AT there)."""
    directory.mkdir(parents=True, exist_ok=True)
    data = {**TINY_RECIPE["data"],
            "dataset": f"synthetic:band=low,n_train={n_train},n_test=40"}
    at = {**TINY_RECIPE, "data": data,
          "optim": {**TINY_RECIPE["optim"], "epochs": epochs, "milestones": [decay]},
          "averaging": {"kind": "swa"}, "run": {**TINY_RECIPE["run"], "snapshot_epochs": [decay]}}
    (directory / "at.yaml").write_text(yaml.safe_dump(at))
    (directory / "at_sar.yaml").write_text(yaml.safe_dump(
        {"base": "at.yaml", "sar": {"enabled": True}, "run": {"snapshot_epochs": []}}))


def write_tally(tally: dict) -> None:
    """Add ``tally`` (cases tried, by class) to the file ``SPECROBUST_RELIABILITY_TALLY`` names,
    where ``benchmarks/reliability.py`` reads the counts of every module that keeps one."""
    import json
    import os

    target = os.environ.get("SPECROBUST_RELIABILITY_TALLY")
    if not target:
        return
    path = Path(target)
    merged = json.loads(path.read_text()) if path.is_file() else {}
    for kind, count in tally.items():
        merged[kind] = merged.get(kind, 0) + count
    path.write_text(json.dumps(merged, indent=1, sort_keys=True) + "\n")
