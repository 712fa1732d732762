"""The evaluation record (``eval.json``): one on-disk shape, finished or under way; and the
record as a Markdown table (``markdown``, printed and written beside it as eval.md).

    {"format": "specrobust-eval", "format_version": 2, "complete": false | true,
     "weights": ..., "model": {...}, "dataset": ..., "fingerprint": {...}, ...   (meta)
     "eps": 0.031, "n": 1000,
     "attacks": [{"label": "clean", "kind": ..., "options": {...},
                  "done": 1000, "attacked": 1000, "seconds": 0.4,
                  # once done == attacked:
                  "correct": 912, "n": 1000, "accuracy": 0.912, "ci95": [...],
                  "images_per_second": ...,
                  # AutoAttack: what each of its attacks broke, in order
                  "stages": [{"attack": "apgd-ce", "broken": 3, "accuracy_after": ...,
                              "seconds": ...}]}, ...],
     "worst_case": {...},          # over the finished attacks
     "checks": [...],              # self-checks, once complete
     "per_example": {"clean": "1101...", ...}}   # '1' = still correct; every attack listed

While an evaluation runs the record is rewritten after every batch: an attack under way has
``done < attacked`` and its bits so far. An attack with ``done == attacked`` is final even in a
record that is not complete (a later pass, AutoAttack added to a finished evaluation, rewrites
the file). Only this format version is read (``benchmarks/migrate_to_0_2.py`` upgraded the
records of 0.1.0's earlier days once).

``EvalRecord.is_current(fingerprint)`` says whether the record was made with the same weights,
data, budget and seeds: resuming, and deciding that a model is already evaluated, both ask it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from specrobust.errors import SpecRobustError
from specrobust.evaluation.stats import wilson_interval
from specrobust.files import storage
from specrobust.files.layout import EVAL_FORMAT
from specrobust.files.storage import read_json

FORMAT = EVAL_FORMAT
FORMAT_VERSION = 2


@dataclass
class AttackEntry:
    """One attack's outcome in a record, final or so far."""

    label: str
    bits: str  # per example, '1' = still correct (under way: '0' where not yet attacked)
    done: int  # targets attacked so far
    attacked: int  # targets in all (the clean-correct examples; every example for clean)
    seconds: float = 0.0
    description: dict = field(default_factory=dict)  # kind and options (AttackSpec.describe)
    # AutoAttack: its attacks in order, {name: {"broken": n, "seconds": s}}
    stages: dict[str, dict] | None = None

    @property
    def finished(self) -> bool:
        return self.done >= self.attacked

    def as_dict(self) -> dict:
        entry = {**self.description, "label": self.label, "done": self.done,
                 "attacked": self.attacked, "seconds": round(self.seconds, 3)}
        if self.finished:
            entry |= counted(self.bits)
            entry["images_per_second"] = round(self.attacked / self.seconds, 2) \
                if self.seconds > 0 and self.attacked else None
        if self.stages is not None:
            entry["stages"] = stage_table(self.stages, self.attacked, len(self.bits))
        return entry

    @classmethod
    def from_dict(cls, entry: dict, bits: str) -> AttackEntry:
        description = {k: v for k, v in entry.items() if k in ("kind", "options")}
        stages = None
        if "stages" in entry:
            stages = {row["attack"]: {"broken": row["broken"], "seconds": row["seconds"]}
                      for row in entry["stages"]}
        return cls(entry["label"], bits, entry["done"], entry["attacked"],
                   entry.get("seconds", 0.0), description, stages)


def counted(bits: str) -> dict:
    """Accuracy of a bit string with its Wilson interval: the fields of every summary row."""
    hits, n = bits.count("1"), len(bits)
    return {"correct": hits, "n": n, "accuracy": hits / n if n else 0.0,
            "ci95": list(wilson_interval(hits, n))}


