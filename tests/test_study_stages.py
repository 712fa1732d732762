"""A study's stages and how a plan runs them: which runs are trained, continued or left alone,
what is skipped when another process holds it, and plan files."""

import json
from pathlib import Path

import pytest

from specrobust.config import load_config
from specrobust.study import stages
from specrobust.training import loop


@pytest.fixture
def calls(monkeypatch):
    """Records train() calls instead of training: (resume, branch) of each."""
    made = []
    monkeypatch.setattr(loop, "train",
                        lambda config, directory, resume, branch: made.append((resume, branch)))
    return made


def _run(directory, epochs_done: int, checkpoint: bool):
    directory.mkdir(parents=True)
    (directory / "metrics.jsonl").write_text(
        "".join(json.dumps({"epoch": e + 1}) + "\n" for e in range(epochs_done)))
    if checkpoint:
        (directory / "checkpoints").mkdir()
        (directory / "checkpoints" / "last.pt").write_bytes(b"")
    return directory


def test_an_unfinished_run_is_continued(tmp_path, calls):
    config = load_config(None, ["optim.epochs=3", "optim.milestones=[2]"])
    stages.train_run(config, _run(tmp_path / "run", 2, checkpoint=True), "at")
    assert calls == [(True, None)]  # resumed from its last.pt, not started again


def test_a_finished_run_is_left_alone_even_without_its_checkpoints(tmp_path, calls, capsys):
    config = load_config(None, ["optim.epochs=3", "optim.milestones=[2]"])
    stages.train_run(config, _run(tmp_path / "kept", 3, checkpoint=True), "at")
    assert calls == [] and capsys.readouterr().out == ""
    stages.train_run(config, _run(tmp_path / "gone", 3, checkpoint=False), "at")
    assert calls == []  # retraining would overwrite its committed metrics and results
    assert "its checkpoints are gone" in capsys.readouterr().out


def test_a_new_run_branches_where_its_source_kept_a_snapshot(tmp_path, calls):
    config = load_config(None, ["optim.epochs=3", "optim.milestones=[2]", "sar.enabled=true"])
    source = _run(tmp_path / "at", 3, checkpoint=True)
    stages.train_run(config, tmp_path / "at_sar", "at_sar", branch_from=source)
    (source / "checkpoints" / "epoch2").mkdir()
    (source / "checkpoints" / "epoch2" / "last.pt").write_bytes(b"")
    stages.train_run(config, tmp_path / "at_sar", "at_sar", branch_from=source)
    # No snapshot: from scratch; then from epoch 2 (SAR's); resuming whatever a kill left.
    assert calls == [(True, None), (True, (source, 2))]


REPO = Path(__file__).resolve().parents[1]
RECIPES = REPO / "src" / "specrobust" / "recipes"


def _plan(tmp_path, text: str):
    from specrobust.study.plan import load_plan

    path = tmp_path / "plan.yaml"
    path.write_text(text)
    return load_plan(path)


def test_a_branch_from_another_study_waits_for_its_snapshot(tmp_path, monkeypatch):
    from specrobust.study import execute

    started = []
    monkeypatch.setattr(execute, "train_run", lambda *args: started.append(args))
    source = tmp_path / "main"
    plan = _plan(tmp_path, f"""
name: frozen
out: {tmp_path / "frozen"}
branch_root: {source}
eps: "0.1"
runs:
  at_sar: {{recipe: {RECIPES}/replication/fmnist_cnn_at_sar.yaml, branch_from: at}}
methods: {{}}
""")
    options = execute.Options(device="cpu")
    execute._train(plan, plan.runs[0], 0, options)
    assert started == [] and not plan.out.exists()  # AT still training: nothing from scratch
    (plan.run_dir("at", 0, source) / "checkpoints" / "epoch10").mkdir(parents=True)
    (plan.run_dir("at", 0, source) / "checkpoints" / "epoch10" / "last.pt").write_bytes(b"")
    execute._train(plan, plan.runs[0], 0, options)
    assert len(started) == 1 and started[0][3] == plan.run_dir("at", 0, source)


def test_work_another_process_holds_is_skipped_then_taken_up_again(tmp_path, monkeypatch,
                                                                    capsys):
    from specrobust.evaluation.runner import EvalInUseError
    from specrobust.study import execute
    from specrobust.training.resume import RunInUseError

    calls = {"train": 0, "eval": 0}

    def training(*args):  # held by another process the first time, then finished
        calls["train"] += 1
        if calls["train"] == 1:
            raise RunInUseError("runs/at-seed0 is being trained by another process")

    def evaluating(*args, **kwargs):
        calls["eval"] += 1
        if calls["eval"] == 1:
            raise EvalInUseError("eval-best.json is being written by another evaluation")

    monkeypatch.setattr(execute, "train_run", training)
    monkeypatch.setattr(execute, "evaluate_method", evaluating)
    plan = _plan(tmp_path, f"""
name: p
out: {tmp_path / "p"}
eps: "0.1"
attacks: clean,pgd20
runs:
  at: {{recipe: {RECIPES}/replication/fmnist_cnn_at.yaml}}
methods: {{AT: [at, best]}}
""")
    (plan.run_dir("at", 0) / "checkpoints").mkdir(parents=True)
    for name in ("best.pt", "last.pt"):  # a run, as far as the study's output rule sees
        (plan.run_dir("at", 0) / "checkpoints" / name).write_bytes(b"")
    execute.execute(plan, execute.Options(device="cpu", stages=("train", "eval"),
                                          poll_seconds=0))
    log = capsys.readouterr().out
    assert "another process; skipped" in log and "another evaluation; skipped" in log
    assert "waiting 0 s for work other processes hold" in log
    assert calls == {"train": 2, "eval": 2}  # each taken up again once it was free
    assert (plan.out / "RESULTS.md").is_file()


