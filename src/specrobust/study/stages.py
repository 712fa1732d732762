"""A study's stages: train -> evaluate -> analyse, every stage resumable and skipped once done.

A *method* (a row of a results table) reads one checkpoint of one training run. SWA does not
change the raw model's trajectory (the averaged copy is a side track, and all training
randomness comes from (seed, epoch, step)), so "AT+SAR" and "AT+SAR+WA" are the ``best`` and
``best_averaged`` checkpoints of one AT+SAR run with averaging on: half the training.
``tests/test_training.py`` checks that averaging leaves the raw weights bit-identical.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from specrobust.config import Config
from specrobust.settings import Settings
from specrobust.study.plan import Method


def log(message: str) -> None:
    worker = os.environ.get("SPECROBUST_WORKER")  # one of `study --workers`' processes
    print(f"[{time.strftime('%H:%M:%S')}]{f' [worker {worker}]' if worker else ''} {message}",
          flush=True)


def train_run(config: Config, directory: Path, label: str, branch_from: Path | None = None,
              ) -> None:
    """Train, or continue an interrupted run; a finished run is left alone. A new run with
    ``branch_from`` takes its epochs before SAR starts from that run's snapshot, where there is
    one (``RunWriter._branch_state``: same weights as training them again)."""
    from specrobust.training.loop import train
    from specrobust.training.rundir import RunDir

    run = RunDir(directory)
    if run.is_complete(config):
        if not run.last.is_file():
            # Its results stay valid; training again would overwrite its metrics with another
            # run's (seeded, but not bit-identical across machines).
            log(f"{label}: finished, but its checkpoints are gone; delete {directory} to train "
                "again")
        return
    branch = None
    if branch_from is not None and not run.last.is_file():
        epoch = config.sar_start
        if RunDir(branch_from).has_snapshot(epoch):
            branch = (branch_from, epoch)
            log(f"train {label} -> {directory}, its first {epoch} epochs from {branch_from}")
        else:
            log(f"train {label} -> {directory} ({branch_from} has no snapshot after epoch "
                f"{epoch} to branch from)")
    else:
        log(f"train {label} -> {directory}")
    train(config, directory, resume=True, branch=branch)


def evaluate_method(method: Method, directory: Path, *, attacks: str, n: int, eps: str,
                    data_root: str | None = None, device: str = Settings.device,
                    batch_size: int = Settings.batch_size, check_n: int = Settings.check_n,
                    precision: str = Settings.precision, progress: bool = True) -> None:
    """Evaluate into the run's record for ``method.which``; a record that is current (same
    weights, data and budget: ``EvalRecord.is_current``) and has every attack is left alone,
    attacks finished in a current one are re-used."""
    from specrobust.evaluation.job import EvalJob, run_eval_job
    from specrobust.loading import ModelSource

    job = EvalJob(source=ModelSource(str(directory), which=method.which), attacks=attacks,
                  n=n, eps=eps, data_root=data_root, device=device, batch_size=batch_size,
                  check_n=check_n, precision=precision, progress=progress)
    run_eval_job(job, skip_current=True,
                 on_start=lambda: log(f"eval {method.label} ({attacks}; first {n} test images)"))


def analyze_method(method: Method, directory: Path, *, parts: str, n: int, eps: str,
                   data_root: str | None = None, device: str = Settings.device,
                   precision: str = Settings.precision, progress: bool = True) -> None:
    """Analyse into the run's analysis directory for ``method.which``; finished parts are not
    run again."""
    from specrobust.analysis.job import AnalysisJob, run_analysis_job
    from specrobust.loading import ModelSource

    run_analysis_job(AnalysisJob(source=ModelSource(str(directory), which=method.which),
                                 parts=parts, n=n, eps=eps, data_root=data_root, device=device,
                                 precision=precision, progress=progress),
                     on_start=lambda: log(f"analyze {method.label} ({parts}; first {n} test "
                                          "images)"))
