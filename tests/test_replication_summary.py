"""The replication scripts' table: mean ± standard deviation over the seeds that are finished."""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from replication import Plan, Run, run_dir, write_summary  # noqa: E402
from specrobust.experiment import Method  # noqa: E402

PLAN = Plan(name="toy", title="toy", runs=[Run("at", "unused.yaml")],
            methods=[Method("AT", "at", "best"), Method("AT+WA", "at", "best_averaged")],
            seeds=[0, 1], eps="8/255", attacks="clean,pgd20", late_attacks="")


def _write_eval(directory: Path, which: str, clean: float, pgd: float, stages=None) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    attacks = [{"label": "clean", "accuracy": clean}, {"label": "pgd20", "accuracy": pgd}]
    if stages:
        attacks[1]["stages"] = [{"attack": name, "accuracy_after": left} for name, left in stages]
    (directory / f"eval-{which}.json").write_text(json.dumps(
        {"complete": True, "attacks": attacks, "worst_case": {"accuracy": pgd}}))


def _write_analysis(directory: Path, which: str, gap: float) -> None:
    analysis = directory / f"analysis-{which}"
    analysis.mkdir(parents=True)
    (analysis / "summary.json").write_text(json.dumps(
        {"numbers": {"LPF 32 clean": 0.5, "LPF 32 PGD-20": 0.2, "LPF 16 clean": 0.4,
                     "logit-spectrum gap": gap}}))


def test_summary_gives_mean_and_std_and_says_which_seeds_are_missing(tmp_path):
    _write_eval(run_dir(tmp_path, "at", 0), "best", 0.50, 0.30)
    _write_eval(run_dir(tmp_path, "at", 1), "best", 0.54, 0.34,
                stages=[("apgd-ce", 0.36), ("square", 0.34)])
    _write_eval(run_dir(tmp_path, "at", 0), "best_averaged", 0.52, 0.31)
    _write_analysis(run_dir(tmp_path, "at", 0), "best", 7.25)
    write_summary(PLAN, tmp_path, [0, 1])
    table = (tmp_path / "RESULTS.md").read_text()
    assert "| AT | 2 | 52.0 ± 2.8 | 32.0 ± 2.8 | 32.0 ± 2.8 |" in table
    assert "| AT+WA | 1 | 52.0 | 31.0 | 31.0 |" in table
    assert "| method | seeds | pgd20 after apgd-ce | pgd20 after square |" in table
    assert "| AT | 1 | 36.0 | 34.0 |" in table
    # Table 1's shape: a row per (method, input), a column per bandwidth.
    assert "| method | seeds | 32 | 16 |" in table
    assert "| AT, clean | 1 | 50.0 | 40.0 |" in table
    assert "| AT, PGD-20 | 1 | 20.0 | - |" in table
    assert "| AT | 1 | 7.250 |" in table  # the logit gap is not a percentage
    # A cell with fewer seeds than its row says so.
    _write_eval(run_dir(tmp_path, "at", 1), "best_averaged", 0.56, 0.35)
    (run_dir(tmp_path, "at", 1) / "eval-best_averaged.json").write_text(json.dumps(
        {"attacks": [{"label": "clean", "accuracy": 0.56}]}))
    write_summary(PLAN, tmp_path, [0, 1])
    table = (tmp_path / "RESULTS.md").read_text()
    assert "| AT+WA | 2 | 54.0 ± 2.8 | 31.0 (1 of 2 seeds) |" in table
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["methods"]["AT"]["pgd20"] == {"0": 0.30, "1": 0.34}


def _write_run(directory: Path, val_robust: list[float], val_robust_avg: list[float],
               sar_start: int | None) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "metrics.jsonl").write_text("".join(
        json.dumps({"epoch": i + 1, "val_robust": r, "val_robust_avg": a}) + "\n"
        for i, (r, a) in enumerate(zip(val_robust, val_robust_avg, strict=True))))
    sar = {"enabled": sar_start is not None, "start_epoch": sar_start or 0}
    (directory / "config.yaml").write_text(json.dumps({"sar": sar}))  # JSON is YAML


def test_summary_says_which_epoch_each_row_reads(tmp_path):
    plan = Plan(name="toy", title="toy", runs=[Run("at_sar", "unused.yaml")],
                methods=[Method("AT+SAR", "at_sar", "best"),
                         Method("AT+SAR+WA", "at_sar", "best_averaged")],
                seeds=[0, 1], eps="8/255", attacks="clean", late_attacks="")
    # seed 0: the raw model peaks before SAR starts (epoch 3, SAR from 4); ties keep the first
    _write_run(run_dir(tmp_path, "at_sar", 0), [0.5, 0.6, 0.7, 0.65, 0.7],
               [0.5, 0.6, 0.7, 0.75, 0.72], sar_start=3)
    for which in ("best", "best_averaged"):
        _write_eval(run_dir(tmp_path, "at_sar", 0), which, 0.5, 0.3)
    # seed 1 still training: no eval yet, so no epoch
    _write_run(run_dir(tmp_path, "at_sar", 1), [0.5], [0.5], sar_start=3)
    write_summary(plan, tmp_path, [0, 1])
    table = (tmp_path / "RESULTS.md").read_text()
    assert "| AT+SAR | best | 3 | - | 4 |" in table
    assert "| AT+SAR+WA | best_averaged | 4 | - | 4 |" in table
    epochs = json.loads((tmp_path / "summary.json").read_text())["checkpoint_epochs"]
    assert epochs["AT+SAR"] == {"0": 3, "1": None}


