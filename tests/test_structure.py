"""The shape of the code: no import circle between specrobust's modules, and no module importing
from a layer above its own (imports inside functions count: they are circles all the same, only
later). Read from the source with ``ast``; nothing is imported."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SOURCE = Path(__file__).parent.parent / "src" / "specrobust"

# Low to high: modules and packages (a dotted name places one module of a package apart from
# the rest). A module may import from its own layer and the ones below it, never above.
LAYERS = (
    ("errors", "registry", "settings", "numbers", "typed", "seeds", "files.layout", "fourier",
     "progress"),
    ("files", "boundary", "machine", "figures", "models", "data", "sar", "recipes"),
    ("checkpoint", "attacks"),
    ("loading",),
    ("jobs", "evaluation", "analysis", "training", "config"),
    ("report", "study", "api", "cli", "recipes.listing"),
)
# Within the task layer, evaluation and analysis are below training (the training loop measures
# with the evaluation's batching), and neither looks up at it.
BELOW_TRAINING = ("evaluation", "analysis")


def _modules() -> dict[str, Path]:
    found = {}
    for path in SOURCE.rglob("*.py"):
        parts = path.relative_to(SOURCE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def _imports(path: Path, modules: dict[str, Path]) -> set[str]:
    """The specrobust modules ``path`` imports, anywhere in it."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("specrobust"):
            for alias in node.names:
                submodule = f"{node.module}.{alias.name}"
                names.add(submodule if submodule in modules else node.module)
        elif isinstance(node, ast.Import):
            names |= {a.name for a in node.names if a.name.startswith("specrobust")}
    return names & set(modules)


def _top(module: str) -> str:
    """``specrobust.evaluation.runner`` -> ``evaluation``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _layer(module: str) -> int | None:
    """The layer of the longest name in LAYERS that is the module or a package holding it."""
    name = module.removeprefix("specrobust.")
    placed = [(len(entry), i) for i, layer in enumerate(LAYERS) for entry in layer
              if name == entry or name.startswith(entry + ".")]
    return max(placed)[1] if placed else None


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(path, modules) for name, path in modules.items()}


def test_every_module_has_a_layer(graph):
    assert [m for m in graph if _top(m) and _layer(m) is None] == []


def test_no_module_imports_from_a_layer_above_its_own(graph):
    upward = [(m, target) for m, targets in graph.items() for target in targets
              if _top(m) and _top(target) and _layer(target) > _layer(m)]
    upward += [(m, target) for m, targets in graph.items() for target in targets
               if _top(m) in BELOW_TRAINING and _top(target) == "training"]
    assert upward == []


def test_no_import_circle(graph):
    """Strongly connected components of the import graph (Tarjan's algorithm): each must be a
    single module. A package's ``__init__`` importing its own modules is not a circle unless
    one of them imports the package back."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    circles = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in graph[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    for node in graph:
        if node not in index:
            visit(node)
    assert circles == []
