"""Running a study: every stage of every seed, resumable and skipped once done.

Seed by seed (train, then the cheap attacks, then the analysis), so a finished seed has its
whole table row; the late attacks (AutoAttack), the expensive part, run last for every seed. The
tables are rewritten after every seed and every late evaluation.

Several processes may run the same plan at once (other seeds, or the same ones: on other
devices, or to use more cores; ``workers`` starts them): each run and each evaluation is locked
by the process working on it, and the others skip it and take the next. A pass that skipped
work another process holds (or a branch whose source another process is still training) is
followed by another after a pause, until nothing is left that this process's seeds need.
Training resumes from its last epoch, evaluation from its last finished batch, analysis from
its last finished part.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from specrobust.errors import SpecRobustError
from specrobust.files import layout, locks, outputs, storage
from specrobust.files.locks import InUseError
from specrobust.study.plan import STAGES, Method, Plan, Run
from specrobust.study.stages import analyze_method, evaluate_method, log, train_run
from specrobust.study.tables import write_summary
from specrobust.training.rundir import RunDir


@dataclass
class Options:
    """How to run a plan, as opposed to what it is."""

    seeds: list[int] | None = None  # default: the plan's
    stages: tuple[str, ...] = STAGES
    device: str = "auto"
    data_root: str | None = None
    runs: tuple[str, ...] = ()  # the training runs to work on (default: all)
    poll_seconds: float = 30.0  # the pause before another pass over work others held


def execute(plan: Plan, options: Options) -> Path | None:
    """Run (or finish) ``plan``; returns the report's path when one was written."""
    plan = dataclasses.replace(plan, out=outputs.check_directory(
        plan.out, outputs.STUDY, how="choose another --out (or the plan's out)"))
    seeds = options.seeds or plan.seeds
    # --seeds picks the work, not the table: processes on different seeds all write the whole
    # table.
    table_seeds = sorted({*plan.seeds, *seeds})
    while _one_pass(plan, seeds, set(options.stages), options, table_seeds):
        log(f"waiting {options.poll_seconds:g} s for work other processes hold")
        time.sleep(options.poll_seconds)
    _write_tables(plan, table_seeds)
    if "report" not in options.stages:
        return None
    with _study_files(plan):
        return write_report(plan, seeds[0])


def _one_pass(plan: Plan, seeds: list[int], stages: set[str], options: Options,
              table_seeds: list[int]) -> bool:
    """Every stage once; whether anything was skipped because another process held it."""
    held = False
    for seed in seeds:
        if "train" in stages:
            for run in plan.runs:
                if not options.runs or run.name in options.runs:
                    held |= _train(plan, run, seed, options)
        if "eval" in stages:
            for method in plan.methods:
                held |= _evaluate(plan, method, seed, options)
        if "analyze" in stages and plan.analysis:
            for method in plan.methods:
                held |= _analyze(plan, method, seed, options)
        _write_tables(plan, table_seeds)
    if "aa" in stages and plan.late_attacks:
        for seed in seeds:
            for method in plan.methods:
                held |= _evaluate(plan, method, seed, options, late=True)
                _write_tables(plan, table_seeds)
    return held


_STUDY_FILES = ("summary.json", "RESULTS.md", "report.html")


@contextmanager
def _study_files(plan: Plan):
    """The study's own files are written by every process in turn; holding the turn, what a
    killed process left half-written of them is removed."""
    storage.make_directories(plan.out)
    with locks.waited(locks.beside(plan.out / "summary.json")):
        layout.remove_leftovers(plan.out, _STUDY_FILES)
        yield


def _write_tables(plan: Plan, seeds: list[int]) -> None:
    with _study_files(plan):
        write_summary(plan, seeds)


def run(plan: Plan, options: Options, *, workers: int = 1, threads: int = 0,
        worker_argv: Callable[[list[str]], list[str]] | None = None) -> Path | None:
    """The study, in this process or in ``workers`` processes sharing the plan (each running
    `specrobust` with ``worker_argv(stages)``, then the report once, over every worker's
    results); returns the report's path when one was written. A missing dataset fails first,
    in one line, before anything is written."""
    if "train" in options.stages:
        from specrobust.config import load_config
        from specrobust.data import load_dataset

        first = plan.runs[0]
        load_dataset(load_config(first.recipe, list(first.overrides)).data.dataset,
                     options.data_root)
    stages = options.stages
    if workers > 1 and worker_argv is not None:
        code = run_workers(worker_argv([s for s in stages if s != "report"]), workers, threads)
        if code:
            raise SpecRobustError(f"a worker of the study stopped with exit status {code}; "
                                  "run the study again to continue")
        stages = tuple(s for s in stages if s == "report")
    elif threads:
        import torch

        torch.set_num_threads(threads)
    return execute(plan, dataclasses.replace(options, stages=stages))


