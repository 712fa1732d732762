"""A kill -9 at any write leaves a directory that resumes to the results of an uninterrupted
run: each command is killed at one atomic write (before its rename, and after it), then run
again to completion, and its outputs compared with those of a run that was never killed.

`pytest -m slow tests/test_kills.py` kills training and evaluation at their middle write, and
training, evaluation, analysis, report and a study at every write (``KILL_FROM=K``: from the
K-th write on, to finish a sweep that was cut short). The default run kills an
analysis where the sweep once found a directory that refused to resume (tests/test_training.py
kills a training at timed points, test_robustness.py plants leftovers).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from specrobust.checkpoint import read_checkpoint
from tests_support import TINY_RECIPE

HERE = Path(__file__).parent
RECIPE = {**TINY_RECIPE, "optim": {**TINY_RECIPE["optim"], "epochs": 2},
          "averaging": {"kind": "swa", "start_epoch": 1}}


def _run(argv: list, cwd: Path, at: int = 0, when: str = "before") -> subprocess.CompletedProcess:
    env = {**os.environ, "KILL_AT": str(at), "KILL_WHEN": when,
           "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, str(HERE / "kill_at_write.py"), *map(str, argv)],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def _writes(argv: list, cwd: Path) -> int:
    done = _run(argv, cwd)
    assert done.returncode == 0, done.stderr
    return int(done.stdout.strip().splitlines()[-1].split()[1])


def _positions(total: int, slow: bool) -> list[int]:
    """Every write from ``KILL_FROM`` on (default 1: a sweep cut short resumes there), or (the
    default run) the middle one."""
    first = int(os.environ.get("KILL_FROM", "1"))
    return list(range(first, total + 1)) if slow else [(total + 1) // 2]


def _weights(run: Path) -> dict:
    found = {}
    for path in sorted((run / "checkpoints").glob("*.pt")):
        payload = read_checkpoint(path)
        found[path.name] = payload["state_dict"]
    return found


def _same_weights(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(
        a[n].keys() == b[n].keys() and all(torch.equal(a[n][k], b[n][k]) for k in a[n])
        for n in a)


def _kill_then_finish(argv: list, work: Path, at: int, when: str, again: list | None = None):
    done = _run(argv, work, at, when)
    assert done.returncode == -signal.SIGKILL, (at, when, done.returncode, done.stderr[-500:])
    finished = _run(again or argv, work)
    assert finished.returncode == 0, (at, when, finished.stderr[-800:])


@pytest.fixture(scope="module")
def recipe(tmp_path_factory) -> Path:
    import yaml

    path = tmp_path_factory.mktemp("recipe") / "tiny.yaml"
    path.write_text(yaml.safe_dump(RECIPE))
    return path


@pytest.fixture(scope="module")
def trained(tmp_path_factory, recipe) -> Path:
    """The run never killed, and the count of its writes."""
    work = tmp_path_factory.mktemp("straight")
    _writes(["train", recipe, "--out", "run"], work)
    return work / "run"


def _training(tmp_path, recipe, trained, slow):
    total = _writes(["train", recipe, "--out", "count"], tmp_path)
    for at in _positions(total, slow):
        for when in ("before", "after"):
            work = tmp_path / f"{at}-{when}"
            work.mkdir()
            _kill_then_finish(["train", recipe, "--out", "run"], work, at, when,
                              ["train", recipe, "--out", "run", "--resume"])
            assert _same_weights(_weights(work / "run"), _weights(trained)), (at, when)
            assert (work / "run" / "metrics.jsonl").read_text().count("\n") == 2
            assert not list((work / "run").rglob("*specrobust-partial*")), (at, when)


_TIMINGS = {"seconds", "images_per_second"}


def _without_timings(value):
    if isinstance(value, dict):
        return {k: _without_timings(v) for k, v in value.items() if k not in _TIMINGS}
    if isinstance(value, list):
        return [_without_timings(v) for v in value]
    return value


def _results_of(run: Path) -> dict:
    """What eval and analyze wrote, without the time they took; which figures exist."""
    found = {str(path.relative_to(run)): _without_timings(json.loads(path.read_text()))
             for path in sorted(run.rglob("*.json"))}
    found |= {str(p.relative_to(run)): p.is_file() for p in run.rglob("*.png")}
    return found


COMMANDS = [["eval", "run", "--attacks", "clean,fgsm,pgd:steps=2", "--n", "24",
             "--batch-size", "8", "--check-n", "8"],
            ["analyze", "run", "--parts", "kernels,filter", "--n", "16"],
            ["report", "run", "-o", "run/report.html"]]


def _evaluation_and_analysis(tmp_path, trained, slow, killed: tuple[str, ...]):
    commands = COMMANDS
    reference = tmp_path / "reference"
    shutil.copytree(trained, reference / "run")
    for command in commands:
        assert _run(command, reference).returncode == 0
    expected = _results_of(reference / "run")
    for index, command in enumerate(commands):
        if command[0] not in killed:
            continue
        total = _writes(command, reference)
        for at in _positions(total, slow):
            for when in ("before", "after"):
                work = tmp_path / f"{index}-{at}-{when}"
                shutil.copytree(trained, work / "run")
                for earlier in commands[:index]:
                    assert _run(earlier, work).returncode == 0
                _kill_then_finish(command, work, at, when)
                for later in commands[index + 1:]:
                    assert _run(later, work).returncode == 0
                assert _results_of(work / "run") == expected, (command[0], at, when)
                assert not list((work / "run").rglob("*specrobust-partial*")), (at, when)


@pytest.mark.slow
def test_a_killed_training_resumes_to_the_same_weights(tmp_path, recipe, trained):
    _training(tmp_path, recipe, trained, slow=False)


@pytest.mark.slow
def test_a_killed_evaluation_finishes_as_if_never_killed(tmp_path, trained):
    _evaluation_and_analysis(tmp_path, trained, slow=False, killed=("eval",))


@pytest.mark.slow
def test_training_killed_at_every_write(tmp_path, recipe, trained):
    _training(tmp_path, recipe, trained, slow=True)


@pytest.mark.slow
def test_evaluation_analysis_and_report_killed_at_every_write(tmp_path, trained):
    _evaluation_and_analysis(tmp_path, trained, slow=True, killed=("eval", "analyze", "report"))


@pytest.mark.slow
def test_a_study_killed_at_every_write_finishes_as_if_never_killed(tmp_path, recipe):
    plan = tmp_path / "plan.yaml"
    plan.write_text(f"name: k\neps: 8/255\nout: study\nn: 16\ncheck_n: 8\n"
                    f"attacks: clean,pgd:steps=2\nanalysis: kernels\n"
                    f"runs: {{at: {{recipe: {recipe}}}}}\n"
                    f"methods: {{AT: [at, best], AT+WA: [at, best_averaged]}}\n"
                    f"comparisons: [[AT+WA, AT]]\nprogress: false\n")
    straight = tmp_path / "straight"
    straight.mkdir()
    command = ["study", plan]
    total = _writes(command, straight)
    expected = _study_results(straight / "study")
    for at in _positions(total, slow=True):
        for when in ("before", "after"):
            work = tmp_path / f"{at}-{when}"
            work.mkdir()
            _kill_then_finish(command, work, at, when)
            assert _study_results(work / "study") == expected, (at, when)
            assert not list((work / "study").rglob("*specrobust-partial*")), (at, when)


def _study_results(out: Path) -> dict:
    run = out / "runs" / "at-seed0"
    return {"weights": {k: {n: t.tolist() for n, t in v.items()}
                        for k, v in _weights(run).items()},
            "records": _results_of(run),
            "summary": _without_timings(json.loads((out / "summary.json").read_text()))}


def test_an_analysis_killed_after_its_first_figure_finishes(tmp_path, trained):
    """The kill the sweep found refused: after the first part's figure, before its record."""
    command = ["analyze", "run", "--parts", "kernels,filter", "--n", "16"]
    reference = tmp_path / "reference"
    shutil.copytree(trained, reference / "run")
    assert _run(command, reference).returncode == 0
    work = tmp_path / "killed"
    shutil.copytree(trained, work / "run")
    _kill_then_finish(command, work, 2, "after")  # 1: summary.json, 2: kernels.png
    assert _results_of(work / "run") == _results_of(reference / "run")
