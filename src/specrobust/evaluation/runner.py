"""Run an attack suite on a model: per-example results, accuracies with Wilson intervals,
worst case over attacks, time per attack, self-checks; resumable through its own JSON file.

Conventions (RobustBench's): an example counts as robust under an attack when it is classified
correctly both clean and under the attack; only clean-correct examples are attacked. The
worst case is correct under every attack of the suite.

Resuming: with ``path`` given, the result file is rewritten (atomically) after every batch with
``"complete": false`` and what is done so far. A later call with the same fingerprint (weights,
data, eps, seed, suite settings) continues where it stopped, and draws the same random numbers it
would have drawn without the interruption; a different fingerprint starts afresh.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from specrobust.attacks.folded import folded_for_attack
from specrobust.attacks.registry import AttackSpec, parse_attack
from specrobust.data.streamed import Images
from specrobust.errors import SpecRobustError
from specrobust.evaluation.batched import attack_batches, clean_correct
from specrobust.evaluation.checks import Check, self_checks
from specrobust.evaluation.record import AttackEntry, EvalRecord, stage_table
from specrobust.files import layout, locks, storage
from specrobust.machine import SINGLE, Distributed, autocast
from specrobust.progress import Progress
from specrobust.settings import Settings


class EvalInUseError(locks.InUseError):
    """Another process is evaluating into the same result file."""


@dataclass
class AttackResult:
    """One attack's outcome: which images are still classified correctly, and its time."""

    spec: AttackSpec
    correct: torch.Tensor  # bool per example
    seconds: float
    attacked: int  # how many examples were attacked (the clean-correct ones)
    # AutoAttack only: per attack of its version, in order, {"broken": examples it broke that
    # the earlier ones had not, "seconds": its time}
    stages: dict[str, dict] | None = None


@dataclass
class EvalResult:
    """What `specrobust.evaluate` returns.

    Attributes:
        eps: the budget, as a number.
        attacks: per attack its spec and per-example outcomes (``correct``, one bool per
            image: correct clean and under this attack).
        checks: the gradient-masking self-checks, each with ``name``, ``ok`` and ``message``.
        record: the evaluation record (``as_dict()`` gives its fields).
    """

    eps: float
    attacks: list[AttackResult]
    checks: list[Check] = field(default_factory=list)
    record: EvalRecord | None = None  # what eval.json holds

    @property
    def worst_case(self) -> torch.Tensor:
        """Per example (a bool tensor, one per image): correct under every attack of the
        suite. ``accuracy("worst case")`` is its mean."""
        return torch.stack([a.correct for a in self.attacks]).all(dim=0)

    def accuracy(self, label: str) -> float:
        """The fraction of the images correct under the attack labelled ``label`` (as in
        eval.json: correct / n), or under every attack for ``"worst case"``."""
        if label == "worst case":
            return int(self.worst_case.sum()) / max(1, len(self.worst_case))
        for result in self.attacks:
            if result.spec.label == label:  # correct / n, exactly as eval.json has it
                return int(result.correct.sum()) / max(1, len(result.correct))
        raise SpecRobustError(f"no attack labelled {label!r} in this result; its attacks: "
                              f"{', '.join(a.spec.label for a in self.attacks)}")

    def as_dict(self) -> dict:
        """The fields of eval.json."""
        return self.record.as_dict()

    def __repr__(self) -> str:  # the accuracies, not every example's outcome
        accuracies = ", ".join(f"{a.spec.label} {self.accuracy(a.spec.label):.2%}"
                               for a in self.attacks)
        return (f"EvalResult(eps={self.eps:.4g}, n={len(self.worst_case)}: {accuracies}; "
                f"worst case {self.accuracy('worst case'):.2%}; "
                f"{sum(c.ok for c in self.checks)} of {len(self.checks)} self-checks passed)")


def fingerprint_of(model: dict, eps: float, n: int, settings: Settings) -> dict:
    """Everything that changes which examples are attacked with which random numbers: the
    model's own part (``model``: its weights and data) and the evaluation's settings."""
    return {**model, "eps": eps, "n": n, "seed": settings.seed,
            "batch_size": settings.batch_size, "norm": settings.norm,
            "precision": settings.precision}


