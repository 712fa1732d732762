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
