"""How many of specrobust's modules `specrobust eval` passes through, and from how many modules
each small helper module is called: the count issue 23 asked to reduce.

    python benchmarks/eval_path.py

It saves a random `cnn_small` checkpoint on small synthetic data, then runs `specrobust eval` on
it (clean, FGSM, PGD-3, self-checks) under a profiler hook that records every call made in a
specrobust module after start-up (imports excluded: only calls whose caller is a function), and
prints the modules the calls ran in and, for each helper, the modules that called it. Run it
with another checkout's `src` first on PYTHONPATH to count that code the same way.
"""

from __future__ import annotations

import sys
import tempfile
from collections import defaultdict
from pathlib import Path

HELPERS = ("numbers", "devices", "precision", "seeds", "locks", "modes", "progress", "settings",
           "attacks.norms", "errors")


def _module(frame) -> str | None:
    name = frame.f_globals.get("__name__", "")
    return name[len("specrobust."):] if name.startswith("specrobust.") else None


def main() -> None:
    import torch

    from specrobust.checkpoint import save_checkpoint
    from specrobust.cli import main as cli
    from specrobust.models import create_model

    data = "synthetic:band=low,n_train=40,n_test=24,seed=3"
    with tempfile.TemporaryDirectory() as scratch:
        checkpoint = Path(scratch) / "m.pt"
        torch.manual_seed(0)
        save_checkpoint(checkpoint, create_model("cnn_small", 10), dataset=data, eps="8/255")
        modules: set[str] = set()
        callers: dict[str, set[str]] = defaultdict(set)

        def hook(frame, event, _):
            if event != "call":
                return
            module = _module(frame)
            if module is None or frame.f_code.co_name == "<module>":
                return
            modules.add(module)
            caller = frame.f_back and _module(frame.f_back)
            if caller and caller != module and module in HELPERS:
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
    print(f"specrobust modules `eval` ran code in: {len(modules)}")
    print("  " + ", ".join(sorted(modules)))
    for helper in HELPERS:
        if callers.get(helper):
            print(f"{helper}: called from {len(callers[helper])} modules "
                  f"({', '.join(sorted(callers[helper]))})")


if __name__ == "__main__":
    main()
