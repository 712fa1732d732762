"""`specrobust.experiment.train_run`: which runs it trains, continues or leaves alone."""

import json

import pytest

from specrobust import experiment
from specrobust.config import load_config
from specrobust.training import loop


@pytest.fixture
def calls(monkeypatch):
    """Records train() calls instead of training."""
    made = []
    monkeypatch.setattr(loop, "train",
                        lambda config, directory, resume, branch: made.append(branch))
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
    experiment.train_run(config, _run(tmp_path / "run", 2, checkpoint=True), "at")
    assert calls == [None]


def test_a_finished_run_is_left_alone_even_without_its_checkpoints(tmp_path, calls, capsys):
    config = load_config(None, ["optim.epochs=3", "optim.milestones=[2]"])
    experiment.train_run(config, _run(tmp_path / "kept", 3, checkpoint=True), "at")
    assert calls == [] and capsys.readouterr().out == ""
    experiment.train_run(config, _run(tmp_path / "gone", 3, checkpoint=False), "at")
    assert calls == []  # retraining would overwrite its committed metrics and results
    assert "its checkpoints are gone" in capsys.readouterr().out


def test_a_new_run_branches_where_its_source_kept_a_snapshot(tmp_path, calls):
    config = load_config(None, ["optim.epochs=3", "optim.milestones=[2]", "sar.enabled=true"])
    source = _run(tmp_path / "at", 3, checkpoint=True)
    experiment.train_run(config, tmp_path / "at_sar", "at_sar", branch_from=source)
    (source / "checkpoints" / "epoch2").mkdir()
    (source / "checkpoints" / "epoch2" / "last.pt").write_bytes(b"")
    experiment.train_run(config, tmp_path / "at_sar", "at_sar", branch_from=source)
    assert calls == [None, (source, 2)]  # no snapshot: from scratch; then from epoch 2 (SAR's)
