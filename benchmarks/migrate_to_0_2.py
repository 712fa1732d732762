"""One-time migration of records written by specrobust 0.1.0 to the layout 0.2.0 reads.

    python benchmarks/migrate_to_0_2.py benchmarks/replication benchmarks/results

0.2.0 reads only what it writes; 0.1.0 carried compatibility paths for records of its own
earlier days. This script rewrites such records once, in place, so that 0.2.0 finds every
committed result current (nothing is trained or evaluated again) and regenerates every
committed table unchanged:

- ``config.yaml`` and the config inside ``last.pt``: ``run.bf16`` becomes ``run.precision``
  (``auto`` for true, ``fp32`` for false), the meaning 0.1.0 gave it on load.
- ``metrics.jsonl`` and the metrics inside ``last.pt``: ``best_epoch_averaged`` is added where
  the averaged model was validated (the first strict maximum of ``val_robust_avg`` so far, the
  rule training applies).
- A rewritten ``last.pt`` gets another SHA-256; every record that names the old one (evaluations
  and analyses of that checkpoint) is given the new one. The weights are compared tensor by
  tensor before and after.
- Evaluation records of format version 1 become version 2 (finished ones gain ``done``; the
  older ``partial`` layout of records under way becomes ``attacks`` and ``per_example``).
- Fingerprints of evaluations and analyses gain ``norm: linf`` and ``precision: fp32``, the
  values 0.1.0 assumed when they were absent (records written before L2 and bf16 existed).
- ``eval.md`` tables and ``report.html`` reports written before their marker existed gain it.

Run it with specrobust 0.1.0's records and any installed specrobust (it uses only torch and the
standard library). It is idempotent: a second run changes nothing.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import sys
import tempfile
from pathlib import Path

import torch

EVAL_FORMAT, ANALYSIS_FORMAT = "specrobust-eval", "specrobust-analysis"
EVAL_MD_MARKER = "<!-- specrobust eval -->"
REPORT_MARKER = '<meta name="generator" content="specrobust report">'
LEGACY_EVAL_TITLE = re.compile(r"# \S.* on \S+ \(first \d+ test images\), (L-inf|L2) eps \S+$")
LEGACY_REPORT = " by specrobust. Accuracies in %.</p>"


def _write_bytes(path: Path, data: bytes) -> None:
    """Atomically: a killed migration leaves the old file or the new one, never half of one."""
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(handle, "wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())
    os.replace(temporary, path)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def precision_of(run: dict) -> dict:
    """``run`` with ``bf16`` spelt as 0.2.0's ``precision``."""
    if "bf16" not in run:
        return run
    run = dict(run)
    bf16 = run.pop("bf16")
    run.setdefault("precision", "auto" if bf16 else "fp32")
    return run


def with_best_averaged(epochs: list[dict]) -> list[dict]:
    """Each epoch's metrics with ``best_epoch_averaged`` once the averaged model is validated."""
    best_epoch, best_value, out = None, -1.0, []
    for metrics in epochs:
        metrics = dict(metrics)
        if "val_robust_avg" in metrics:
            if metrics["val_robust_avg"] > best_value:
                best_epoch, best_value = metrics["epoch"], metrics["val_robust_avg"]
            metrics.setdefault("best_epoch_averaged", best_epoch)
        out.append(metrics)
    return out


def migrate_config(path: Path) -> bool:
    """``run:\n  bf16: B`` as ``run:\n  precision: P``, in place in the YAML text (the file keeps
    its order and comments)."""
    text = path.read_text()
    new = re.sub(r"(?m)^(\s+)bf16: (true|false)$",
                 lambda m: f"{m[1]}precision: {'auto' if m[2] == 'true' else 'fp32'}", text)
    if new == text:
        return False
    _write_bytes(path, new.encode())
    return True


def migrate_metrics(path: Path) -> bool:
    lines = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    migrated = with_best_averaged(lines)
    if migrated == lines:
        return False
    _write_bytes(path, "".join(json.dumps(m) + "\n" for m in migrated).encode())
    return True


def migrate_checkpoint(path: Path) -> tuple[str, str] | None:
    """A ``last.pt`` whose training state holds a 0.1.0 config or metrics, rewritten; its old
    and new SHA-256, or None when it needed nothing."""
    payload = torch.load(path, map_location="cpu", weights_only=True)
    state = payload.get("training")
    if not isinstance(state, dict) or "config" not in state:
        return None
    config = dict(state["config"])
    config["run"] = precision_of(config.get("run", {}))
    metrics = with_best_averaged(state.get("metrics", []))
    if config == state["config"] and metrics == state.get("metrics", []):
        return None
    before = _sha256(path)
    weights = {k: v.clone() for k, v in payload["state_dict"].items()}
    payload["training"] = {**state, "config": config, "metrics": metrics}
    buffer = _save(payload)
    _write_bytes(path, buffer)
    check = torch.load(path, map_location="cpu", weights_only=True)["state_dict"]
    if check.keys() != weights.keys() or not all(torch.equal(check[k], weights[k])
                                                 for k in weights):
        sys.exit(f"{path}: the weights changed on rewriting; restore it from git")
    return before, _sha256(path)


