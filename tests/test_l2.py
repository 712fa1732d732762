"""The L2 threat model end to end: attacks, `eval --norm l2` (AutoAttack's L2 version
included), `analyze --norm l2`, training with ``attack.norm: l2``, and what records say."""

from __future__ import annotations

import json

import pytest
import torch

from specrobust.attacks import fgsm, pgd
from specrobust.checkpoint import read_checkpoint, save_checkpoint
from specrobust.cli import main
from specrobust.config import load_config
from specrobust.models import create_model
from specrobust.training.loop import train
from tests_support import TINY_RECIPE

DATA = "synthetic:band=low,n_train=200,n_test=40,seed=4"


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.manual_seed(3)
    path = tmp_path_factory.mktemp("l2") / "m.pt"
    save_checkpoint(path, create_model("cnn_small", 10).eval(), dataset=DATA)
    return path


def test_l2_attacks_stay_in_the_l2_ball():
    torch.manual_seed(0)
    model = create_model("cnn_small", 10).eval()
    x, y = torch.rand(6, 3, 32, 32), torch.randint(0, 10, (6,))
    for x_adv in (pgd(model, x, y, 0.5, 0.125, 5, norm="l2"), fgsm(model, x, y, 0.5, norm="l2")):
        distances = (x_adv - x).flatten(1).norm(dim=1)
        assert (distances <= 0.5 + 1e-5).all() and (distances > 0.1).all()
        assert x_adv.min() >= 0 and x_adv.max() <= 1


def test_eval_and_analyze_in_l2(tmp_path, capsys, checkpoint):
    out = tmp_path / "e.json"
    assert main(["eval", str(checkpoint), "--norm", "l2", "--eps", "0.5", "--n", "8",
                 "--attacks", "clean,fgsm,pgd:steps=3,aa:attacks=apgd-ce", "--check-n", "4",
                 "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    record = json.loads(out.read_text())
    assert record["norm"] == "l2" and record["fingerprint"]["norm"] == "l2"
    assert record["eps"] == 0.5 and "L2 eps 0.5" in printed
    assert "L2 eps 0.5" in out.with_suffix(".md").read_text()
    large = next(c for c in record["checks"] if c["name"] == "large_eps")
    assert large["values"]["eps"] == pytest.approx(0.5 * (3 * 32 * 32) ** 0.5)
    analysis = tmp_path / "analysis"
    assert main(["analyze", str(checkpoint), "--norm", "l2", "--eps", "0.5", "--n", "8",
                 "--parts", "filter", "--out", str(analysis)]) == 0
    part = json.loads((analysis / "filter.json").read_text())
    assert part["norm"] == "l2" and part["fingerprint"]["norm"] == "l2"


def test_l2_budgets_default_and_are_range_checked(tmp_path, capsys, checkpoint):
    capsys.readouterr()
    assert main(["eval", str(checkpoint), "--norm", "l2", "--n", "4"]) == 2
    assert "no usual L2 budget; give one with --eps" in capsys.readouterr().err
    assert main(["eval", str(checkpoint), "--norm", "l2", "--eps", "100", "--n", "4"]) == 2
    assert "--eps must be in [0, 55.4256], got 100" in capsys.readouterr().err
    from specrobust.data import DATASETS

    assert DATASETS["cifar10"].budget_text("l2") == "0.5"


def test_training_in_l2_records_its_threat_model(tmp_path, capsys):
    import yaml

    recipe = json.loads(json.dumps(TINY_RECIPE))
    recipe["attack"] = {"eps": "0.5", "alpha": "0.125", "steps": 2, "norm": "l2"}
    recipe["data"]["dataset"] = DATA
    (tmp_path / "r.yaml").write_text(yaml.safe_dump(recipe))
    run = tmp_path / "run"
    train(load_config(tmp_path / "r.yaml"), run)
    assert read_checkpoint(run / "checkpoints" / "last.pt")["norm"] == "l2"
    assert main(["eval", str(run), "--norm", "l2", "--attacks", "clean,pgd:steps=2", "--n", "8",
                 "--no-checks"]) == 0
    record = json.loads((run / "eval.json").read_text())
    assert record["eps_text"] == "0.5" and record["norm"] == "l2"  # the training budget
    with pytest.raises(Exception, match="attack.norm"):
        load_config(tmp_path / "r.yaml", ["attack.norm=l1"])
