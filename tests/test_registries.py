"""Extending specrobust through its registries alone: a new attack kind, a new training
objective. (A new analysis part is tested through ``analysis.MODULES`` in test_analysis.py.)"""

from __future__ import annotations

import json

import pytest
import torch

from specrobust.attacks import registry
from specrobust.attacks.registry import AttackKind, Option, budget_fraction
from specrobust.cli import main
from specrobust.errors import SpecRobustError
from specrobust.evaluation import evaluate, parse_attacks
from specrobust.training import objectives


def _uniform_noise(model, x, y, options, batch):
    """A toy attack: a corner of the ball picked at random (the batch's seeded generator)."""
    signs = torch.randint(0, 2, x.shape, generator=batch.generator, device=x.device) * 2 - 1
    return (x + options["scale"] * batch.eps * signs).clamp(0, 1)


NOISE = AttackKind("noise", "a random corner of the ball, scaled",
                   (Option("scale", 1.0, budget_fraction, "fraction of eps"),),
                   run=_uniform_noise, gradient_steps=lambda options: 0)


@pytest.fixture
def noise_registered():
    registry.register(NOISE, presets={"noise-half": {"scale": 0.5}})
    yield
    registry.KINDS.remove("noise")
    registry.NAMED.remove("noise-half")


def test_a_toy_attack_through_the_registry_alone(noise_registered, natural_low, tmp_path):
    model, x, y = natural_low
    specs = parse_attacks("clean,noise,noise-half,noise:scale=1/4")
    assert [s.label for s in specs] == ["clean", "noise", "noise-half", "noise:scale=1/4"]
    assert specs[2].options == {"scale": 0.5} and specs[3].options == {"scale": 0.25}
    result = evaluate(model, x[:40], y[:40], specs, 8 / 255, checks=False)
    for spec in specs[1:]:  # noise never beats the clean images it starts from
        assert result.accuracy(spec.label) <= result.accuracy("clean")
    again = evaluate(model, x[:40], y[:40], specs, 8 / 255, checks=False)
    assert again.as_dict()["per_example"] == result.as_dict()["per_example"]  # seeded
    with pytest.raises(SpecRobustError, match="noise option scale"):
        parse_attacks("noise:scale=2")


def test_a_toy_attack_from_the_command_line(noise_registered, tmp_path, capsys):
    from specrobust.checkpoint import save_checkpoint
    from specrobust.models import create_model

    data = "synthetic:band=low,n_train=40,n_test=24,seed=3"
    save_checkpoint(tmp_path / "m.pt", create_model("cnn_small", 10), dataset=data)
    assert main(["eval", str(tmp_path / "m.pt"), "--attacks", "clean,noise-half", "--n", "8",
                 "--no-checks", "--out", str(tmp_path / "e.json")]) == 0
    record = json.loads((tmp_path / "e.json").read_text())
    assert [a["label"] for a in record["attacks"]] == ["clean", "noise-half"]


def test_the_named_attacks_are_presets_of_their_kinds():
    assert registry.preset("pgd20") == {**registry.KINDS["pgd"].defaults(), "steps": 20}
    assert parse_attacks("pgd20")[0].options == parse_attacks("pgd:steps=20")[0].options
    assert parse_attacks("cw30")[0].options["loss"] == "cw"
    assert parse_attacks("pgd20")[0].alpha(8 / 255) == pytest.approx(2 / 255)


class HalfNatural(objectives.Natural):
    """A toy objective: half the natural loss."""

    name = "half_natural"

    def loss(self, model, x, x_adv, y, ctx):
        terms = super().loss(model, x, x_adv, y, ctx)
        terms.loss = terms.loss / 2
        return terms


def test_a_toy_objective_through_its_registry(tmp_path):
    from specrobust.config import load_config
    from tests_support import tiny_recipe

    with pytest.raises(SpecRobustError, match="objective.name"):
        load_config(tiny_recipe(tmp_path), ["objective.name=half_natural"])
    objectives.OBJECTIVES.register()(HalfNatural)
    try:
        config = load_config(tiny_recipe(tmp_path), ["objective.name=half_natural"])
        assert isinstance(objectives.build_objective(config.objective.name), HalfNatural)
    finally:
        objectives.OBJECTIVES.remove("half_natural")
