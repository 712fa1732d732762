"""How many of specrobust's modules `specrobust eval` passes through, and from how many modules
each small helper module is called: the count issue 23 asked to reduce.

    python benchmarks/eval_path.py [--with-imports] [--edges]

It saves a random `cnn_small` checkpoint on small synthetic data, then runs `specrobust eval` on
it (clean, FGSM, PGD-3, self-checks) under a profiler hook that records every call made in a
specrobust module after start-up, and prints the modules the calls ran in, how many distinct
module-to-module calls there were (``--edges`` lists them) and, for each helper, the modules
that called it. Run it with another checkout's `src` first on PYTHONPATH to count that code the
same way.

It also follows the evaluation job (the ``EvalJob`` that `specrobust eval` builds from its
options): the modules whose functions receive it, or a settings object derived from it, as an
argument. That is the path a reader follows from the command to the attack (issue 32 asks for
at most 15 modules).

Calls made while a module is being imported (class bodies, dataclass machinery, tables built at
import) are not counted: they are not the evaluation's data flow, and which modules a command
imports is a matter of import placement. ``--with-imports`` counts them too (the count that an
earlier version of this script printed).
"""

from __future__ import annotations

import sys
import tempfile
from collections import defaultdict
from pathlib import Path

# The small modules the path comes back to, under today's names and the ones older checkouts
# use for the same code (devices, distributed, precision: machine; atomic, bounded: storage;
# modes: models; attacks.norms: settings), so that both are counted alike.
HELPERS = ("numbers", "seeds", "locks", "progress", "settings", "errors", "layout", "machine",
           "storage", "devices", "distributed", "precision", "modes", "attacks.norms", "atomic",
           "bounded")


def _module(frame) -> str | None:
    name = frame.f_globals.get("__name__", "")
    return name[len("specrobust."):] if name.startswith("specrobust.") else None


def _importing(frame) -> bool:
    """Whether ``frame`` runs inside a module being imported (not the script's own top level)."""
    while frame is not None:
        if frame.f_code.co_name == "<module>" and frame.f_globals.get("__name__") != "__main__":
            return True
        frame = frame.f_back
    return False


def main() -> None:
    import torch

    from specrobust.checkpoint import save_checkpoint
    from specrobust.cli import main as cli
    from specrobust.models import create_model

    with_imports = "--with-imports" in sys.argv[1:]
    data = "synthetic:band=low,n_train=40,n_test=24,seed=3"
    with tempfile.TemporaryDirectory() as scratch:
        checkpoint = Path(scratch) / "m.pt"
        torch.manual_seed(0)
        save_checkpoint(checkpoint, create_model("cnn_small", 10), dataset=data, eps="8/255")
        modules: set[str] = set()
        job_modules: dict[str, set[str]] = defaultdict(set)  # module -> functions given the job
        callers: dict[str, set[str]] = defaultdict(set)
        edges: set[tuple[str, str]] = set()

        def hook(frame, event, _):
            if event != "call":
                return
            module = _module(frame)
            if module is None or frame.f_code.co_name == "<module>":
                return
            if not with_imports and _importing(frame):
                return
            modules.add(module)
            code = frame.f_code
            arguments = code.co_varnames[:code.co_argcount + code.co_kwonlyargcount]
            if any(type(frame.f_locals.get(a)).__name__ in ("EvalJob", "Settings")
                   for a in arguments):
                job_modules[module].add(code.co_name)
            caller = frame.f_back and _module(frame.f_back)
            if caller and caller != module:
                edges.add((caller, module))
                if module in HELPERS:
                    callers[module].add(caller)

        sys.setprofile(hook)
        try:
            code = cli(["eval", str(checkpoint), "--attacks", "clean,fgsm,pgd:steps=3", "--n",
                        "16", "--check-n", "8", "--out", str(Path(scratch) / "e.json")])
        finally:
            sys.setprofile(None)
    assert code == 0
    import specrobust

    print(f"code: {Path(specrobust.__file__).parent}")
    counted = "imports included" if with_imports else "imports excluded"
    print(f"specrobust modules `eval` ran code in ({counted}): {len(modules)}")
    print("  " + ", ".join(sorted(modules)))
    print(f"modules whose functions are given the job or its settings: {len(job_modules)}")
    for module in sorted(job_modules):
        print(f"  {module}: {', '.join(sorted(job_modules[module]))}")
    print(f"module -> module call edges: {len(edges)}")
    if "--edges" in sys.argv[1:]:
        for caller, callee in sorted(edges):
            print(f"  {caller} -> {callee}")
    print(f"helper <- caller pairs: {sum(len(c) for c in callers.values())}")
    for helper in HELPERS:
        if callers.get(helper):
            print(f"{helper}: called from {len(callers[helper])} modules "
                  f"({', '.join(sorted(callers[helper]))})")


if __name__ == "__main__":
    main()
