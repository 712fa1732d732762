import json
import sys

import pytest
import torch

from specrobust.errors import SpecRobustError
from specrobust.evaluation import evaluate, markdown, parse_attack, parse_attacks, wilson_interval
from specrobust.evaluation.runner import EvalInUseError
from specrobust.settings import Settings

EPS = 8 / 255


class RoundingInput(torch.nn.Module):
    """A deliberately gradient-masked model: it quantises its input, so its input gradient is
    exactly zero and gradient attacks cannot move it, yet it is not robust."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model(torch.round(x * 16) / 16)


def test_named_and_parameterised_attacks():
    specs = parse_attacks("clean, pgd20,pgd:steps=100,restarts=5,alpha=0.5/255,cw30,aa")
    assert [s.label for s in specs] == ["clean", "pgd20", "pgd:steps=100,restarts=5,alpha=0.5/255",
                                        "cw30", "aa"]
    custom = specs[2]
    assert (custom.options["steps"], custom.options["restarts"]) == (100, 5)
    assert custom.options["alpha"] == pytest.approx(0.5 / 255)
    assert specs[1].alpha(EPS) == pytest.approx(2 / 255)  # the paper's step at 8/255
    assert specs[3].options["loss"] == "cw" and specs[3].options["steps"] == 30
    assert parse_attack("aa-apgd-ce").options["attacks"] == ("apgd-ce",)
    assert parse_attack("pgd:band=high,random_start=0").options["random_start"] is False
    assert specs[2].gradient_steps == 500


@pytest.mark.parametrize("text", [
    "pgd21", "clean,clean", "restarts=3", "pgd:steps=x", "pgd:restarts=0", "pgd:loss=hinge",
    "pgd:band=ultra", "pgd:alpha=-1", "aa:attacks=apgd-xx", "aa:version=custom", "clean:x=1", "",
])
def test_bad_attack_lists_are_rejected(text):
    with pytest.raises(SpecRobustError):
        parse_attacks(text)


def test_wilson_interval_matches_published_values():
    # Reference values of the Wilson score interval (z = 1.96).
    assert wilson_interval(5, 10) == pytest.approx((0.2366, 0.7634), abs=1e-4)
    assert wilson_interval(0, 10) == pytest.approx((0.0, 0.2775), abs=1e-4)
    assert wilson_interval(10, 10) == pytest.approx((0.7225, 1.0), abs=1e-4)
    low, high = wilson_interval(900, 1000)
    assert low < 0.9 < high and high - low < 0.04


def test_mcnemar_exact_matches_the_binomial_test():
    from specrobust.evaluation.stats import mcnemar_exact

    # Two-sided exact binomial tests with p = 1/2 (as scipy.stats.binomtest gives them).
    assert mcnemar_exact(2, 8) == pytest.approx(112 / 1024)
    assert mcnemar_exact(8, 2) == mcnemar_exact(2, 8)
    assert mcnemar_exact(0, 5) == pytest.approx(2 / 32)
    assert mcnemar_exact(3, 3) == 1.0 and mcnemar_exact(0, 0) == 1.0
    assert mcnemar_exact(40, 70) == pytest.approx(0.0054474, rel=1e-4)
    with pytest.raises(ValueError):
        mcnemar_exact(-1, 3)


def test_suite_results_worst_case_and_json(natural_low):
    model, x, y = natural_low
    result = evaluate(model, x[:100], y[:100], parse_attacks("fgsm,pgd:steps=5"), EPS,
                      checks=False)
    labels = [a.spec.label for a in result.attacks]
    assert labels == ["clean", "fgsm", "pgd:steps=5"]  # clean is always first
    clean, fgsm_correct, pgd_correct = (a.correct for a in result.attacks)
    assert not (fgsm_correct & ~clean).any() and not (pgd_correct & ~clean).any()
    assert torch.equal(result.worst_case, clean & fgsm_correct & pgd_correct)
    summary = json.loads(json.dumps(result.as_dict()))
    assert summary["worst_case"]["correct"] == int(result.worst_case.sum())
    assert summary["per_example"]["fgsm"] == "".join("1" if c else "0" for c in fgsm_correct)
    for attack in summary["attacks"]:
        low, high = attack["ci95"]
        assert low <= attack["accuracy"] <= high and attack["seconds"] >= 0
    assert "| fgsm |" in markdown(summary)


def test_self_checks_stay_quiet_on_an_honest_model(natural_low):
    model, x, y = natural_low
    result = evaluate(model, x, y, parse_attacks("clean,fgsm,pgd20"), EPS, Settings(check_n=100))
    assert {c.name for c in result.checks} >= {"zero_gradients", "pgd_vs_fgsm", "eps_monotone",
                                                "large_eps"}
    assert all(c.ok for c in result.checks), [c.message for c in result.checks if not c.ok]


def test_self_checks_fire_on_a_gradient_masked_model(natural_low):
    model, x, y = natural_low
    masked = RoundingInput(model)
    result = evaluate(masked, x, y, parse_attacks("clean,fgsm,pgd20"), EPS, Settings(check_n=100))
    assert result.accuracy("pgd20") > 0.5  # looks robust to gradient attacks ...
    failed = {c.name for c in result.checks if not c.ok}
    assert {"zero_gradients", "large_eps"} <= failed  # ... and the checks say why not to trust it


class Interrupt(Exception):
    pass


def _interrupt_after_first_batch(model, x, y, attacks, path, *, batch_size):
    """An evaluation stopped (as by Ctrl-C) once its first attacked batch is saved."""
    def stop_after_first_batch(label, done, total):
        if done > 0:
            raise Interrupt

    with pytest.raises(Interrupt):
        evaluate(model, x, y, attacks, EPS, Settings(batch_size=batch_size), checks=False,
                 path=path, progress=stop_after_first_batch)


def test_an_interrupted_evaluation_resumes_to_the_same_result(natural_low, tmp_path):
    model, x, y = natural_low
    attacks = parse_attacks("clean,pgd:steps=3")
    whole = evaluate(model, x, y, attacks, EPS, Settings(batch_size=64), checks=False)
    path = tmp_path / "eval.json"
    _interrupt_after_first_batch(model, x, y, attacks, path, batch_size=64)
    partial = json.loads(path.read_text())
    assert partial["complete"] is False and partial["format_version"] == 2
    under_way = {a["label"]: a for a in partial["attacks"]}["pgd:steps=3"]
    assert under_way["done"] == 64 and under_way["attacked"] > 64 and "accuracy" not in under_way

    resumed_from = []
    resumed = evaluate(model, x, y, attacks, EPS, Settings(batch_size=64), checks=False,
                       path=path, progress=lambda label, done, total: resumed_from.append(done))
    assert resumed_from[0] == 64  # the first batch was not attacked again
    assert torch.equal(resumed.attacks[1].correct, whole.attacks[1].correct)
    assert json.loads(path.read_text())["complete"] is True

    # A different budget is a different evaluation: nothing is reused.
    restarted = []
    evaluate(model, x, y, attacks, 4 / 255, Settings(batch_size=64), checks=False, path=path,
             progress=lambda label, done, total: restarted.append(done))
    assert restarted[0] == 0


@pytest.mark.skipif(sys.platform == "win32", reason="no flock")
def test_a_second_evaluation_into_the_same_file_is_refused_meanwhile(natural_low, tmp_path):
    model, x, y = natural_low
    attacks, path = parse_attacks("clean,pgd:steps=2"), tmp_path / "eval.json"
    refusals = []

    def meanwhile(label, done, total):  # another evaluation starts while this one runs
        if done == 64 and not refusals:
            before = path.read_bytes()
            with pytest.raises(EvalInUseError, match="another evaluation") as refused:
                evaluate(model, x, y, attacks, EPS, Settings(batch_size=64), checks=False,
                         path=path)
            assert path.read_bytes() == before  # the partial file is left as it was
            refusals.append(str(refused.value))

    evaluate(model, x, y, attacks, EPS, Settings(batch_size=64), checks=False, path=path,
             progress=meanwhile)
    assert len(refusals) == 1 and "\n" not in refusals[0]
    assert json.loads(path.read_text())["complete"] is True
    # Once the first has finished, the file is free again (it is complete: nothing to redo).
    evaluate(model, x, y, attacks, EPS, Settings(batch_size=64), checks=False, path=path)


def test_evaluation_rejects_negative_eps(natural_low):
    model, x, y = natural_low
    with pytest.raises(SpecRobustError, match="eps"):
        evaluate(model, x, y, parse_attacks("clean"), -0.1)


def test_autoattack_reports_what_each_of_its_attacks_broke_and_resumes(natural_low, tmp_path):
    model, x, y = natural_low
    x, y = x[:40], y[:40]
    attacks = parse_attacks("clean,aa:attacks=apgd-ce+apgd-t")
    whole = evaluate(model, x, y, attacks, EPS, Settings(batch_size=20), checks=False).as_dict()
    aa = whole["attacks"][1]
    assert [row["attack"] for row in aa["stages"]] == ["apgd-ce", "apgd-t"]
    assert sum(row["broken"] for row in aa["stages"]) == aa["attacked"] - aa["correct"]
    assert aa["stages"][-1]["accuracy_after"] == aa["accuracy"]
    assert "aa:attacks=apgd-ce+apgd-t by attack, in order: apgd-ce broke" in markdown(whole)
    path = tmp_path / "eval.json"
    _interrupt_after_first_batch(model, x, y, attacks, path, batch_size=20)
    resumed = evaluate(model, x, y, attacks, EPS, Settings(batch_size=20), checks=False, path=path)
    counts = [(r["attack"], r["broken"]) for r in resumed.as_dict()["attacks"][1]["stages"]]
    assert counts == [(r["attack"], r["broken"]) for r in aa["stages"]]
    # A finished file read back (nothing left to attack) keeps the breakdown too.
    again = evaluate(model, x, y, attacks, EPS, Settings(batch_size=20), checks=False, path=path)
    assert again.as_dict()["attacks"][1]["stages"] == resumed.as_dict()["attacks"][1]["stages"]


def test_square_breaking_what_gradients_left_is_flagged():
    from specrobust.evaluation.checks import _black_box_gain

    stages = [{"attack": "apgd-ce", "broken": 300}, {"attack": "apgd-t", "broken": 20},
              {"attack": "fab-t", "broken": 0}, {"attack": "square", "broken": 1}]
    assert _black_box_gain("aa", stages, 1000).ok  # 0.1%: AutoAttack's own check stays quiet
    stages[-1]["broken"] = 30
    flagged = _black_box_gain("aa", stages, 1000)
    assert not flagged.ok and "masked" in flagged.message


def test_a_record_under_way_reads_as_its_finished_attacks():
    from specrobust.evaluation.record import AttackEntry, EvalRecord

    record = EvalRecord({"model": {"name": "toy"}, "dataset": "toy"}, 0.1, 4, [
        AttackEntry("clean", "1101", 4, 4, 0.1),
        AttackEntry("pgd20", "1001", 3, 3, 2.0),  # all 3 clean-correct images
        AttackEntry("aa", "1000", 2, 3, 9.0)])  # 2 of 3 so far
    result = EvalRecord.from_dict(json.loads(json.dumps(record.as_dict()))).summary()
    assert [a["label"] for a in result["attacks"]] == ["clean", "pgd20"]
    assert result["attacks"][1]["correct"] == 2 and result["eps"] == 0.1
    assert result["worst_case"]["correct"] == 2 and result["under_way"] == {"aa": [2, 3]}
    assert set(result["per_example"]) == {"clean", "pgd20"}
    # Nothing finished yet: nothing to show.
    assert EvalRecord({}, 0.1, 2, [AttackEntry("pgd20", "10", 1, 2)]).summary() is None


def test_records_of_another_format_version_are_not_read(tmp_path):
    from specrobust.evaluation.record import EvalRecord

    finished = {"format": "specrobust-eval", "format_version": 2, "complete": True, "eps": 0.1,
                "n": 2, "model": {},
                "attacks": [{"label": "clean", "attacked": 2, "done": 2, "seconds": 0.1,
                             "correct": 1, "n": 2, "accuracy": 0.5, "ci95": [0.1, 0.9]}],
                "per_example": {"clean": "10"}, "checks": []}
    assert EvalRecord.from_dict(finished).has_finished(["clean"])
    for version in (1, 3, None):
        path = tmp_path / f"eval-{version}.json"
        path.write_text(json.dumps({**finished, "format_version": version}))
        assert EvalRecord.load(path) is None


def test_a_record_is_current_only_for_the_model_and_settings_it_was_made_with(natural_low,
                                                                              tmp_path):
    from specrobust.evaluation.record import EvalRecord
    from specrobust.evaluation.runner import fingerprint_of

    model, x, y = natural_low
    path = tmp_path / "eval.json"
    evaluate(model, x[:64], y[:64], parse_attacks("clean"), EPS, checks=False, path=path,
             fingerprint={"weights_sha256": "a"})
    record = EvalRecord.load(path)
    settings = Settings(seed=0, batch_size=256, norm="linf")
    assert record.is_current(fingerprint_of({"weights_sha256": "a"}, EPS, 64, settings))
    assert not record.is_current(fingerprint_of({"weights_sha256": "b"}, EPS, 64, settings))
    assert not record.is_current(fingerprint_of({"weights_sha256": "a"}, 2 * EPS, 64, settings))


def test_a_slow_attack_shows_its_speed_rather_than_zero():
    row = {"label": "aa", "accuracy": 0.73, "ci95": [0.70, 0.76], "correct": 730, "n": 1000,
           "seconds": 2026.7, "images_per_second": 0.42}
    table = markdown({"attacks": [row, {**row, "label": "pgd20", "images_per_second": 112.4}],
                      "worst_case": row})
    assert "| 2026.7 | 0.42 |" in table and "| 112 |" in table


def test_mean_interval_over_seeds_uses_students_t():
    from specrobust.evaluation.stats import mean_interval

    mean, low, high = mean_interval([0.026, 0.016, 0.005])
    # sd 0.0105, se 0.00606, t(2) = 4.303: half-width 0.0261
    assert mean == pytest.approx(0.015667, abs=1e-6)
    assert (low, high) == (pytest.approx(-0.010429, abs=1e-6), pytest.approx(0.041762, abs=1e-6))
    assert mean_interval([0.01]) is None
    assert mean_interval([0.02, 0.02]) == (0.02, 0.02, 0.02)


def test_bf16_attacks_are_their_own_evaluation_and_agree_closely_with_fp32(natural_low,
                                                                           tmp_path):
    from specrobust.evaluation.record import EvalRecord

    model, x, y = natural_low
    attacks = parse_attacks("clean,fgsm,pgd:steps=5")
    path = tmp_path / "eval.json"
    fp32 = evaluate(model, x, y, attacks, EPS, checks=False, path=path)
    progress = []
    bf16 = evaluate(model, x, y, attacks, EPS, Settings(precision="bf16"), checks=False,
                    path=path, progress=lambda label, done, total: progress.append(done))
    assert progress[0] == 0  # an fp32 record is not resumed in bf16: everything is redone
    record = EvalRecord.load(path)
    assert record.fingerprint["precision"] == "bf16"
    assert fp32.record.fingerprint["precision"] == "fp32"
    assert torch.equal(bf16.attacks[0].correct, fp32.attacks[0].correct)  # judged in fp32
    for mine, theirs in zip(bf16.attacks[1:], fp32.attacks[1:], strict=True):
        assert (mine.correct != theirs.correct).float().mean() <= 0.05
    with pytest.raises(SpecRobustError, match="precision must be one of fp32, bf16"):
        evaluate(model, x, y, attacks, EPS, Settings(precision="fp16"), checks=False)


def test_the_self_checks_cost_no_more_than_the_attacks_they_check():
    from specrobust.evaluation.checks import EXTRA_PASSES, MIN_EXTRA_IMAGES, extra_images

    cheap, pgd20, full = (parse_attacks(text) for text in ("clean,fgsm", "clean,pgd20",
                                                             "clean,fgsm,pgd20,cw30,aa"))
    assert extra_images(cheap, 50, 200) == 0  # one pass an image: nothing extra is affordable
    assert extra_images(pgd20, 50, 200) == 0  # 1,000 passes buy 12 images: too few to compare
    assert extra_images(pgd20, 1000, 200) == 200  # 20,000 passes: every image asked for
    assert extra_images(pgd20, 400, 200) == 400 * 20 // EXTRA_PASSES >= MIN_EXTRA_IMAGES
    assert extra_images(full, 30, 200) == 30 and extra_images(full, 30, 4) == 4
    for specs in (cheap, pgd20, full):  # never more gradient passes than the suite's
        for n in (10, 50, 200, 1000):
            passes = sum(spec.gradient_steps or 10**6 for spec in specs) * n
            assert extra_images(specs, n, 200) * EXTRA_PASSES <= max(passes, n * EXTRA_PASSES)