def test_a_branch_from_another_plan_waits_for_its_snapshot(tmp_path, monkeypatch):
    import argparse

    import replication

    monkeypatch.chdir(Path(__file__).resolve().parents[1])  # recipes are read from configs/
    started = []
    monkeypatch.setattr(replication, "train_run", lambda *args: started.append(args))
    source = tmp_path / "main"
    plan = Plan(name="frozen", title="t", seeds=[0], eps="0.1", methods=[],
                runs=[Run("at_sar", "replication/fmnist_cnn_at_sar.yaml", branch_from="at")],
                branch_root=str(source))
    args = argparse.Namespace(device="cpu", data_root=None)
    out = tmp_path / "frozen"
    replication._train(plan, plan.runs[0], 0, out, args)
    assert started == [] and not out.exists()  # AT still training: nothing from scratch
    (run_dir(source, "at", 0) / "checkpoints" / "epoch10").mkdir(parents=True)
    replication._train(plan, plan.runs[0], 0, out, args)
    assert len(started) == 1 and started[0][3] == run_dir(source, "at", 0)


def test_paired_differences_count_images_each_method_alone_gets_right(tmp_path):
    plan = Plan(name="toy", title="toy", runs=[Run("at", "unused.yaml")],
                methods=[Method("AT", "at", "best"), Method("AT+WA", "at", "best_averaged")],
                seeds=[0, 1], eps="8/255", attacks="clean,pgd20", late_attacks="",
                comparisons=[("AT+WA", "AT")])
    # seed 0: AT+WA alone right on 8 images, AT alone on 2 (of 20): +30 points, p = 112/1024
    outcomes = {"best": "1100000000" + "1111100000", "best_averaged": "0011111111" + "1111100000"}
    for which, bits in outcomes.items():
        directory = run_dir(tmp_path, "at", 0)
        _write_eval(directory, which, 0.5, 0.3)
        data = json.loads((directory / f"eval-{which}.json").read_text())
        data["per_example"] = {"clean": "1" * 20, "pgd20": bits}
        (directory / f"eval-{which}.json").write_text(json.dumps(data))
    write_summary(plan, tmp_path, [0, 1])
    table = (tmp_path / "RESULTS.md").read_text()
    assert "| AT+WA - AT, pgd20 | +30.0 (p 0.11) | - | +30.0 |" in table
    assert "| AT+WA - AT, clean | +0.0 (p 1) | - | +0.0 |" in table


def test_a_run_another_script_is_training_is_skipped(tmp_path, monkeypatch, capsys):
    import argparse

    import replication
    from specrobust.training.rundir import RunInUseError

    monkeypatch.chdir(Path(__file__).resolve().parents[1])

    def busy(*args):
        raise RunInUseError("runs/at-seed0 is being trained by another process")

    monkeypatch.setattr(replication, "train_run", busy)
    plan = Plan(name="p", title="t", seeds=[0], eps="0.1", methods=[],
                runs=[Run("at", "replication/fmnist_cnn_at.yaml")])
    replication._train(plan, plan.runs[0], 0, tmp_path, argparse.Namespace(device="cpu",
                                                                          data_root=None))
    assert "another process; skipped" in capsys.readouterr().out


def test_a_model_another_script_is_evaluating_is_skipped(tmp_path, monkeypatch, capsys):
    import argparse

    import replication
    from specrobust.evaluation.runner import EvalInUseError

    def busy(*args, **kwargs):
        raise EvalInUseError("eval-best.json is being written by another evaluation")

    monkeypatch.setattr(replication, "evaluate_method", busy)
    plan = Plan(name="p", title="t", seeds=[0], eps="0.1", methods=[Method("AT", "at", "best")],
                runs=[Run("at", "unused.yaml")], attacks="clean,pgd20", late_attacks="aa")
    (run_dir(tmp_path, "at", 0) / "checkpoints").mkdir(parents=True)
    (run_dir(tmp_path, "at", 0) / "checkpoints" / "best.pt").write_bytes(b"")
    replication._evaluate(plan, plan.methods[0], 0, tmp_path,
                          argparse.Namespace(n=1000, data_root=None, device="cpu"), late=True)
    assert "another evaluation; skipped" in capsys.readouterr().out


def test_an_evaluation_under_way_keeps_its_finished_attacks_in_the_table(tmp_path):
    plan = Plan(name="toy", title="toy", runs=[Run("at", "unused.yaml")],
                methods=[Method("AT", "at", "best")], seeds=[0], eps="8/255",
                attacks="clean,pgd20", late_attacks="aa")
    directory = run_dir(tmp_path, "at", 0)
    directory.mkdir(parents=True)
    # AutoAttack's late pass rewrote the file as a partial one: 3 of 4 images clean-correct,
    # PGD-20 finished on all 3, AutoAttack on 2 of them so far.
    (directory / "eval-best.json").write_text(json.dumps({"complete": False, "partial": {
        "clean": {"bits": "1101", "done": 4}, "pgd20": {"bits": "1000", "done": 3},
        "aa": {"bits": "0000", "done": 2}}}))
    write_summary(plan, tmp_path, [0])
    assert "| AT | 1 | 75.0 | 25.0 | - | - |" in (tmp_path / "RESULTS.md").read_text()


def test_sar_without_a_start_epoch_starts_at_the_first_decay(tmp_path):
    from replication import _sar_first_epoch

    (tmp_path / "config.yaml").write_text(json.dumps(
        {"optim": {"epochs": 5, "milestones": [2, 4]}, "sar": {"enabled": True,
                                                             "start_epoch": None}}))
    assert _sar_first_epoch(tmp_path) == 3