def _attack_precision(precision: str, spec: AttackSpec, device: torch.device):
    return autocast("fp32" if spec.kind == "aa" else precision, device)


def evaluate(model: nn.Module, images: Images, labels: torch.Tensor,
             attacks: list[AttackSpec], eps: float | str, settings: Settings | None = None, *,
             checks: bool = True, path: str | Path | None = None,
             fingerprint: dict | None = None, meta: dict | None = None,
             progress: Progress | None = None, shard: Distributed = SINGLE) -> EvalResult:
    """Evaluate ``model`` on ``images`` (float in [0, 1]) under every attack in ``attacks``,
    each within the ``settings.norm`` ball (``linf`` or ``l2``) of radius ``eps`` (a number,
    or text such as ``8/255``); ``settings`` (default ``Settings()``) also gives the seed,
    the batch size, the self-checks' images and the arithmetic.

    ``clean`` is always evaluated first, listed or not: robust accuracy is measured against it.
    ``path``: the record, rewritten after every batch, from which an interrupted evaluation
    with the same ``fingerprint`` resumes. With several processes (``shard``, torchrun) they
    share each attack's batches and all end with the same result, the one a single process
    gets; only the main process writes ``path`` and runs the self-checks.
    """
    settings = settings or Settings()
    eps = settings.budget(eps, tuple(images.shape[1:]), "eps")
    fingerprint = fingerprint_of(fingerprint or {}, eps, len(images), settings)
    meta = {**(meta or {}), "fingerprint": fingerprint, "seed": settings.seed,
            "batch_size": settings.batch_size, "norm": settings.norm}
    with _output_lock(path if shard.main else None):
        return _evaluate(model, images, labels, attacks, eps, settings,
                         checks=checks and shard.main, path=path, meta=meta, progress=progress,
                         shard=shard)


def _evaluate(model: nn.Module, images: Images, labels: torch.Tensor,
              attacks: list[AttackSpec], eps: float, settings: Settings, *, checks: bool,
              path: str | Path | None, meta: dict, progress: Progress | None,
              shard: Distributed) -> EvalResult:
    """``evaluate`` holding the output's lock."""
    seed, batch_size, norm = settings.seed, settings.batch_size, settings.norm
    stored = _resumable(path, meta["fingerprint"], len(images))  # every process resumes alike
    written = path if shard.main else None
    model.eval()
    started = time.perf_counter()
    clean = clean_correct(model, images, labels, batch_size)
    clean_seconds = time.perf_counter() - started
    targets = clean.nonzero().flatten()
    # Attacks run on a copy with batch norm folded into the convolutions (same function, faster
    # steps); whether an attacked image still fools the model is always judged by ``model``.
    attacked = folded_for_attack(model) if any(a.kind != "clean" for a in attacks) else model

    record = EvalRecord(meta, eps, len(images))
    specs = _with_clean_first(attacks)
    corrects = {}
    for spec in specs:
        if spec.kind == "clean":
            record.attacks.append(AttackEntry(spec.label, _bits(clean), len(images), len(images),
                                              clean_seconds, spec.describe(eps)))
            corrects[spec.label] = clean
            continue
        # AutoAttack's per-attack counts; none when resuming a file written without them.
        entry = stored.get(spec.label) or AttackEntry(
            spec.label, "0" * len(images), 0, len(targets),
            stages={} if spec.kind == "aa" else None)
        entry.description, entry.attacked = spec.describe(eps), len(targets)
        record.attacks.append(entry)
        correct = _unbits(entry.bits, images.device)
        if not entry.finished:
            if progress:
                progress(spec.label, entry.done, len(targets))

            batch_stages: dict[str, dict] = {}  # AutoAttack's counts for the batch under way

            def attack(x, y, batch_seed, spec=spec, counts=batch_stages):
                counts.clear()
                with _attack_precision(settings.precision, spec, x.device):
                    return spec.run(attacked, x, y, eps, seed=batch_seed, norm=norm,
                                    on_stage=_stage_counter(counts, len(x)))

            tick = time.perf_counter()
            batches = attack_batches(
                model, attack, images, labels, targets, label=spec.label, seed=seed,
                batch_size=batch_size, skip=entry.done, shard=shard,
                extra=(lambda counts=batch_stages: dict(counts))
                if entry.stages is not None else None)
            for done, index, batch_correct, counts in batches:
                correct[index] = batch_correct
                _add_stages(entry.stages, counts)
                now = time.perf_counter()
                entry.seconds, tick = entry.seconds + now - tick, now
                entry.bits, entry.done = _bits(correct), done
                if written is not None:
                    record.save(written)
                if progress:
                    progress(spec.label, done, len(targets))
        corrects[spec.label] = correct

    results = [AttackResult(spec, corrects[spec.label], entry.seconds, entry.attacked,
                            entry.stages)
               for spec, entry in zip(specs, record.attacks, strict=True)]
    result = EvalResult(eps, results, record=record)
    if checks:
        suite = {r.spec.label: (r.spec, r.correct) for r in results}
        aa_stages = {r.spec.label: stage_table(r.stages, r.attacked, len(images))
                     for r in results if r.stages}
        result.checks = self_checks(model, images, labels, eps, suite, settings,
                                    aa_stages=aa_stages, progress=progress)
    record.checks, record.complete = [c.as_dict() for c in result.checks], True
    if written is not None:
        record.save(written)
    return result


