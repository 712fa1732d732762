"""Studies on Slurm: the job graph (default suite), and a tiny plan on a real one-node Slurm
with a training job requeued halfway, whose tables and weights equal a local run's (slow)."""

import json
import subprocess
import time
from contextlib import ExitStack
from pathlib import Path

import pytest
import yaml

import slurm_cluster
from specrobust.cli import main
from specrobust.study import slurm
from specrobust.study.plan import load_plan
from tests_support import at_and_sar_recipes, script


def _plan(tmp_path: Path) -> Path:
    """AT (long enough to be requeued halfway) and AT+SAR branched from it; late attacks."""
    at_and_sar_recipes(tmp_path / "recipes", epochs=12, decay=6, n_train=3000)
    plan = {"name": "tiny", "out": "study", "seeds": [0], "eps": "8/255", "n": 20,
            "check_n": 8, "attacks": "clean,fgsm", "late_attacks": "pgd:steps=3",
            "analysis": "kernels,logits", "progress": False,
            "runs": {"at": {"recipe": "recipes/at.yaml"},
                     "at_sar": {"recipe": "recipes/at_sar.yaml", "branch_from": "at"}},
            "methods": {"AT": ["at", "best"], "AT+SAR": ["at_sar", "best"],
                        "AT+SAR+WA": ["at_sar", "best_averaged"]},
            "comparisons": [["AT+SAR", "AT"]], "report": {"reference": "AT"}}
    (tmp_path / "plan.yaml").write_text(yaml.safe_dump(plan))
    return tmp_path / "plan.yaml"


def test_the_job_graph_follows_the_plan(tmp_path):
    plan = load_plan(_plan(tmp_path))
    work = slurm.jobs(plan, [0, 1], ("train", "eval", "analyze", "aa", "report"))
    after = {job.name: job.after for job in work}
    assert after["train-at_sar-seed1"] == ("train-at-seed1",)  # branches wait for their source
    assert after["attack-seed0"] == ("train-at-seed0", "train-at_sar-seed0")
    assert after["aa-seed1"] == ("attack-seed1",)
    assert after["report"] == ("aa-seed0", "aa-seed1")
    names = [job.name for job in work]
    assert all(names.index(w) < names.index(n) for n, ws in after.items() for w in ws)
    only = slurm.jobs(plan, [0], ("eval",))
    assert [(job.name, job.stages, job.after) for job in only] == \
        [("attack-seed0", ("eval",), ())]
    # --runs: the branch's source is not trained here, so the branch waits for no job
    sar = slurm.jobs(plan, [0], ("train", "eval"), runs=("at_sar",))
    assert [(job.name, job.after) for job in sar] == \
        [("train-at_sar-seed0", ()), ("attack-seed0", ("train-at_sar-seed0",))]


def test_without_slurm_it_says_so_in_one_line(tmp_path, monkeypatch, capsys):
    plan = str(_plan(tmp_path))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PATH", str(tmp_path / "no-tools"))
    assert main(["study", plan, "--slurm"]) == 2
    assert "sbatch not found" in capsys.readouterr().err
    assert main(["study", plan, "--runs", "at,bt"]) == 2
    assert "has no run 'bt'" in capsys.readouterr().err
    # Submitting writes OUT/slurm/: into a directory of something else it writes nothing.
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    assert main(["study", plan, "--slurm", "--out", str(foreign)]) == 2
    assert "not a study's directory" in capsys.readouterr().err
    assert [p.name for p in foreign.iterdir()] == ["notes.txt"]


def _queue_state(job: str, env: dict) -> str:
    return subprocess.run(["squeue", "--noheader", "--format=%T", "--jobs", job], env=env,
                          capture_output=True, text=True).stdout.strip()


def _states(capsys) -> dict[str, str]:
    capsys.readouterr()
    assert main(["study", "plan.yaml", "--slurm-status"]) == 0
    return {line.split()[0]: line.split(None, 2)[2]
            for line in capsys.readouterr().out.splitlines()}


@pytest.mark.slow
def test_a_study_on_slurm_survives_a_requeue_and_equals_a_local_run(tmp_path, monkeypatch,
                                                                    capsys):
    if reason := slurm_cluster.missing():
        pytest.skip(reason)
    _plan(tmp_path)
    monkeypatch.chdir(tmp_path)
    with ExitStack() as stack:
        try:
            env = stack.enter_context(slurm_cluster.cluster(tmp_path / "cluster"))
        except slurm_cluster.Unavailable as reason:
            pytest.skip(str(reason))
        monkeypatch.setenv("SLURM_CONF", env["SLURM_CONF"])
        assert main(["study", "plan.yaml", "--slurm", "--threads", "1"]) == 0
        ids = json.loads((tmp_path / "study/slurm/jobs.json").read_text())
        assert list(ids) == ["train-at-seed0", "train-at_sar-seed0", "attack-seed0",
                             "aa-seed0", "report"]
        metrics = tmp_path / "study/runs/at-seed0/metrics.jsonl"
        deadline = time.monotonic() + 120
        while not (metrics.is_file() and len(metrics.read_text().splitlines()) >= 2):
            assert time.monotonic() < deadline, _states(capsys)
            time.sleep(0.2)
        # Preempted halfway: killed and put back in the queue (at once, not after Slurm's
        # usual delay for a requeued job).
        job = ids["train-at-seed0"]
        subprocess.run(["scontrol", "requeue", job], env=env, check=True)
        deadline = time.monotonic() + 60
        while _queue_state(job, env) != "PENDING":  # the kill done, back in the queue
            assert time.monotonic() < deadline, _queue_state(job, env)
            time.sleep(0.2)
        subprocess.run(["scontrol", "update", f"jobid={job}", "StartTime=now"], env=env,
                       check=True)
        assert _states(capsys)["train-at-seed0"] in ("queued", "starting", "running")
        deadline = time.monotonic() + 600
        while set((states := _states(capsys)).values()) != {"done"}:
            assert time.monotonic() < deadline and not any(
                s.startswith(("failed", "cancelled")) for s in states.values()), states
            time.sleep(1)
    log = (tmp_path / "study/slurm/train-at-seed0.log").read_text()
    assert "DUE TO JOB REQUEUE" in log and log.count("train at seed 0") == 2
    assert main(["study", "plan.yaml", "--out", "local", "--threads", "1"]) == 0
    compare_runs = script("benchmarks/compare_runs.py")
    local, cluster = (compare_runs.runs(tmp_path / name) for name in ("local", "study"))
    assert local.keys() == cluster.keys() == {"at", "at_sar"}
    assert [d for name in local for d in compare_runs.compare(local[name], cluster[name])] == []

    def table(name):
        return [line for line in (tmp_path / name / "RESULTS.md").read_text().splitlines()
                if line.startswith("|")]
    assert table("local") == table("study") and (tmp_path / "study/report.html").is_file()
