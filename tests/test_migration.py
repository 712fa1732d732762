"""``benchmarks/migrate_to_0_2.py``: a run, evaluation and analysis as 0.1.0 wrote them in its
earlier days become records 0.2.0 reads as current, with the weights untouched."""

import hashlib
import json
from pathlib import Path

import pytest
import torch
import yaml

from specrobust.analysis.job import METHOD_VERSION
from specrobust.checkpoint import read_checkpoint
from specrobust.cli import main
from specrobust.config import load_config
from specrobust.errors import SpecRobustError
from specrobust.evaluation.record import EvalRecord
from specrobust.files import outputs
from specrobust.training.loop import train
from specrobust.training.rundir import RunDir
from tests_support import script

RECIPE = {
    "seed": 3,
    "data": {"dataset": "synthetic:band=low,n_train=300,n_test=60", "val_fraction": 0.2},
    "model": {"name": "cnn_small"},
    "optim": {"epochs": 2, "batch_size": 64, "lr": 0.05, "milestones": [1]},
    "attack": {"eps": "8/255", "alpha": "4/255", "steps": 2},
    "averaging": {"kind": "swa"},
    "validation": {"n": 40, "pgd_steps": 2},
    "run": {"progress": False, "precision": "fp32"},
}


def _script():
    return script("benchmarks/migrate_to_0_2.py")


def _as_0_1(run: Path) -> None:
    """What a run of 0.1.0's earlier days held: run.bf16, no best_epoch_averaged, a version-1
    evaluation record and an analysis whose fingerprints carry neither norm nor precision."""
    config = run / "config.yaml"
    config.write_text(config.read_text().replace("precision: fp32", "bf16: false"))
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    for line in lines:
        line.pop("best_epoch_averaged", None)
    (run / "metrics.jsonl").write_text("".join(json.dumps(m) + "\n" for m in lines))
    last = run / "checkpoints" / "last.pt"
    payload = torch.load(last, weights_only=True)
    state = payload["training"]
    state["config"]["run"] = {**state["config"]["run"], "bf16": False}
    del state["config"]["run"]["precision"]
    for line in state["metrics"]:
        line.pop("best_epoch_averaged", None)
    torch.save(payload, last)
    sha256 = hashlib.sha256(last.read_bytes()).hexdigest()  # the file those records were made of
    record = json.loads((run / "eval.json").read_text())
    record["fingerprint"]["weights_sha256"] = sha256
    for field in ("norm", "precision"):
        record["fingerprint"].pop(field)
    record.pop("precision")
    record["format_version"] = 1
    for attack in record["attacks"]:
        del attack["done"]
    (run / "eval.json").write_text(json.dumps(record))
    table = (run / "eval.md").read_text()
    (run / "eval.md").write_text(table.split("\n", 1)[1])  # the title first, no marker
    part = run / "analysis-last" / "kernels.json"
    analysis = json.loads(part.read_text())
    analysis["fingerprint"]["weights_sha256"] = sha256
    for field in ("norm", "precision"):
        analysis["fingerprint"].pop(field)
    part.write_text(json.dumps(analysis))


def test_a_0_1_run_migrates_to_records_read_as_current(tmp_path, capsys):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(yaml.safe_dump(RECIPE))
    run = tmp_path / "run"
    train(load_config(recipe), run)
    evaluate = ["eval", str(run), "--checkpoint", "last", "--attacks", "clean,fgsm", "--n", "20",
                "--no-checks", "--out", str(run / "eval.json")]
    assert main(evaluate) == 0
    analyze = ["analyze", str(run), "--checkpoint", "last", "--parts", "kernels", "--n", "8"]
    assert main(analyze) == 0
    weights = read_checkpoint(run / "checkpoints" / "last.pt")["state_dict"]
    best_averaged = RunDir(run).checkpoint_epoch("best_averaged")
    _as_0_1(run)

    # 0.2.0 reads none of it as it is.
    assert EvalRecord.load(run / "eval.json") is None
    assert RunDir(run).checkpoint_epoch("best_averaged") is None
    assert not outputs.EVAL_MD.recognise(run / "eval.md")
    with pytest.raises(SpecRobustError, match=r"run\.bf16"):
        train(load_config(recipe), run, resume=True)

    script = _script()
    counts: dict[str, str] = {}
    changed = script.migrate_runs(tmp_path, counts)
    changed.update(script.migrate_results(tmp_path, counts))
    assert changed == {"config.yaml": 1, "metrics.jsonl": 1, "last.pt": 1, "records": 2,
                       "eval.md": 1, "report.html": 0}
    again = {**script.migrate_runs(tmp_path, {}), **script.migrate_results(tmp_path, {})}
    assert set(again.values()) == {0}  # idempotent

    migrated = read_checkpoint(run / "checkpoints" / "last.pt")["state_dict"]
    assert all(torch.equal(migrated[k], weights[k]) for k in weights)
    assert RunDir(run).checkpoint_epoch("best_averaged") == best_averaged
    assert outputs.EVAL_MD.recognise(run / "eval.md")
    train(load_config(recipe), run, resume=True)  # accepted: the same recipe, nothing to do
    capsys.readouterr()
    # Nothing is evaluated or analysed again: the records are current for the rewritten file.
    record = json.loads((run / "eval.json").read_text())
    assert EvalRecord.load(run / "eval.json").fingerprint["norm"] == "linf"
    assert main(evaluate) == 0
    assert "fgsm" in capsys.readouterr().out
    after = json.loads((run / "eval.json").read_text())
    assert after["attacks"][1:] == record["attacks"][1:]  # fgsm's timing too: not run again
    before = (run / "analysis-last" / "kernels.json").read_text()
    assert main(analyze) == 0
    assert (run / "analysis-last" / "kernels.json").read_text() == before
    assert json.loads(before)["fingerprint"]["method_version"] == METHOD_VERSION


def test_version_1_records_under_way_become_version_2():
    upgrade = _script().upgrade_eval_v1
    partial = {"format": "specrobust-eval", "format_version": 1, "complete": False,
               "fingerprint": {"eps": 0.1, "n": 4}, "dataset": "toy", "partial": {
                   "clean": {"bits": "1101", "done": 4, "seconds": 0.1},
                   "pgd20": {"bits": "1001", "done": 3, "seconds": 2.0},
                   "aa": {"bits": "1000", "done": 2, "seconds": 9.0,
                          "stages": {"apgd-ce": {"broken": 1, "seconds": 9.0}}}}}
    record = EvalRecord.from_dict(upgrade(partial))
    assert record.finished() == {"clean": "1101", "pgd20": "1001"} and record.eps == 0.1
    assert record.entry("aa").stages == {"apgd-ce": {"broken": 1, "seconds": 9.0}}
    # A first pass interrupted before any final clean pass was recorded: nothing is final.
    assert EvalRecord.from_dict(upgrade({**partial, "partial": {"pgd20": {"bits": "10",
                                                                          "done": 1}}})
                                ).finished() == {}
