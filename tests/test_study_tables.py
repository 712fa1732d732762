"""A study's tables: mean ± standard deviation over the seeds that are finished, the epoch each
row reads, paired differences, and evaluations still under way."""

import json
from pathlib import Path

from specrobust.evaluation.record import AttackEntry, EvalRecord
from specrobust.study.plan import Method, Plan, Run
from specrobust.study.tables import write_summary
from specrobust.training.rundir import RunDir


def _plan(tmp_path, **changes) -> Plan:
    fields = dict(name="toy", title="toy", out=tmp_path, runs=[Run("at", Path("unused.yaml"))],
                  methods=[Method("AT", "at", "best"), Method("AT+WA", "at", "best_averaged")],
                  seeds=[0, 1], eps="8/255", attacks="clean,pgd20", late_attacks="")
    return Plan(**{**fields, **changes})


def _bits(accuracy: float, n: int = 100) -> str:
    ones = round(accuracy * n)
    return "1" * ones + "0" * (n - ones)


def _write_eval(plan: Plan, run: str, seed: int, which: str, outcomes: dict[str, str],
                complete: bool = True, done: dict[str, int] | None = None,
                stages: dict | None = None) -> None:
    """A real record: per attack its bits; ``done`` marks attacks still under way."""
    n = len(next(iter(outcomes.values())))
    targets = outcomes["clean"].count("1")
    attacks = [AttackEntry(label, bits, (done or {}).get(label, n if label == "clean" else
                                                        targets),
                           n if label == "clean" else targets, 1.0,
                           stages=(stages or {}).get(label))
               for label, bits in outcomes.items()]
    directory = RunDir(plan.run_dir(run, seed))
    directory.path.mkdir(parents=True, exist_ok=True)
    EvalRecord({"model": {"name": "toy"}, "fingerprint": {}}, 8 / 255, n, attacks,
               complete=complete).save(directory.eval_path(which))


def _write_analysis(plan: Plan, seed: int, which: str, gap: float) -> None:
    analysis = RunDir(plan.run_dir("at", seed)).analysis_dir(which)
    analysis.mkdir(parents=True)
    (analysis / "summary.json").write_text(json.dumps(
        {"numbers": {"LPF 32 clean": 0.5, "LPF 32 PGD-20": 0.2, "LPF 16 clean": 0.4,
                     "logit-spectrum gap": gap}}))


def test_summary_gives_mean_and_std_and_says_which_seeds_are_missing(tmp_path):
    plan = _plan(tmp_path)
    _write_eval(plan, "at", 0, "best", {"clean": _bits(0.50), "pgd20": _bits(0.30)})
    _write_eval(plan, "at", 1, "best", {"clean": _bits(0.54), "pgd20": _bits(0.34)},
                stages={"pgd20": {"apgd-ce": {"broken": 18, "seconds": 1.0},
                                  "square": {"broken": 2, "seconds": 1.0}}})
    _write_eval(plan, "at", 0, "best_averaged", {"clean": _bits(0.52), "pgd20": _bits(0.31)})
    _write_analysis(plan, 0, "best", 7.25)
    write_summary(plan, [0, 1])
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
    # A cell with fewer seeds than its row says so: seed 1's PGD-20 still under way.
    _write_eval(plan, "at", 1, "best_averaged", {"clean": _bits(0.56), "pgd20": _bits(0.35)},
                complete=False, done={"pgd20": 10})
    write_summary(plan, [0, 1])
    table = (tmp_path / "RESULTS.md").read_text()
    assert "| AT+WA | 2 | 54.0 ± 2.8 | 31.0 (1 of 2 seeds) |" in table
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["methods"]["AT"]["pgd20"] == {"0": 0.30, "1": 0.34}


def _write_run(directory: Path, val_robust: list[float], val_robust_avg: list[float],
               sar_start: int | None) -> None:
    """metrics.jsonl as training writes it (with the best epochs) and a config."""
    directory.mkdir(parents=True, exist_ok=True)
    lines, best, best_avg = [], (-1, None), (-1, None)
    for i, (r, a) in enumerate(zip(val_robust, val_robust_avg, strict=True)):
        best = (r, i + 1) if r > best[0] else best
        best_avg = (a, i + 1) if a > best_avg[0] else best_avg
        line = {"epoch": i + 1, "val_robust": r, "val_robust_avg": a, "best_epoch": best[1],
                "best_epoch_averaged": best_avg[1]}
        lines.append(json.dumps(line) + "\n")
    (directory / "metrics.jsonl").write_text("".join(lines))
    sar = {"enabled": sar_start is not None, "start_epoch": sar_start or 0}
    (directory / "config.yaml").write_text(json.dumps({"sar": sar}))  # JSON is YAML


