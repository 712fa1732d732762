import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from specrobust.checkpoint import read_checkpoint
from specrobust.cli import main
from specrobust.config import load_config
from specrobust.errors import SpecRobustError
from specrobust.loading import load_model
from specrobust.training import objectives
from specrobust.training.loop import train

TINY = {
    "seed": 3,
    "data": {"dataset": "synthetic:band=low,n_train=500,n_test=100", "val_fraction": 0.2},
    "model": {"name": "cnn_small"},
    "optim": {"epochs": 3, "batch_size": 64, "lr": 0.05, "milestones": [2]},
    "attack": {"eps": "8/255", "alpha": "4/255", "steps": 2},
    "sar": {"enabled": True},
    "averaging": {"kind": "swa"},
    "validation": {"n": 50, "pgd_steps": 3},
    "run": {"progress": False},
}


def _write_config(tmp_path, changes=None) -> Path:
    data = json.loads(json.dumps(TINY))
    for key, value in (changes or {}).items():
        section, leaf = key.split(".")
        data.setdefault(section, {})[leaf] = value
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_a_run_directory_holds_everything_and_evaluates(tmp_path, capsys):
    run = tmp_path / "run"
    metrics = train(load_config(_write_config(tmp_path)), run)
    for name in ("config.yaml", "metrics.jsonl", "curves.png", "checkpoints/last.pt",
                 "checkpoints/best.pt", "checkpoints/best_averaged.pt", "checkpoints/averaged.pt",
                 "weights/best.safetensors", "weights/best_averaged.safetensors"):
        assert (run / name).is_file(), name
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [m["epoch"] for m in lines] == [1, 2, 3]
    # milestone 2: the third epoch is the first at the decayed rate; SAR and SWA start there
    assert lines[2]["lr"] < lines[1]["lr"]
    assert "sar" not in lines[1] and lines[2]["sar"] > 0
    assert "val_robust_avg" not in lines[1] and "val_robust_avg" in lines[2]
    assert metrics["epoch"] == 3 and 0 <= metrics["val_robust"] <= metrics["val_clean"] <= 1
    assert (run / "curves.png").read_bytes().startswith(b"\x89PNG")
    averaged = read_checkpoint(run / "checkpoints/last.pt")["training"]["averaged"]
    assert int(averaged["n_averaged"]) == 1  # one snapshot per epoch from the decay on

    assert main(["eval", str(run), "--attacks", "clean,pgd:steps=3", "--n", "50",
                 "--no-checks"]) == 0
    assert "pgd:steps=3" in capsys.readouterr().out
    assert json.loads((run / "eval.json").read_text())["weights"].endswith("best_averaged.pt")

    with pytest.raises(SpecRobustError, match="already holds a run"):
        train(load_config(_write_config(tmp_path)), run)
    with pytest.raises(SpecRobustError, match="different config"):
        train(load_config(_write_config(tmp_path), ["optim.lr=0.1"]), run, resume=True)
    # where the data lie and which device continues are not the recipe (a run may move to a GPU)
    moved = ["data.data_root=" + str(tmp_path / "elsewhere"), "run.device=cpu"]
    train(load_config(_write_config(tmp_path), moved), run, resume=True)  # accepted, nothing to do
    assert len((run / "metrics.jsonl").read_text().splitlines()) == 3


def test_bf16_training_on_a_cpu_is_asked_for_and_takes_effect(tmp_path):
    def config(*changes):
        return load_config(_write_config(tmp_path), ["optim.epochs=1", "optim.milestones=[]",
                                                     *changes])

    fp32 = train(config(), tmp_path / "fp32")
    bf16 = train(config("run.precision=bf16"), tmp_path / "bf16")
    weights = [read_checkpoint(tmp_path / run / "checkpoints/last.pt")["state_dict"]
               for run in ("fp32", "bf16")]
    assert any(not torch.equal(a, weights[1][k]) for k, a in weights[0].items())  # it took effect
    assert abs(bf16["train_robust"] - fp32["train_robust"]) < 0.15


