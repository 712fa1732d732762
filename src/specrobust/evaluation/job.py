"""``specrobust eval``'s work: from a run directory or checkpoint to eval.json and eval.md."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from specrobust.attacks.registry import parse_attacks
from specrobust.errors import SpecRobustError
from specrobust.evaluation.record import EvalRecord, markdown
from specrobust.evaluation.runner import evaluate, fingerprint_of
from specrobust.files import layout, outputs, storage
from specrobust.jobs import start_test_job
from specrobust.loading import ModelSource, as_source
from specrobust.progress import progress_bars
from specrobust.settings import DEFAULT_ATTACKS, NORMS, Settings


@dataclass(frozen=True, kw_only=True)
class EvalJob(Settings):
    """`specrobust eval`: the shared settings (``specrobust.settings``) and what is an
    evaluation's own."""

    source: ModelSource | str  # a plain string is a path (a run, a checkpoint, a program)
    attacks: str = DEFAULT_ATTACKS
    out: str | None = None  # the record, a .json file (default: beside the model, or in its run)
    checks: bool = True  # the gradient-masking self-checks


def output_path(job: EvalJob, loaded) -> Path:
    """Where the evaluation record goes; its table goes beside it as ``.md``. Both are checked
    against ``specrobust.files.outputs``' rule before anything is attacked."""
    if job.out:
        path = Path(job.out)
        if path.suffix != ".json":
            raise SpecRobustError(f"--out names the evaluation record, a .json file (its table "
                                  f"goes beside it as .md), got {path}")
    elif loaded.run_dir is not None:
        path = layout.eval_record(loaded.run_dir, as_source(job.source).which)
    else:
        path = layout.beside(loaded.home, "eval.json")
    path = outputs.output_file(path, outputs.EVAL)
    outputs.output_file(layout.table_beside(path), outputs.EVAL_MD)
    return path


def run_eval_job(job: EvalJob, *, skip_current: bool = False,
                 on_start: Callable[[], None] | None = None) -> tuple[dict | None, Path]:
    """Evaluate and write eval.json (and eval.md beside it); returns the result and its path.
    Under torchrun the processes share the attacks (``specrobust.machine``); the others
    than the main one return None for the result and write nothing.

    ``skip_current``: when the record there is complete, has every attack asked for and was
    made with this model, data and budget (``EvalRecord.is_current``), return it as it is.
    ``on_start`` is called when there is work to do."""
    attacks = parse_attacks(job.attacks)  # first: a typo should not wait for a model to load
    # Decoded a batch at a time: memory bounded by the batch, not by n.
    shard, target = start_test_job(job, job.source, "the gradient attacks run", streamed=True)
    loaded = target.loaded
    path = output_path(job, loaded)
    fingerprint = {"weights_sha256": loaded.sha256, "dataset": loaded.dataset}
    if skip_current:
        record = EvalRecord.load(path)
        full = fingerprint_of(fingerprint, target.eps, len(target.images), job)
        written = (path.name, layout.table_beside(path).name)
        if record is not None and record.is_current(full) and \
                record.has_finished(["clean", *(a.label for a in attacks)]) and \
                layout.table_beside(path).is_file() and \
                not layout.has_leftovers(path.parent, written):
            return (record.as_dict() if shard.main else None), path
    if on_start is not None:
        on_start()
    meta = {"weights": str(loaded.path), "model": loaded.model.spec.as_dict(),
            "dataset": loaded.dataset, "split": "test", "first_n": len(target.images),
            "eps_text": target.eps_text, "norm": job.norm, "device": str(target.device),
            "precision": job.precision}
    progress = progress_bars(job.progress and shard.main, unit="img")
    result = evaluate(target.model, target.images, target.labels, attacks, target.eps, job,
                      checks=job.checks, path=path, fingerprint=fingerprint, meta=meta,
                      progress=progress, shard=shard)
    if not shard.main:
        return None, path
    summary = result.as_dict()
    storage.write_text(layout.table_beside(path),
                       outputs.EVAL_MD_MARKER + "\n" + _title(summary) + markdown(summary))
    return summary, path


def _title(summary: dict) -> str:
    model = summary["model"]["name"]
    return (f"# {model} on {summary['dataset']} (first {summary['n']} test images), "
            f"{NORMS[summary.get('norm', 'linf')]} eps {summary['eps_text']}\n\n"
            f"Weights: `{summary['weights']}`\n\n")
