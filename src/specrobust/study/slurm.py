"""A study on a Slurm cluster: its work as batch jobs, chained by Slurm's own dependencies.

    specrobust study PLAN --slurm [--slurm-option=--gres=gpu:1 ...]   # submit, and return
    specrobust study PLAN --slurm-status                                # queued, running, done

One job per training run and seed (a branched run waits for the run it branches from), then
per seed one job for the cheap attacks and the analyses (after that seed's training), one for
the late attacks (AutoAttack) after it, and the report after everything. Each job is
``specrobust study`` itself on its share of the plan, so it resumes what it finds: a job that
Slurm preempts or requeues (``--requeue``) starts again and continues from the last epoch,
batch or analysis part. Slurm is the engine: specrobust submits and reads its state, and polls
nothing of its own. The study's directory must be on a file system every node sees.

``OUT/slurm/`` holds each job's script (``NAME.sh``), its log (``NAME.log``, appended across
requeues), its exit status once it ended (``NAME.exit``) and the job ids (``jobs.json``).
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from specrobust.errors import SpecRobustError
from specrobust.files import outputs, storage
from specrobust.study.plan import Plan, Run

DIRECTORY = "slurm"
JOBS = "jobs.json"
# What squeue calls a job that has not ended, as this module reports it.
_WAITING = {"PENDING": "queued", "CONFIGURING": "starting", "RUNNING": "running",
            "COMPLETING": "running", "REQUEUED": "queued", "REQUEUE_HOLD": "queued",
            "REQUEUE_FED": "queued", "SUSPENDED": "suspended", "PREEMPTED": "queued",
            "RESIZING": "running", "STOPPED": "suspended"}


@dataclass(frozen=True)
class Job:
    """One batch job: its name, the stages and runs it works on, and the jobs it waits for."""

    name: str
    seeds: tuple[int, ...]
    stages: tuple[str, ...]
    runs: tuple[str, ...] = ()
    after: tuple[str, ...] = ()


def jobs(plan: Plan, seeds: list[int], stages: tuple[str, ...],
         runs: tuple[str, ...] = ()) -> list[Job]:
    """The plan's work for ``seeds`` and ``stages`` (training only ``runs``, default all), in
    an order that submits every job after those it waits for."""
    found: list[Job] = []
    chosen = [run for run in _in_branch_order(plan) if not runs or run.name in runs]
    for seed in seeds:
        trained: list[str] = []
        if "train" in stages:
            for run in chosen:
                after = (f"train-{run.branch_from}-seed{seed}",) if any(
                    r.name == run.branch_from for r in chosen) else ()
                found.append(Job(f"train-{run.name}-seed{seed}", (seed,), ("train",),
                                 (run.name,), after))
                trained.append(found[-1].name)
        cheap = tuple(s for s in ("eval", "analyze") if s in stages)
        if cheap:
            found.append(Job(f"attack-seed{seed}", (seed,), cheap, (), tuple(trained)))
        if "aa" in stages and plan.late_attacks:
            found.append(Job(f"aa-seed{seed}", (seed,), ("aa",), (),
                             (found[-1].name,) if cheap else tuple(trained)))
    if "report" in stages:
        last = {job.seeds[0]: job.name for job in found}
        found.append(Job("report", tuple(seeds), ("report",), (), tuple(last.values())))
    return found


def _in_branch_order(plan: Plan) -> list[Run]:
    """Runs with every branch source before the runs branching from it."""
    ordered: list[Run] = []
    names = {run.name for run in plan.runs}
    pending = list(plan.runs)
    while pending:
        ready = [run for run in pending if run.branch_from not in names or
                 any(done.name == run.branch_from for done in ordered)]
        if not ready:
            raise SpecRobustError(f"plan {plan.name}: its runs branch from each other in a "
                                  "circle")
        ordered += ready
        pending = [run for run in pending if run not in ready]
    return ordered


def submit(plan: Plan, work: list[Job], study_argv: list[str],
           options: list[str]) -> dict[str, str]:
    """Submit ``work`` with ``sbatch``; ``study_argv`` is the ``specrobust study`` command line
    every job shares (plan, out, data root, device, threads), ``options`` extra ``sbatch``
    options. Returns name -> job id (also written to ``OUT/slurm/jobs.json``). ``OUT`` is
    checked by the study's own output rule first: a directory of anything else is refused."""
    directory = outputs.check_directory(
        plan.out, outputs.STUDY, how="choose another --out (or the plan's out)") / DIRECTORY
    if any(state in ("queued", "starting", "running", "suspended")
           for _, _, state in status(plan.out)):
        raise SpecRobustError(f"this study's jobs are still in Slurm's queue ("
                              f"{directory / JOBS}); see --slurm-status, or scancel them first")
    storage.make_directories(directory)
    ids: dict[str, str] = {}
    for job in work:
        script = directory / f"{job.name}.sh"
        storage.write_text(script, _script(job, directory, study_argv, options))
        (directory / f"{job.name}.exit").unlink(missing_ok=True)
        waits = [ids[name] for name in job.after]
        argv = ["sbatch", "--parsable", "--kill-on-invalid-dep=yes"]
        if waits:
            argv.append("--dependency=afterok:" + ":".join(waits))
        done = _slurm([*argv, str(script)])
        ids[job.name] = done.split(";")[0].strip()
        storage.write_text(directory / JOBS, json.dumps(ids, indent=1) + "\n")
    return ids