def _add_stages(stages: dict | None, batch: dict | None) -> None:
    """One batch's AutoAttack counts added to the attack's running totals."""
    for name, stage in (batch or {}).items() if stages is not None else ():
        total = stages.setdefault(name, {"broken": 0, "seconds": 0.0})
        total["broken"] += stage["broken"]
        total["seconds"] += stage["seconds"]


@contextmanager
def _output_lock(path: str | Path | None):
    """Two processes evaluating into one file would each resume from the other's partial
    results and overwrite them; the second is refused. The lock is on a hidden file beside
    the output (the output itself is replaced, not rewritten, so it cannot hold one). Holding
    it, what a killed evaluation of this output left half-written is removed."""
    if path is None:
        yield
        return
    path = Path(path)
    storage.make_directories(path.parent)
    with locks.held(locks.beside(path), EvalInUseError(
            f"{path} is being written by another evaluation; wait for it to finish or stop it "
            "first"), create=True):
        layout.remove_leftovers(path.parent, (path.name, layout.table_beside(path).name))
        yield


def _stage_counter(stages: dict, batch: int):
    """An ``on_stage`` callback counting one batch's AutoAttack stages into ``stages``."""
    left = [batch]

    def count(name: str, still_correct: torch.Tensor, seconds: float) -> None:
        stage = stages.setdefault(name, {"broken": 0, "seconds": 0.0})
        now_left = int(still_correct.sum())
        stage["broken"] += left[0] - now_left
        stage["seconds"] += seconds
        left[0] = now_left

    return count


def _with_clean_first(attacks: list[AttackSpec]) -> list[AttackSpec]:
    clean = [a for a in attacks if a.kind == "clean"] or [parse_attack("clean")]
    return clean[:1] + [a for a in attacks if a.kind != "clean"]


def _resumable(path: str | Path | None, fingerprint: dict, n: int) -> dict[str, AttackEntry]:
    """Finished or partial attacks of an earlier run with the same fingerprint, by label (an
    unreadable record is overwritten by this run: its results are not ours to trust)."""
    record = EvalRecord.load(path) if path is not None else None
    if record is None or not record.is_current(fingerprint):
        return {}
    return {a.label: a for a in record.attacks if len(a.bits) == n}


def _bits(correct: torch.Tensor) -> str:
    """Per-example correctness as a string of 0 and 1 (compact, readable, easy to re-plot)."""
    return "".join("1" if c else "0" for c in correct.tolist())


def _unbits(bits: str, device) -> torch.Tensor:
    return torch.tensor([c == "1" for c in bits], dtype=torch.bool, device=device)
