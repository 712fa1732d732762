"""Evaluation shared by several processes (torchrun, gloo on CPU): the same per-example
results as one process, AutoAttack included; a run stopped mid-way resumes to the same. Both
sides run one thread per process: another thread count rounds convolutions differently, which
can move a PGD iterate by a float's last bits."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from specrobust.checkpoint import save_checkpoint
from trained_models import dataset_name

DATA = dataset_name("low")  # the data natural_low was trained on
ATTACKS = "clean,fgsm,pgd:steps=3,aa:attacks=apgd-ce"
ARGS = ["--attacks", ATTACKS, "--num-images", "24", "--batch-size", "4", "--check-n", "4"]

pytestmark = pytest.mark.skipif(sys.platform == "win32" or not torch.distributed.is_available(),
                                reason="needs torch.distributed with gloo")


def _torchrun(processes: int, *argv: str, timeout: int = 300) -> subprocess.CompletedProcess:
    """``specrobust`` in ``processes`` processes of one thread (1: no torchrun at all)."""
    environment = {**os.environ, "OMP_NUM_THREADS": "1"}
    launcher = ["-m", "torch.distributed.run", "--standalone",
                f"--nproc_per_node={processes}"] if processes > 1 else []
    done = subprocess.run([sys.executable, *launcher, "-m", "specrobust.cli", *argv],
                          capture_output=True, text=True, timeout=timeout, env=environment)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, natural_low):
    """A trained model, so that most test images are attacked (8 batches of 6)."""
    path = tmp_path_factory.mktemp("sharded") / "m.pt"
    save_checkpoint(path, natural_low[0], dataset=DATA)
    return path


def _outcomes(path):
    record = json.loads(path.read_text())
    stages = next(a["stages"] for a in record["attacks"] if a["label"].startswith("aa"))
    return record["per_example"], [(s["attack"], s["broken"]) for s in stages], record


def test_two_processes_give_the_single_process_results(tmp_path, checkpoint):
    single, sharded = tmp_path / "single.json", tmp_path / "sharded.json"
    _torchrun(1, "eval", str(checkpoint), *ARGS, "--out", str(single))
    done = _torchrun(2, "eval", str(checkpoint), *ARGS, "--out", str(sharded))
    one, two = _outcomes(single), _outcomes(sharded)
    assert one[0] == two[0] and one[1] == two[1]  # every example, every AutoAttack stage
    assert [c["name"] for c in one[2]["checks"]] == [c["name"] for c in two[2]["checks"]]
    assert done.stdout.count("worst case") == 1  # one process reports


def _worker(parent: int, rank: int) -> int | None:
    """The pid of torchrun's worker of that rank (Linux /proc)."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            environment = Path(f"/proc/{entry}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == parent and f"RANK={rank}".encode() in \
                environment:
            return int(entry)
    return None


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="finds workers through /proc")
def test_a_killed_process_then_a_rerun_completes_with_the_same_results(tmp_path, checkpoint):
    import signal
    import time

    single, sharded = tmp_path / "single.json", tmp_path / "sharded.json"
    _torchrun(1, "eval", str(checkpoint), *ARGS, "--out", str(single))
    argv = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
            "-m", "specrobust.cli", "eval", str(checkpoint), *ARGS, "--out", str(sharded)]
    runner = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              env={**os.environ, "OMP_NUM_THREADS": "1"})
    try:
        deadline = time.time() + 120
        while time.time() < deadline:  # until the evaluation is part-way through an attack
            record = json.loads(sharded.read_text()) if sharded.is_file() else {}
            if any(0 < entry["done"] < entry["attacked"] for entry in record.get("attacks", [])
                   if entry["label"] != "clean"):
                break
            time.sleep(0.05)
        worker = _worker(runner.pid, 1)
        assert worker is not None and not json.loads(sharded.read_text()).get("complete")
        os.kill(worker, signal.SIGKILL)
        assert runner.wait(timeout=120) != 0
    finally:
        runner.kill()
    assert not json.loads(sharded.read_text()).get("complete")
    _torchrun(2, "eval", str(checkpoint), *ARGS, "--out", str(sharded))
    assert _outcomes(single)[:2] == _outcomes(sharded)[:2]


@pytest.mark.slow  # the default suite keeps to its time budget; make test-slow runs this
def test_two_processes_analyse_like_one(tmp_path, checkpoint):
    # 5 batches: the last round of the pass has a batch for one process only.
    argv = ["--parts", "spectra,bands,heatmap", "--num-images", "18", "--batch-size", "4",
            "--heatmap-n", "16", "--heatmap-stride", "8"]
    single, sharded = tmp_path / "single", tmp_path / "sharded"
    _torchrun(1, "analyze", str(checkpoint), *argv, "--out", str(single))
    _torchrun(2, "analyze", str(checkpoint), *argv, "--out", str(sharded))
    for part in ("spectra", "bands", "heatmap"):
        one, two = (json.loads((d / f"{part}.json").read_text()) for d in (single, sharded))
        for record in (one, two):
            record.pop("seconds")
        assert one == two, part
