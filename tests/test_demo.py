"""`specrobust demo` (the shipped study `demo`): its recipes, its message when the
data is missing, and (slow) a whole quick run that a second invocation finishes without
redoing anything."""

import json

import pytest

from specrobust.cli import main
from specrobust.config import load_config
from specrobust.study.plan import load_plan


@pytest.mark.parametrize("quick", [False, True])
def test_demo_recipes_are_valid_and_follow_the_paper(quick):
    plan = load_plan("demo", quick=quick)
    configs = {run.name: load_config(run.recipe, list(run.overrides)) for run in plan.runs}
    for name, config in configs.items():
        assert config.data.dataset == "fashion-mnist" and config.model.name == "cnn_small"
        # the quick natural model trains on more (cheap) images: accurate enough to collapse
        assert config.data.train_subset == (4000 if quick and name != "natural" else 12000)
    sar = configs["AT+SAR"]
    assert sar.sar.enabled and sar.sar.lam == 0.1
    assert sar.sar_start == sar.averaging_start == sar.optim.milestones[0]  # the first decay
    assert sar.averaging.kind == "swa" and sar.averaging.bn_inputs == "adversarial"
    at = configs["AT"]
    assert not at.sar.enabled and at.averaging.kind == "none"  # no AT+WA row in the demo
    assert at.run.snapshot_epochs == [sar.sar_start]  # AT+SAR branches from AT there
    assert plan.run("AT+SAR").branch_from == "AT"
    assert [m.label for m in plan.methods] == ["natural", "AT", "AT+SAR", "AT+SAR+WA"]


def test_demo_says_how_to_get_a_missing_dataset(monkeypatch, tmp_path, capsys):
    from specrobust.data import store

    monkeypatch.setattr(store, "find_layout", lambda info, root: None)
    assert main(["demo", "--quick", "--out", str(tmp_path / "demo")]) == 2
    error = capsys.readouterr().err.strip()
    assert "Fashion-MNIST not found" in error and "apt-get install dataset-fashion-mnist" in error
    assert "\n" not in error and not (tmp_path / "demo").exists()


@pytest.mark.slow
def test_quick_demo_produces_a_report_and_resumes(tmp_path, capsys):
    pytest.importorskip("specrobust.data").load_dataset("fashion-mnist")  # needs the real data
    out = tmp_path / "demo"
    assert main(["demo", "--quick", "--out", str(out)]) == 0
    report = out / "report.html"
    text = report.read_text()
    for label in ("natural", "AT", "AT+SAR", "AT+SAR+WA"):
        assert f"<td>{label}</td>" in text
    runs = out / "runs"
    assert json.loads((runs / "AT+SAR-seed0" / "branched_from.json").read_text())["epoch"] == 2
    evaluation = json.loads((runs / "AT+SAR-seed0" / "eval-best_averaged.json").read_text())
    assert evaluation["complete"] and evaluation["n"] == 500
    assert "What these models show" in text and "Quick smoke run" in text
    assert "| AT+SAR - AT, pgd20 |" in (out / "RESULTS.md").read_text()
    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("*.json")}
    capsys.readouterr()
    assert main(["demo", "--quick", "--out", str(out)]) == 0
    log = capsys.readouterr().out
    assert "train " not in log and "eval " not in log  # nothing redone
    assert all(p.stat().st_mtime_ns == t for p, t in stamps.items()
               if p.name != "summary.json")