@pytest.mark.slow
def test_a_compiled_run_trains_like_an_eager_one(tmp_path):
    # run.compile compiles the attack's passes as well as the update's; close, not bit-equal
    def config(*changes):
        return load_config(_write_config(tmp_path), ["optim.epochs=1", "optim.milestones=[]",
                                                     "sar.enabled=false", *changes])

    eager = train(config(), tmp_path / "eager")
    compiled = train(config("run.compile=true"), tmp_path / "compiled")
    assert abs(compiled["train_loss"] - eager["train_loss"]) < 1e-3 * abs(eager["train_loss"])
    assert abs(compiled["val_robust"] - eager["val_robust"]) <= 0.04


@pytest.mark.parametrize("bn_inputs", ["clean", "adversarial"])
def test_weight_averaging_leaves_the_raw_models_training_unchanged(tmp_path, bn_inputs):
    """The replication reads AT+SAR and AT+SAR+WA from one run (raw and averaged checkpoints);
    that is only sound if switching SWA on does not change the raw model's weights (nor may the
    attack that makes the averaged model's batch-norm inputs draw from the training's random
    numbers)."""
    finals = {}
    for kind in ("swa", "none"):
        run = tmp_path / kind / "run"
        (tmp_path / kind).mkdir()
        changes = {"averaging.kind": kind, "averaging.bn_inputs": bn_inputs}
        train(load_config(_write_config(tmp_path / kind, changes)), run)
        finals[kind] = read_checkpoint(run / "checkpoints/last.pt")["state_dict"]
    assert finals["swa"].keys() == finals["none"].keys()
    assert all(torch.equal(finals["swa"][k], finals["none"][k]) for k in finals["swa"])


def test_a_run_branched_after_the_shared_epochs_equals_one_trained_from_scratch(tmp_path):
    """AT+SAR+SWA with SAR and SWA from the first decay (epoch 2) is plain AT until then:
    branching it from an AT run's snapshot must give the very weights, best checkpoints and
    metrics of a whole run."""
    def tiny(name, sar, snapshot=(), averaging="swa"):
        (tmp_path / "recipes" / name).mkdir(parents=True)
        return load_config(_write_config(tmp_path / "recipes" / name, {
            "sar.enabled": sar, "averaging.kind": averaging,
            "run.snapshot_epochs": list(snapshot)}))

    train(tiny("at", False, snapshot=[2], averaging="none"), tmp_path / "at")
    assert (tmp_path / "at/checkpoints/epoch2/last.pt").is_file()
    train(tiny("whole", True), tmp_path / "whole")
    assert main(["train", str(tmp_path / "recipes/whole/tiny.yaml"), "--out",
                 str(tmp_path / "branched"),
                 "--branch-from", str(tmp_path / "at")]) == 0
    for name in ("last.pt", "best.pt", "best_averaged.pt"):
        whole = read_checkpoint(tmp_path / "whole/checkpoints" / name)["state_dict"]
        branched = read_checkpoint(tmp_path / "branched/checkpoints" / name)["state_dict"]
        assert all(torch.equal(whole[k], branched[k]) for k in whole), name
    epochs = [{k: v for k, v in json.loads(line).items() if "seconds" not in k}
              for name in ("whole", "branched")
              for line in (tmp_path / name / "metrics.jsonl").read_text().splitlines()]
    assert epochs[:3] == epochs[3:]
    assert json.loads((tmp_path / "branched/branched_from.json").read_text())["epoch"] == 2