def run_workers(argv: list[str], workers: int, threads: int) -> int:
    """``specrobust study`` with ``argv`` in ``workers`` processes sharing the plan: on GPUs one
    device each (round robin over the visible ones), on a CPU ``threads`` (default: every core)
    split between them. Returns the first non-zero exit status, else 0."""
    import os
    import subprocess
    import sys

    import torch

    gpus = torch.cuda.device_count()
    cores = threads or os.cpu_count() or 1
    children = []
    for index in range(workers):
        environment = {**os.environ, "SPECROBUST_WORKER": str(index)}
        if gpus:
            environment["CUDA_VISIBLE_DEVICES"] = str(index % gpus)
        command = [sys.executable, "-m", "specrobust.cli", *argv,
                   "--threads", str(max(1, cores // workers))]
        children.append(subprocess.Popen(command, env=environment))
    codes = [child.wait() for child in children]
    return next((code for code in codes if code), 0)


def write_report(plan: Plan, seed: int) -> Path | None:
    """One seed's runs side by side (figures, evaluation tables, curves); RESULTS.md has all
    seeds."""
    from specrobust.report.html import write_report as write_html

    runs = [plan.run_dir(run.name, seed) for run in plan.runs]
    runs = [str(r) for r in runs if RunDir(r).metrics_file.is_file()]
    if not runs:
        return None
    names = {f"{plan.run_dir(m.run, seed).name} ({m.which})": m.label for m in plan.methods}
    evaluated = {m.label for m in plan.methods
                 if RunDir(plan.run_dir(m.run, seed)).eval_path(m.which).is_file()}
    reference = plan.report_reference if plan.report_reference in evaluated else None
    title = plan.title if len(plan.seeds) == 1 else f"{plan.title} (seed {seed})"
    path = write_html(runs, plan.out / "report.html", title, names, reference=reference,
                      notes=(plan.smoke,) if plan.smoke else ())
    log(f"report -> {path}")
    return path


def _train(plan: Plan, run: Run, seed: int, options: Options) -> bool:
    """Train (or continue) one run; True when another process holds it or the run it
    branches from."""
    from specrobust.config import load_config

    overrides = [*run.overrides, f"seed={seed}", f"run.device={options.device}"]
    if not plan.progress:  # a log file, not a terminal: metrics.jsonl has each epoch
        overrides.append("run.progress=false")
    if options.data_root:
        overrides.append(f"data.data_root={options.data_root}")
    config = load_config(run.recipe, overrides)
    directory = RunDir(plan.run_dir(run.name, seed))
    source = RunDir(plan.run_dir(run.branch_from, seed, plan.branch_root)) \
        if run.branch_from else None
    if source is not None and not directory.metrics_file.is_file() and \
            not source.has_snapshot(config.sar_start) and \
            source.finished_epochs() < config.sar_start:
        # Its source has not reached the branch yet: wait for its snapshot rather than train
        # the shared epochs again.
        log(f"{run.name} seed {seed}: waiting for {source.path}'s snapshot after epoch "
            f"{config.sar_start}")
        if locks.in_use(source.path):
            return True  # another process is training it: come back to this one
        if plan.branch_root is not None:
            return False  # another study's run, not started: run this study again later
    try:
        train_run(config, directory.path, f"{run.name} seed {seed}",
                  source.path if source is not None else None)
    except InUseError as error:  # another process is on it: go on
        log(f"{run.name} seed {seed}: {error}; skipped")
        return True
    return False


def _evaluate(plan: Plan, method: Method, seed: int, options: Options, late=False) -> bool:
    """The late pass adds its attacks to the same record, re-using the finished ones."""
    attacks = ",".join(a for a in (plan.attacks, plan.late_attacks if late else "") if a)
    return _on_checkpoint(plan, method, seed, lambda labelled, directory: evaluate_method(
        labelled, directory, attacks=attacks, n=plan.n, eps=plan.eps,
        data_root=options.data_root, device=options.device, check_n=plan.check_n,
        precision=plan.precision, progress=plan.progress))


def _analyze(plan: Plan, method: Method, seed: int, options: Options) -> bool:
    return _on_checkpoint(plan, method, seed, lambda labelled, directory: analyze_method(
        labelled, directory, parts=plan.analysis, n=plan.n, eps=plan.eps,
        data_root=options.data_root, device=options.device, precision=plan.precision,
        progress=plan.progress))


def _on_checkpoint(plan: Plan, method: Method, seed: int, work) -> bool:
    """``work(method labelled with its seed, run directory)`` on the method's checkpoint, when
    it is there; True when another process holds the run (still training: its checkpoints will
    change) or the work's output."""
    directory = plan.run_dir(method.run, seed)
    if locks.in_use(directory):
        return True
    if not RunDir(directory).checkpoint(method.which).is_file():
        return False
    try:
        work(Method(f"{method.label} seed {seed}", method.run, method.which), directory)
    except InUseError as error:  # another process is on it: take the next one
        log(f"{method.label} seed {seed}: {error}; skipped")
        return True
    return False
