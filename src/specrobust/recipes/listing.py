"""What `specrobust recipes` prints: a line of facts per shipped recipe and plan, or one of
them in full. Above the recipes' finder (``specrobust.recipes``), since reading a recipe or a
plan takes the config and the plan reader, which themselves find files through it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from specrobust.files.storage import MAX_YAML_BYTES, read_regular
from specrobust.recipes import PLAN, RECIPE, find, shipped


@dataclass(frozen=True)
class Summary:
    name: str
    kind: str
    dataset: str
    model: str
    method: str
    epochs: str
    purpose: str


def summaries() -> list[Summary]:
    """One line of facts per shipped recipe and plan, for `specrobust recipes`."""
    from specrobust.config import load_config
    from specrobust.study.plan import load_plan
    from specrobust.training.rundir import method_name

    rows = []
    for name, path in shipped(RECIPE).items():
        config = load_config(path)
        rows.append(Summary(name, RECIPE, config.data.dataset, config.model.name,
                            method_name(config), str(config.optim.epochs), _purpose(path)))
    for name, path in shipped(PLAN).items():
        plan = load_plan(path)
        rows.append(Summary(name, PLAN, "", "", ", ".join(m.label for m in plan.methods),
                            f"seeds {','.join(map(str, plan.seeds))}", plan.title))
    return rows


def _purpose(path: Path, limit: int = 90) -> str:
    """The first line of a recipe's opening comment (what it is for), cut to ``limit``."""
    for line in read_regular(path, "recipe", MAX_YAML_BYTES).decode("utf-8", "replace"
                                                                  ).splitlines():
        if line.startswith("#"):
            text = line.lstrip("# ").strip()
            return text if len(text) <= limit else text[:limit - 1].rsplit(" ", 1)[0] + " …"
        if line.strip():
            break
    return ""


def show(name: str) -> str:
    """A shipped recipe with its bases merged, or a shipped plan as it is, as YAML text."""
    if name.removesuffix(".yaml") in shipped(PLAN) and name.removesuffix(".yaml") not in \
            shipped(RECIPE):
        return shipped(PLAN)[name.removesuffix(".yaml")].read_text()
    import yaml

    from specrobust.config import read_recipe

    path = find(name, RECIPE)
    recipe = read_recipe(path)  # first: it refuses what is not a recipe file, unread
    header = f"# {name}: {_purpose(path)}\n" if _purpose(path) else ""
    return header + yaml.safe_dump(recipe, sort_keys=False)