def _script(job: Job, directory: Path, study_argv: list[str], options: list[str]) -> str:
    command = [sys.executable, "-m", "specrobust.cli", *study_argv,
               "--seeds", ",".join(map(str, job.seeds)), "--stages", ",".join(job.stages)]
    if job.runs:
        command += ["--runs", ",".join(job.runs)]
    lines = ["#!/bin/bash", f"#SBATCH --job-name=specrobust-{job.name}",
             f"#SBATCH --output={directory / job.name}.log", "#SBATCH --open-mode=append",
             "#SBATCH --requeue", *(f"#SBATCH {option}" for option in options),
             "# Written by `specrobust study --slurm`: one share of the study, resumable.",
             f"cd {shlex.quote(str(Path.cwd()))}",
             shlex.join(command),
             "code=$?",
             f"echo $code > {shlex.quote(str(directory / job.name))}.exit",
             "exit $code", ""]
    return "\n".join(lines)


def status(out: Path) -> list[tuple[str, str, str]]:
    """(name, job id, state) of every submitted job: queued, starting, running or suspended
    from Slurm's queue; done or failed (exit status N) once it ended; cancelled where it left
    the queue without ending (scancel, or a dependency that failed)."""
    directory = out.resolve() / DIRECTORY
    if not (directory / JOBS).is_file():
        return []
    ids = json.loads((directory / JOBS).read_text())
    queued: dict[str, str] = {}
    if ids:
        text = _slurm(["squeue", "--noheader", "--states=all", "--format=%i %T",
                       "--jobs", ",".join(ids.values())], missing_ok=True)
        queued = dict(line.split()[:2] for line in text.splitlines() if line.strip())
    found = []
    for name, job in ids.items():
        exit_file = directory / f"{name}.exit"
        state = queued.get(job, "")
        if state in _WAITING:
            found.append((name, job, _WAITING[state]))
        elif exit_file.is_file():
            code = exit_file.read_text().strip()
            found.append((name, job, "done" if code == "0" else f"failed (exit status {code})"))
        else:  # ended without its script's end: Slurm's word (timeout, node failure...)
            found.append((name, job, state.lower().replace("_", " ") or "cancelled"))
    return found


def _slurm(argv: list[str], missing_ok: bool = False) -> str:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    except FileNotFoundError:
        raise SpecRobustError(f"{argv[0]} not found: --slurm needs Slurm's commands on this "
                              "machine (a cluster's login node)") from None
    if done.returncode != 0:
        if missing_ok and "Invalid job id" in done.stderr:
            return ""
        reason = (done.stderr.strip().splitlines() or ["no message"])[-1]
        raise SpecRobustError(f"{argv[0]} failed: {reason}")
    return done.stdout