def _save(payload: dict) -> bytes:
    import io

    buffer = io.BytesIO()
    torch.save(payload, buffer)
    return buffer.getvalue()


def upgrade_eval_v1(data: dict) -> dict:
    """Version 1 wrote finished records without ``done`` and records under way in another
    layout (``partial``: per attack its bits, done and seconds); both as version 2."""
    data = dict(data)
    if data.get("complete"):
        data["attacks"] = [{**a, "done": a["attacked"]} for a in data["attacks"]]
    else:
        partial = data.pop("partial", {})
        fingerprint = data.get("fingerprint", {})
        clean = partial.get("clean")
        attacks = []
        for label, entry in partial.items():
            # Without the clean pass nothing is final, and the number of targets is unknown.
            targets = len(entry["bits"]) if label == "clean" else \
                (clean["bits"].count("1") if clean else len(entry["bits"]) + 1)
            row = {"label": label, "done": entry["done"], "attacked": targets,
                   "seconds": entry.get("seconds", 0.0)}
            if "stages" in entry:
                row["stages"] = [{"attack": name, **stage}
                                 for name, stage in entry["stages"].items()]
            attacks.append(row)
        data.update(attacks=attacks, eps=data.get("eps", fingerprint.get("eps")),
                    n=data.get("n", fingerprint.get("n")),
                    per_example={label: entry["bits"] for label, entry in partial.items()})
    data["format_version"] = 2
    return data


def migrate_record(path: Path, new_sha: dict[str, str]) -> bool:
    """An evaluation or analysis record: version 2, a full fingerprint, current hashes."""
    text = path.read_text()
    data = json.loads(text)
    if not isinstance(data, dict) or data.get("format") not in (EVAL_FORMAT, ANALYSIS_FORMAT):
        return False
    if data["format"] == EVAL_FORMAT:
        if data.get("format_version", 1) < 2:
            data = upgrade_eval_v1(data)
        data.setdefault("norm", "linf")
        data.setdefault("precision", "fp32")
    fingerprint = {"norm": "linf", "precision": "fp32", **data.get("fingerprint", {})}
    sha = fingerprint.get("weights_sha256")
    if sha in new_sha:
        fingerprint["weights_sha256"] = new_sha[sha]
    data["fingerprint"] = fingerprint
    new = json.dumps(data, indent=1) + "\n"
    if json.loads(new) == json.loads(text):
        return False
    _write_bytes(path, new.encode())
    return True


def migrate_eval_md(path: Path) -> bool:
    text = path.read_text()
    first = text.split("\n", 1)[0]
    if first == EVAL_MD_MARKER or not LEGACY_EVAL_TITLE.match(first):
        return False
    _write_bytes(path, (EVAL_MD_MARKER + "\n" + text).encode())
    return True


def migrate_report(path: Path) -> bool:
    text = path.read_text()
    if REPORT_MARKER in text[:4096] or LEGACY_REPORT not in text[:8192]:
        return False
    new = text.replace("<head>", "<head>\n" + REPORT_MARKER, 1)
    if new == text:
        sys.exit(f"{path}: a report without <head>; not one specrobust wrote")
    _write_bytes(path, new.encode())
    return True


def migrate_runs(root: Path, new_sha: dict[str, str]) -> dict[str, int]:
    """Run directories' files; each rewritten checkpoint's old and new hash into ``new_sha``."""
    counts = dict.fromkeys(("config.yaml", "metrics.jsonl", "last.pt"), 0)
    for path in sorted(root.rglob("config.yaml")):
        counts["config.yaml"] += migrate_config(path)
    for path in sorted(root.rglob("metrics.jsonl")):
        counts["metrics.jsonl"] += migrate_metrics(path)
    for path in sorted(root.rglob("last.pt")):
        changed = migrate_checkpoint(path)
        if changed:
            new_sha[changed[0]] = changed[1]
            counts["last.pt"] += 1
    return counts


def migrate_results(root: Path, new_sha: dict[str, str]) -> dict[str, int]:
    """Records, tables and reports (after every root's checkpoints: a record may name one of
    another root's)."""
    counts = dict.fromkeys(("records", "eval.md", "report.html"), 0)
    for path in sorted(root.rglob("*.json")):
        counts["records"] += migrate_record(path, new_sha)
    for path in sorted(root.rglob("*.md")):
        counts["eval.md"] += migrate_eval_md(path)
    for path in sorted(root.rglob("*.html")):
        counts["report.html"] += migrate_report(path)
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("roots", nargs="+", type=Path, help="directories to migrate in place")
    args = parser.parse_args()
    new_sha: dict[str, str] = {}
    counts = {root: migrate_runs(root, new_sha) for root in args.roots}
    for root in args.roots:
        counts[root].update(migrate_results(root, new_sha))
        print(f"{root}: rewrote " + ", ".join(f"{n} {kind}" for kind, n in counts[root].items()))


if __name__ == "__main__":
    main()