def stage_table(stages: dict[str, dict], attacked: int, n: int) -> list[dict]:
    """AutoAttack's attacks in order: what each broke, and the accuracy left after it (as
    AutoAttack judged it, on the copy it attacked)."""
    rows, left = [], attacked
    for name, stage in stages.items():
        left -= stage["broken"]
        rows.append({"attack": name, "broken": stage["broken"],
                     "accuracy_after": left / n if n else 0.0,
                     "seconds": round(stage["seconds"], 3)})
    return rows


@dataclass
class EvalRecord:
    meta: dict  # weights, model, dataset, split, first_n, eps_text, norm, fingerprint, seed ...
    eps: float
    n: int
    attacks: list[AttackEntry] = field(default_factory=list)
    checks: list[dict] = field(default_factory=list)
    complete: bool = False

    # ---- reading ----------------------------------------------------------------------------

    @property
    def fingerprint(self) -> dict:
        return self.meta.get("fingerprint", {})

    def is_current(self, fingerprint: dict) -> bool:
        """Made with these weights, data, budget and seeds (see ``runner.evaluate``)."""
        return self.fingerprint == fingerprint

    def entry(self, label: str) -> AttackEntry | None:
        return next((a for a in self.attacks if a.label == label), None)

    def finished(self) -> dict[str, str]:
        """Attack label -> per-example outcomes of every finished attack."""
        return {a.label: a.bits for a in self.attacks if a.finished}

    def has_finished(self, labels) -> bool:
        """Whether every attack of ``labels`` is final here (its self-checks included: only a
        complete record has them)."""
        done = self.finished()
        return self.complete and all(label in done for label in labels)

    def worst_case(self) -> dict | None:
        outcomes = self.finished()
        if not outcomes:
            return None
        length = len(next(iter(outcomes.values())))
        worst = "".join("1" if all(bits[i] == "1" for bits in outcomes.values()) else "0"
                        for i in range(length))
        return {**counted(worst), "over": list(outcomes)}

    def summary(self) -> dict | None:
        """The record as readers use it: its finished attacks only, with the worst case over
        them and ``under_way`` = {label: [done, of]} for the others; None when nothing is
        final yet."""
        worst = self.worst_case()
        if worst is None:
            return None
        record = self.as_dict()
        finished = self.finished()
        return {**record,
                "attacks": [a for a in record["attacks"] if a["label"] in finished],
                "per_example": finished,
                "under_way": {a.label: [a.done, a.attacked] for a in self.attacks
                              if not a.finished}}

    # ---- writing ----------------------------------------------------------------------------

    def as_dict(self) -> dict:
        data = {"format": FORMAT, "format_version": FORMAT_VERSION, "complete": self.complete,
                **self.meta, "eps": self.eps, "n": self.n,
                "attacks": [a.as_dict() for a in self.attacks]}
        worst = self.worst_case()
        if worst is not None:
            data["worst_case"] = worst
        data["checks"] = self.checks
        data["per_example"] = {a.label: a.bits for a in self.attacks}
        return data

    def save(self, path: str | Path) -> None:
        storage.write_text(path, json.dumps(self.as_dict(), indent=1) + "\n")

    @classmethod
    def from_dict(cls, data: dict) -> EvalRecord:
        """A record from its plain data; KeyError, TypeError or ValueError when it is not
        one of this format version."""
        if data.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"format version {data.get('format_version')}, not "
                             f"{FORMAT_VERSION}")
        bits = data["per_example"]
        meta = {k: v for k, v in data.items() if k not in _OWN_FIELDS}
        return cls(meta, data["eps"], data["n"],
                   [AttackEntry.from_dict(a, bits[a["label"]]) for a in data["attacks"]],
                   list(data.get("checks", [])), bool(data.get("complete")))

    @classmethod
    def load(cls, path: str | Path) -> EvalRecord | None:
        """The record at ``path``; None when there is none, or the file is not an evaluation
        record this version can read (a damaged file is not ours to trust)."""
        try:
            data = read_json(Path(path), "evaluation record")
        except (OSError, ValueError, SpecRobustError):  # absent, not JSON, too large or deep
            return None
        if not isinstance(data, dict) or data.get("format", FORMAT) != FORMAT:
            return None
        try:
            return cls.from_dict(data)
        except (KeyError, TypeError, ValueError, AttributeError):
            return None