def test_branching_is_refused_where_the_recipes_differ_before_the_branch(tmp_path, capsys):
    (tmp_path / "recipes").mkdir()
    train(load_config(_write_config(tmp_path / "recipes", {"sar.enabled": False,
                                                           "run.snapshot_epochs": [2]})),
          tmp_path / "at")
    recipe = _write_config(tmp_path)
    for extra in (["--set", "optim.lr=0.1"], ["--branch-epoch", "3"],
                  ["--set", "sar.start_epoch=1", "--branch-epoch", "2"],
                  ["--set", "averaging.start_epoch=1"]):
        out = tmp_path / "branched"
        code = main(["train", str(recipe), "--out", str(out), "--branch-from",
                     str(tmp_path / "at"), *extra])
        error = capsys.readouterr().err.strip()
        assert code == 2 and "\n" not in error, extra
        assert "cannot branch" in error or "no snapshot" in error, error
        assert not out.exists()  # nothing written: the next try starts clean


@pytest.mark.skipif(sys.platform == "win32", reason="no flock")
def test_a_run_being_trained_elsewhere_is_refused_and_left_alone(tmp_path, capsys):
    recipe, run = _write_config(tmp_path, {"optim.epochs": 3}), tmp_path / "run"
    train(load_config(recipe), run)
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    holder = subprocess.Popen(  # another process training it: holds the directory's lock
        [sys.executable, "-c", "import fcntl, os, sys, time; fd = os.open(sys.argv[1], "
         "os.O_RDONLY); fcntl.flock(fd, fcntl.LOCK_EX); print('held', flush=True); "
         "time.sleep(60)", str(run)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        code = main(["train", str(recipe), "--out", str(run), "--resume", "--force",
                     "--set", "optim.epochs=4"])
        error = capsys.readouterr().err.strip()
        assert code == 2 and "\n" not in error and "another process" in error, error
        assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} == before
    finally:
        holder.kill()
        holder.wait()
    # Once it is gone (the system drops its lock), the run continues.
    assert main(["train", str(recipe), "--out", str(run), "--resume", "--force",
                 "--set", "optim.epochs=4"]) == 0
    assert len((run / "metrics.jsonl").read_text().splitlines()) == 4


def test_swa_batch_norm_statistics_come_from_the_chosen_inputs():
    from specrobust.training.averaging import WeightAveraging

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.BatchNorm2d(1), torch.nn.Flatten())
    batches = [(torch.rand(8, 1, 4, 4), torch.zeros(8, dtype=torch.long)) for _ in range(4)]
    clean_mean = torch.cat([x for x, _ in batches]).mean()

    def shift_attack(model, x, y, index):
        model(x + 5)  # the attack's own forward passes must not reach the statistics
        return x + 1

    means = {}
    for bn_inputs in ("clean", "adversarial"):
        averaging = WeightAveraging(net, "swa", start_epoch=0, bn_inputs=bn_inputs)
        averaging.after_epoch(net, 0, batches, shift_attack)
        means[bn_inputs] = averaging.model[0].running_mean.item()
    assert means["clean"] == pytest.approx(clean_mean.item(), abs=1e-5)
    assert means["adversarial"] == pytest.approx(clean_mean.item() + 1, abs=1e-5)


@pytest.mark.parametrize("name, awp", [("trades", False), ("mart", False), ("pgd_at", True),
                                       ("trades", True), ("natural", False)])
def test_every_objective_trains(tmp_path, name, awp):
    changes = {"objective.name": name, "awp.enabled": awp, "optim.epochs": 1,
               "optim.milestones": [], "sar.enabled": name != "natural", "sar.start_epoch": 0,
               "averaging.kind": "ema", "validation.n": 20}
    metrics = train(load_config(_write_config(tmp_path, changes)), tmp_path / "run")
    assert metrics["train_loss"] is not None and metrics["train_loss"] > 0