def test_summary_says_which_epoch_each_row_reads(tmp_path):
    plan = _plan(tmp_path, runs=[Run("at_sar", Path("unused.yaml"))],
                 methods=[Method("AT+SAR", "at_sar", "best"),
                          Method("AT+SAR+WA", "at_sar", "best_averaged")], attacks="clean")
    # seed 0: the raw model peaks before SAR starts (epoch 3, SAR from 4); ties keep the
    # first
    _write_run(plan.run_dir("at_sar", 0), [0.5, 0.6, 0.7, 0.65, 0.7],
               [0.5, 0.6, 0.7, 0.75, 0.72], sar_start=3)
    for which in ("best", "best_averaged"):
        _write_eval(plan, "at_sar", 0, which, {"clean": _bits(0.5)})
    # seed 1 still training: no eval yet, so no epoch
    _write_run(plan.run_dir("at_sar", 1), [0.5], [0.5], sar_start=3)
    write_summary(plan, [0, 1])
    table = (tmp_path / "RESULTS.md").read_text()
    assert "| AT+SAR | best | 3 | - | 4 |" in table
    assert "| AT+SAR+WA | best_averaged | 4 | - | 4 |" in table
    epochs = json.loads((tmp_path / "summary.json").read_text())["checkpoint_epochs"]
    assert epochs["AT+SAR"] == {"0": 3, "1": None}


def test_paired_differences_count_images_each_method_alone_gets_right(tmp_path):
    plan = _plan(tmp_path, comparisons=[("AT+WA", "AT")])
    # seed 0: AT+WA alone right on 8 images, AT alone on 2 (of 20): +30 points, p = 112/1024
    outcomes = {"best": "1100000000" + "1111100000", "best_averaged": "0011111111" + "1111100000"}
    for which, bits in outcomes.items():
        _write_eval(plan, "at", 0, which, {"clean": "1" * 20, "pgd20": bits})
    write_summary(plan, [0, 1])
    table = (tmp_path / "RESULTS.md").read_text()
    assert "| AT+WA - AT, pgd20 | +30.0 (p 0.11) | - | +30.0 |" in table
    assert "| AT+WA - AT, clean | +0.0 (p 1) | - | +0.0 |" in table


def test_an_evaluation_under_way_keeps_its_finished_attacks_in_the_table(tmp_path):
    plan = _plan(tmp_path, methods=[Method("AT", "at", "best")], seeds=[0],
                 late_attacks="aa")
    # AutoAttack's late pass is under way: 3 of 4 images clean-correct, PGD-20 finished on all
    # 3, AutoAttack on 2 of them so far; no worst case over a part of the suite.
    _write_eval(plan, "at", 0, "best", {"clean": "1101", "pgd20": "1000", "aa": "0000"},
                complete=False, done={"aa": 2})
    write_summary(plan, [0])
    assert "| AT | 1 | 75.0 | 25.0 | - | - |" in (tmp_path / "RESULTS.md").read_text()


def test_a_record_under_way_reads_as_its_finished_attacks(tmp_path):
    plan = _plan(tmp_path, methods=[Method("AT", "at", "best")], seeds=[0],
                 late_attacks="aa")
    directory = RunDir(plan.run_dir("at", 0))
    directory.path.mkdir(parents=True)
    directory.eval_path("best").write_text(json.dumps({
        "format": "specrobust-eval", "format_version": 2, "complete": False,
        "model": {"name": "toy"}, "fingerprint": {}, "eps": 0.03, "n": 4,
        "attacks": [{"label": "clean", "done": 4, "attacked": 4, "seconds": 0.1},
                    {"label": "pgd20", "done": 3, "attacked": 3, "seconds": 1.0},
                    {"label": "aa", "done": 2, "attacked": 3, "seconds": 5.0}],
        "per_example": {"clean": "1101", "pgd20": "1000", "aa": "0000"}}))
    write_summary(plan, [0])
    assert "| AT | 1 | 75.0 | 25.0 | - | - |" in (tmp_path / "RESULTS.md").read_text()