def test_the_shipped_plans_load_and_their_recipes_are_valid():
    from specrobust.config import load_config
    from specrobust.recipes import PLAN, shipped
    from specrobust.study.plan import load_plan

    plans = sorted(shipped(PLAN).values())
    assert {p.stem for p in plans} >= {"demo", "cifar10", "fmnist", "fmnist-sar-frozen-bn"}
    for path in plans:
        for quick in (False, True) if path.stem == "demo" else (False,):
            plan = load_plan(path, quick=quick)
            for run in plan.runs:
                load_config(run.recipe, list(run.overrides))


@pytest.mark.parametrize("text, message", [
    ("runs: {a: {recipe: x.yaml}}\nmethods: {}", "name must be given"),
    ("name: p\neps: '0.1'\nruns: {}\nmethods: {}", "runs is empty"),
    ("name: p\neps: '0.1'\nrunz: {}", "unknown plan key runz"),
    ("name: p\neps: '0.1'\nruns: {a: {recipe: x.yaml, branch_from: b}}\nmethods: {}",
     "branches from 'b'"),
    ("name: p\neps: '0.1'\nruns: {a: {recipe: x.yaml}}\nmethods: {M: [a, newest]}",
     "methods.M must be [run, checkpoint]"),
    ("name: p\neps: '0.1'\nruns: {a: {recipe: x.yaml}}\nmethods: {M: [a, best]}\n"
     "comparisons: [[M, N]]", "a comparison is a pair of method labels"),
    ("name: p\neps: '0.1'\nseeds: [-1]\nruns: {a: {recipe: x.yaml}}\nmethods: {}",
     "seeds must be a list"),
    ("[1, 2]", "must hold a mapping"),
    ("name: p\neps: '0.1'\nattacks: clean,pgd21x\nruns: {a: {recipe: x.yaml}}\nmethods: {}",
     "pgd21x"),
    ("name: p\neps: '0.1'\nanalysis: filter,spectrum\nruns: {a: {recipe: x.yaml}}\n"
     "methods: {}", "unknown analysis part spectrum"),
    ("name: p\neps: '0.1'\nprecision: fp16\nruns: {a: {recipe: x.yaml}}\nmethods: {}",
     "precision must be one of fp32, bf16"),
])
def test_a_bad_plan_is_refused_in_one_line(tmp_path, text, message, capsys):
    from specrobust.cli import main

    path = tmp_path / "plan.yaml"
    path.write_text(text)
    assert main(["study", str(path)]) == 2
    error = capsys.readouterr().err.strip()
    assert message in error and "\n" not in error


def test_quick_needs_a_quick_section(tmp_path, capsys):
    from specrobust.cli import main

    path = tmp_path / "plan.yaml"
    path.write_text("name: p\neps: '0.1'\nruns: {a: {recipe: x.yaml}}\nmethods: {}")
    assert main(["study", str(path), "--quick"]) == 2
    assert "no quick section" in capsys.readouterr().err


def test_a_checkpoint_that_changed_after_its_evaluation_is_evaluated_again(tmp_path, capsys):
    import torch

    from specrobust.checkpoint import save_checkpoint
    from specrobust.evaluation.record import EvalRecord
    from specrobust.models import create_model
    from specrobust.study.plan import Method
    from specrobust.training.rundir import RunDir

    run = RunDir(tmp_path / "run")
    dataset = "synthetic:band=low,n_train=100,n_test=40,seed=0"

    def save_weights(seed):
        torch.manual_seed(seed)
        save_checkpoint(run.checkpoint("best"), create_model("cnn_small", 10), dataset=dataset,
                        eps="8/255")

    def evaluate():
        capsys.readouterr()
        stages.evaluate_method(Method("AT", "run", "best"), run.path, attacks="clean,fgsm",
                               n=20, eps="8/255", check_n=10, progress=False)
        return "eval AT" in capsys.readouterr().out

    save_weights(0)
    assert evaluate()
    first = EvalRecord.load(run.eval_path("best")).fingerprint["weights_sha256"]
    assert not evaluate()  # current and complete: left alone
    save_weights(1)  # trained on, or replaced: the record is stale
    assert evaluate()
    assert EvalRecord.load(run.eval_path("best")).fingerprint["weights_sha256"] != first
    assert not evaluate()


def test_a_quick_plan_says_first_that_it_is_a_smoke_run_and_what_it_leaves_out():
    from specrobust.study.plan import load_plan

    full, quick = load_plan("demo"), load_plan("demo", quick=True)
    assert not full.smoke and "smoke run" in quick.title
    assert f"first {quick.n} test images" in quick.smoke
    assert "optim.epochs=3" in quick.smoke and "aa-apgd-ce" in quick.smoke
    assert "bands, heatmap" in quick.smoke  # the analyses the full demo runs and this does not