def test_a_diverging_run_stops_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    honest = objectives.PGDAT.loss

    def explodes_in_epoch_two(self, model, x, x_adv, y, ctx):
        terms = honest(self, model, x, x_adv, y, ctx)
        terms.loss = terms.loss * (float("nan") if ctx.epoch == 1 else 1.0)
        return terms

    monkeypatch.setattr(objectives.PGDAT, "loss", explodes_in_epoch_two)
    run = tmp_path / "run"
    with pytest.raises(SpecRobustError, match="diverged.*epoch 2.*after epoch 1\\) is intact"):
        train(load_config(_write_config(tmp_path)), run)
    state = read_checkpoint(run / "checkpoints/last.pt")
    assert state["training"]["epoch"] == 1
    weights = [v for v in state["state_dict"].values() if v.is_floating_point()]
    assert all(torch.isfinite(v).all() for v in weights)


def _cli(*args, env=None) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "2", **(env or {})}
    return subprocess.Popen([sys.executable, "-m", "specrobust.cli", *args], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _weights(run: Path) -> dict:
    return load_model(run, which="last").model.state_dict()


def _epochs_done(run: Path) -> int:
    metrics = run / "metrics.jsonl"
    return len(metrics.read_text().splitlines()) if metrics.is_file() else 0


def _kill_and_resume(config: Path, run: Path, kill_points: list[tuple[int, float]]) -> None:
    """For each (epochs finished, extra seconds): start or resume training, wait until that many
    epochs are done plus the extra time (mid-epoch, mid-write), kill -9; then finish."""
    for number, (epochs, extra) in enumerate(kill_points):
        process = _cli("train", str(config), "--out", str(run), *(["--resume"] if number else []))
        deadline = time.monotonic() + 120
        while _epochs_done(run) < epochs and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(extra)
        assert process.poll() is None, "training ended before it could be killed"
        process.send_signal(signal.SIGKILL)
        assert process.wait() == -signal.SIGKILL
    assert _epochs_done(run) < load_config(config).optim.epochs
    finish = _cli("train", str(config), "--out", str(run), "--resume")
    assert finish.wait(timeout=300) == 0, finish.stderr.read().decode()


def _uninterrupted(config: Path, run: Path) -> None:
    process = _cli("train", str(config), "--out", str(run))
    assert process.wait(timeout=300) == 0, process.stderr.read().decode()


def test_kill_9_and_resume_gives_the_same_weights(tmp_path):
    config = _write_config(tmp_path, {"optim.epochs": 3})
    _uninterrupted(config, tmp_path / "straight")
    _kill_and_resume(config, tmp_path / "killed", [(1, 0.3)])  # in the second epoch
    straight, resumed = _weights(tmp_path / "straight"), _weights(tmp_path / "killed")
    assert all(torch.equal(straight[k], resumed[k]) for k in straight)


@pytest.mark.slow
def test_kill_9_at_several_points_gives_the_same_weights(tmp_path):
    config = _write_config(tmp_path, {"optim.epochs": 6})
    _uninterrupted(config, tmp_path / "straight")
    # before any checkpoint, mid-epoch, right at an epoch's end (while checkpoints are written),
    # and mid-epoch again after a resume
    _kill_and_resume(config, tmp_path / "killed", [(0, 1.5), (1, 0.4), (2, 0.0), (3, 0.6)])
    straight, resumed = _weights(tmp_path / "straight"), _weights(tmp_path / "killed")
    assert all(torch.equal(straight[k], resumed[k]) for k in straight)
    for name in ("best", "best_averaged"):
        a = load_model(tmp_path / "straight", which=name).model.state_dict()
        b = load_model(tmp_path / "killed", which=name).model.state_dict()
        assert all(torch.equal(a[k], b[k]) for k in a), name


@pytest.mark.slow
def test_data_parallel_training_with_two_cpu_processes(tmp_path):
    config = _write_config(tmp_path, {"sar.axes": "class", "optim.epochs": 2,
                                      "optim.milestones": [1]})
    run = tmp_path / "ddp"
    process = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_port=29533",
         "-m", "specrobust.cli", "train", str(config), "--out", str(run)],
        env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, timeout=600)
    assert process.returncode == 0, process.stderr.decode()[-2000:]
    lines = (run / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 2 and (run / "checkpoints/best.pt").is_file()
