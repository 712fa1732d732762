"""`specrobust study` end to end on a tiny plan (synthetic data, seconds per run): every stage,
the tables and the report, a second invocation that redoes nothing, and two worker processes
sharing the plan with the results of one."""

import json
from pathlib import Path

import pytest
import torch
import yaml

from specrobust.cli import main
from specrobust.evaluation.record import EvalRecord
from specrobust.training.rundir import RunDir
from tests_support import at_and_sar_recipes


def _tiny_plan(tmp_path: Path, out: Path) -> Path:
    at_and_sar_recipes(tmp_path / "recipes", epochs=2, decay=1)
    plan = {"name": "tiny", "title": "tiny study", "out": str(out), "seeds": [0, 1],
            "eps": "8/255", "n": 20, "check_n": 8, "attacks": "clean,fgsm",
            "analysis": "kernels,logits", "progress": False,
            "runs": {"at": {"recipe": "recipes/at.yaml"},
                     "at_sar": {"recipe": "recipes/at_sar.yaml", "branch_from": "at"}},
            "methods": {"AT": ["at", "best"], "AT+SAR": ["at_sar", "best"],
                        "AT+SAR+WA": ["at_sar", "best_averaged"]},
            "comparisons": [["AT+SAR", "AT"]], "report": {"reference": "AT"}}
    path = tmp_path / "plan.yaml"
    path.write_text(yaml.safe_dump(plan))
    return path


def _results(out: Path) -> dict:
    """Every run's weights and every record's per-example outcomes."""
    found = {}
    for run in sorted((out / "runs").iterdir()):
        layout = RunDir(run)
        for which in ("best", "best_averaged"):
            if layout.checkpoint(which).is_file():
                found[(run.name, which)] = torch.load(layout.checkpoint(which),
                                                      weights_only=True)["state_dict"]
                record = EvalRecord.load(layout.eval_path(which))
                found[(run.name, which, "eval")] = record and record.finished()
    return found


def _same(a: dict, b: dict) -> bool:
    if a.keys() != b.keys():
        return False
    for key, value in a.items():
        if isinstance(value, dict) and value and isinstance(next(iter(value.values())),
                                                            torch.Tensor):
            if not all(torch.equal(value[k], b[key][k]) for k in value):
                return False
        elif value != b[key]:
            return False
    return True


def test_a_study_runs_every_stage_and_a_second_run_redoes_nothing(tmp_path, capsys):
    out = tmp_path / "study"
    plan = _tiny_plan(tmp_path, out)
    assert main(["study", str(plan)]) == 0
    table = (out / "RESULTS.md").read_text()
    assert "| AT+SAR - AT, fgsm |" in table and "| AT+SAR+WA | 2 |" in table
    assert "logit-spectrum gap" in table
    assert json.loads((out / "runs" / "at_sar-seed1" / "branched_from.json").read_text()) == \
        {"run": str(out / "runs" / "at-seed1"), "epoch": 1}
    epochs = json.loads((out / "summary.json").read_text())["checkpoint_epochs"]
    last = json.loads((out / "runs/at_sar-seed0/metrics.jsonl").read_text().splitlines()[-1])
    assert epochs["AT+SAR+WA"]["0"] == last["best_epoch_averaged"]
    page = (out / "report.html").read_text()
    assert "<td>AT+SAR+WA</td>" in page and "Differences from AT" in page
    stamps = {p: p.stat().st_mtime_ns for p in (out / "runs").rglob("*.json")}
    capsys.readouterr()
    assert main(["study", str(plan)]) == 0
    log = capsys.readouterr().out
    assert "train " not in log and "eval " not in log and "analyze " not in log  # nothing to say
    assert all(p.stat().st_mtime_ns == t for p, t in stamps.items()
               if p.name != "summary.json")  # nothing redone (an analysis re-sums its parts)


def test_a_bf16_study_evaluates_and_analyses_in_bf16_and_says_so(tmp_path):
    out = tmp_path / "study"
    path = _tiny_plan(tmp_path, out)
    plan = yaml.safe_load(path.read_text())
    plan.update(precision="bf16", seeds=[0], attacks="clean,pgd:steps=3", analysis="logits",
                methods={"AT": ["at", "best"]}, comparisons=[], report={})
    plan["runs"].pop("at_sar")
    path.write_text(yaml.safe_dump(plan))
    assert main(["study", str(path)]) == 0
    run = RunDir(out / "runs" / "at-seed0")
    assert EvalRecord.load(run.eval_path("best")).fingerprint["precision"] == "bf16"
    logits = json.loads((run.analysis_dir("best") / "logits.json").read_text())
    assert logits["fingerprint"]["precision"] == "bf16"
    assert "under bf16 autocast" in (out / "RESULTS.md").read_text()


@pytest.mark.slow
def test_two_workers_share_a_study_with_the_results_of_one(tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    assert main(["study", str(_tiny_plan(tmp_path, one)), "--threads", "1"]) == 0
    assert main(["study", str(_tiny_plan(tmp_path, two)), "--workers", "2",
                 "--threads", "2"]) == 0
    assert _same(_results(one), _results(two))
    assert (two / "report.html").is_file() and (two / "RESULTS.md").is_file()


def test_a_study_refuses_a_directory_that_is_not_a_studys_and_changes_nothing(tmp_path,
                                                                               capsys):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "RESULTS.md").write_text("my own results\n")
    plan = _tiny_plan(tmp_path, out)
    assert main(["study", str(plan), "--stages", "none"]) == 2
    error = capsys.readouterr().err.strip()
    assert "is not a study's directory" in error or "are not a study's directory" in error
    assert "\n" not in error
    assert (out / "RESULTS.md").read_text() == "my own results\n"
    assert sorted(p.name for p in out.iterdir()) == ["RESULTS.md"]
