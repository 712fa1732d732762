"""Whether two trees of training runs hold the same models and results: every checkpoint tensor
``torch.equal``, every evaluation's per-example outcomes identical, every analysis part's
numbers identical (timings, paths and labels aside).

    python benchmarks/compare_runs.py BEFORE AFTER

Runs are matched by name, ignoring a ``-seed<k>`` suffix and where in the tree they are, so a
demo written by the older layout (``runs/demo/AT``) compares with the study's
(``runs/demo/runs/AT-seed0``). Exit status 1 when anything differs.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import torch

from specrobust.evaluation.record import EvalRecord


def runs(root: Path) -> dict[str, Path]:
    return {re.sub(r"-seed\d+$", "", p.parent.name): p.parent
            for p in root.rglob("metrics.jsonl")}


def _comparable(record: dict) -> dict:
    """An analysis record without what may differ between two identical models: timings, paths,
    labels, and the checkpoint file's hash (last.pt also holds the run's timings; the weights
    are compared tensor by tensor)."""
    # 0.1.0 wrote no norm or precision at their defaults (linf, fp32); 0.2.0 always does.
    fingerprint = {k: v for k, v in {"norm": "linf", "precision": "fp32",
                                     **record.get("fingerprint", {})}.items()
                   if k != "weights_sha256"}
    return {**{k: v for k, v in record.items() if k not in ("seconds", "weights", "label")},
            "fingerprint": fingerprint}


def compare(before: Path, after: Path) -> list[str]:
    differences = []
    for checkpoint in sorted(before.rglob("checkpoints/*.pt")):
        other = after / checkpoint.relative_to(before)
        old = torch.load(checkpoint, weights_only=True)["state_dict"]
        new = torch.load(other, weights_only=True)["state_dict"]
        if old.keys() != new.keys() or not all(torch.equal(old[k], new[k]) for k in old):
            differences.append(f"{other}: weights differ")
    for path in sorted(before.glob("eval*.json")):
        old, new = EvalRecord.load(path), EvalRecord.load(after / path.name)
        if new is None or old.finished() != new.finished():
            differences.append(f"{after / path.name}: per-example outcomes differ")
    for path in sorted(before.glob("analysis*/*.json")):
        if path.name == "summary.json":
            continue
        old, new = (_comparable(json.loads(p.read_text()))
                    for p in (path, after / path.relative_to(before)))
        if old != new:
            differences.append(f"{after / path.relative_to(before)}: analysis differs")
    return differences


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("before", type=Path)
    parser.add_argument("after", type=Path)
    args = parser.parse_args()
    old, new = runs(args.before), runs(args.after)
    if old.keys() != new.keys():
        print(f"different runs: {sorted(old)} vs {sorted(new)}")
        return 1
    differences = [d for name in sorted(old) for d in compare(old[name], new[name])]
    checked = sum(len(list(old[name].rglob("checkpoints/*.pt"))) for name in old)
    print("\n".join(differences) or f"identical: {len(old)} runs, {checked} checkpoints, "
          "their evaluations and analyses")
    return 1 if differences else 0


if __name__ == "__main__":
    sys.exit(main())