# Two evaluations with these fields equal were made on the same images: they can be compared
# image by image (paired differences, McNemar's test).
SAME_IMAGES = ("dataset", "split", "first_n", "eps", "norm")

_OWN_FIELDS = {"format", "format_version", "complete", "eps", "n", "attacks", "worst_case",
               "checks", "per_example", "under_way"}


def is_well_formed(data: object) -> bool:
    """Whether ``data`` (a summary as :meth:`EvalRecord.summary` returns it) has the fields, of
    the types, that readers use: a file anyone can edit must not crash a report."""
    def number(value) -> bool:
        return isinstance(value, int | float) and not isinstance(value, bool)

    def counts(entry) -> bool:
        return isinstance(entry, dict) and number(entry.get("accuracy")) and \
            isinstance(entry.get("ci95"), list) and len(entry["ci95"]) == 2 and \
            all(map(number, entry["ci95"])) and isinstance(entry.get("correct"), int) and \
            isinstance(entry.get("n"), int)

    if not isinstance(data, dict) or not isinstance(data.get("model"), dict):
        return False
    attacks, checks = data.get("attacks"), data.get("checks", [])
    outcomes = data.get("per_example", {})
    return (isinstance(attacks, list) and all(
                counts(a) and isinstance(a.get("label"), str) and number(a.get("seconds"))
                for a in attacks)
            and counts(data.get("worst_case"))
            and isinstance(checks, list) and all(
                isinstance(c, dict) and {"name", "message", "ok"} <= set(c) for c in checks)
            and isinstance(outcomes, dict) and all(
                isinstance(k, str) and isinstance(v, str) and set(v) <= {"0", "1"}
                for k, v in outcomes.items())
            and isinstance(data.get("under_way", {}), dict))


# ---- the record as a Markdown table (printed, and written beside eval.json) ------------------


def markdown(evaluation: dict) -> str:
    """``evaluation`` is the plain dict of an eval.json."""
    lines = [
        "| attack | accuracy | 95% interval | correct / n | seconds | images/s |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for attack in evaluation["attacks"]:
        lines.append(_row(attack["label"], attack, attack["seconds"],
                          attack["images_per_second"]))
    worst = evaluation["worst_case"]
    lines.append(_row("**worst case**", worst, None, None))
    for attack in evaluation["attacks"]:
        if attack.get("stages"):
            steps = ", ".join(f"{s['attack']} broke {s['broken']} ({100 * s['accuracy_after']:.2f}%"
                              f" left, {s['seconds']:.0f} s)" for s in attack["stages"])
            lines += ["", f"{attack['label']} by attack, in order: {steps}."]
    failed = [c for c in evaluation.get("checks", []) if not c["ok"]]
    if evaluation.get("checks"):
        lines.append("")
        lines.append(f"Self-checks: {len(evaluation['checks']) - len(failed)} of "
                     f"{len(evaluation['checks'])} passed.")
        lines += [f"- **WARNING** {c['name']}: {c['message']}" for c in failed]
    return "\n".join(lines) + "\n"


def _row(label: str, values: dict, seconds, speed) -> str:
    low, high = values["ci95"]
    return (f"| {label} | {100 * values['accuracy']:.2f}% | {100 * low:.1f}-{100 * high:.1f} | "
            f"{values['correct']} / {values['n']} | {'' if seconds is None else f'{seconds:.1f}'} "
            f"| {_speed(speed)} |")


def _speed(images_per_second) -> str:
    """Whole numbers where that is precise enough; AutoAttack on a CPU runs below 1 image/s."""
    if images_per_second is None:
        return ""
    return f"{images_per_second:.0f}" if images_per_second >= 10 else f"{images_per_second:.2g}"
