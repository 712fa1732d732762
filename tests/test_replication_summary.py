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


def _write_eval(directory: Path, which: str, clean: float, pgd: float) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    attacks = [{"label": "clean", "accuracy": clean}, {"label": "pgd20", "accuracy": pgd}]
    (directory / f"eval-{which}.json").write_text(json.dumps(
        {"complete": True, "attacks": attacks, "worst_case": {"accuracy": pgd}}))


def _write_analysis(directory: Path, which: str, gap: float) -> None:
    analysis = directory / f"analysis-{which}"
    analysis.mkdir(parents=True)
    (analysis / "summary.json").write_text(json.dumps(
        {"numbers": {"LPF 32 clean": 0.5, "logit-spectrum gap": gap}}))


def test_summary_gives_mean_and_std_and_says_which_seeds_are_missing(tmp_path):
    _write_eval(run_dir(tmp_path, "at", 0), "best", 0.50, 0.30)
    _write_eval(run_dir(tmp_path, "at", 1), "best", 0.54, 0.34)
    _write_eval(run_dir(tmp_path, "at", 0), "best_averaged", 0.52, 0.31)
    _write_analysis(run_dir(tmp_path, "at", 0), "best", 7.25)
    write_summary(PLAN, tmp_path, [0, 1])
    table = (tmp_path / "RESULTS.md").read_text()
    assert "| AT | 52.0 ± 2.8 | 32.0 ± 2.8 | 32.0 ± 2.8 |" in table
    assert "| AT+WA | 52.0 (1 seed) | 31.0 (1 seed) | 31.0 (1 seed) |" in table
    assert "7.250 (1 seed)" in table  # the logit gap is not a percentage
    assert "| LPF 32 clean |" in table and "50.0 (1 seed)" in table
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["methods"]["AT"]["pgd20"] == {"0": 0.30, "1": 0.34}
