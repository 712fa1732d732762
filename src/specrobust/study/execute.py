"""Running a study: every stage of every seed, resumable and skipped once done.

Seed by seed (train, then the cheap attacks, then the analysis), so a finished seed has its
whole table row; the late attacks (AutoAttack), the expensive part, run last for every seed. The
tables are rewritten after every seed and every late evaluation.

Several processes may run the same plan at once (other seeds, or the same ones: on other
devices, or to use more cores): each run and each evaluation is locked by the process working on
it, and the others skip it and take the next. Training resumes from its last epoch, evaluation
from its last finished batch, analysis from its last finished part.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from specrobust.locks import InUseError
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


def execute(plan: Plan, options: Options) -> Path | None:
    """Run (or finish) ``plan``; returns the report's path when one was written."""
    seeds = options.seeds or plan.seeds
    # --seeds picks the work, not the table: processes on different seeds all write the whole
    # table.
    table_seeds = sorted({*plan.seeds, *seeds})
    stages = set(options.stages)
    for seed in seeds:
        if "train" in stages:
            for run in plan.runs:
                _train(plan, run, seed, options)
        if "eval" in stages:
            for method in plan.methods:
                _evaluate(plan, method, seed, options)
        if "analyze" in stages and plan.analysis:
            for method in plan.methods:
                _analyze(plan, method, seed, options)
        write_summary(plan, table_seeds)
    if "aa" in stages and plan.late_attacks:
        for seed in seeds:
            for method in plan.methods:
                _evaluate(plan, method, seed, options, late=True)
                write_summary(plan, table_seeds)
    write_summary(plan, table_seeds)
    return write_report(plan, seeds[0]) if "report" in stages else None


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
    path = write_html(runs, plan.out / "report.html", title, names, reference=reference)
    log(f"report -> {path}")
    return path


def _train(plan: Plan, run: Run, seed: int, options: Options) -> None:
    from specrobust.config import load_config

    overrides = [*run.overrides, f"seed={seed}", f"run.device={options.device}"]
    if not plan.progress:  # a log file, not a terminal: metrics.jsonl has each epoch
        overrides.append("run.progress=false")
    if options.data_root:
        overrides.append(f"data.data_root={options.data_root}")
    config = load_config(run.recipe, overrides)
    directory = plan.run_dir(run.name, seed)
    branch = plan.run_dir(run.branch_from, seed, plan.branch_root) if run.branch_from else None
    if branch is not None and plan.branch_root is not None \
            and not RunDir(directory).metrics_file.is_file() \
            and not (RunDir(branch).snapshot_dir(config.sar_start) / "last.pt").is_file():
        # Another study's run, maybe still training: wait for its snapshot rather than train
        # the shared epochs again (run this study again later).
        log(f"{run.name} seed {seed}: waiting for {branch}'s snapshot after epoch "
            f"{config.sar_start}")
        return
    # Snapshots are kept after the branch has finished: another plan may branch from them too,
    # and at about 1 MB each they are cheap to keep.
    try:
        train_run(config, directory, f"{run.name} seed {seed}", branch)
    except InUseError as error:  # another process is on it: go on
        log(f"{run.name} seed {seed}: {error}; skipped")


def _evaluate(plan: Plan, method: Method, seed: int, options: Options, late=False) -> None:
    """The late pass adds its attacks to the same record, re-using the finished ones."""
    directory = plan.run_dir(method.run, seed)
    if not RunDir(directory).checkpoint(method.which).is_file():
        return
    attacks = ",".join(a for a in (plan.attacks, plan.late_attacks if late else "") if a)
    try:
        evaluate_method(Method(f"{method.label} seed {seed}", method.run, method.which),
                        directory, attacks=attacks, n=plan.n, eps=plan.eps,
                        data_root=options.data_root, device=options.device,
                        check_n=plan.check_n, progress=plan.progress)
    except InUseError as error:  # another process is evaluating it: take the next one
        log(f"{method.label} seed {seed}: {error}; skipped")


def _analyze(plan: Plan, method: Method, seed: int, options: Options) -> None:
    directory = plan.run_dir(method.run, seed)
    if not RunDir(directory).checkpoint(method.which).is_file():
        return
    try:
        analyze_method(Method(f"{method.label} seed {seed}", method.run, method.which),
                       directory, parts=plan.analysis, n=plan.n, eps=plan.eps,
                       data_root=options.data_root, device=options.device,
                       progress=plan.progress)
    except InUseError as error:
        log(f"{method.label} seed {seed}: {error}; skipped")
