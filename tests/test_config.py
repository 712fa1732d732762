
import pytest

from specrobust.cli import main
from specrobust.config import Config, config_from_dict, load_config
from specrobust.errors import SpecRobustError
from specrobust.recipes import RECIPE, shipped

CONFIGS = sorted(shipped(RECIPE).values())


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_every_recipe_loads_and_round_trips(path):
    config = load_config(path)
    assert config_from_dict(__import__("yaml").safe_load(config.to_yaml())) == config


def test_recipes_say_what_the_paper_says():
    config = load_config("cifar10_resnet18_at_sar_wa")
    assert (config.optim.lr, config.optim.milestones, config.optim.epochs) == (0.1, [75, 90], 100)
    assert (config.attack.eps, config.attack.alpha, config.attack.steps) == ("8/255", "2/255", 10)
    assert config.sar.enabled and config.sar.lam == 0.1 and config.sar_start == 75
    assert config.sar.axes == "batch_class" and config.averaging.kind == "swa"
    assert config.averaging_start == 75 and config.attack.generation_mode == "eval"


def test_overrides_and_defaults():
    config = load_config(None, ["optim.epochs=3", "optim.milestones=[2]", "sar.enabled=true",
                                "sar.lambda=0.5", "attack.eps=4/255"])
    assert config.optim.epochs == 3 and config.sar_start == 2 and config.sar.lam == 0.5
    assert config.eps == pytest.approx(4 / 255)
    assert "lambda: 0.5" in config.to_yaml()
    assert Config().first_decay == 75


@pytest.mark.parametrize("override, key", [
    ("optim.epoch=3", "optim.epoch"),
    ("optim.epochs=three", "optim.epochs"),
    ("optim.lr=[1]", "optim.lr"),
    ("attack.eps=-8/255", "attack.eps"),
    ("attack.eps=eight", "attack.eps"),
    ("model.name=resnet99", "model.name"),
    ("data.dataset=imagenet", "imagenet"),
    ("sar.axes=rows", "sar.axes"),
    ("optim.milestones=[90,75]", "optim.milestones"),
    ("averaging.kind=mean", "averaging.kind"),
    ("optim=3", "optim"),
    ("run.precision=fp16", "run.precision"),
    ("run.bf16=maybe", "run.bf16"),
])
def test_invalid_configs_name_the_key(override, key):
    with pytest.raises(SpecRobustError, match=key.replace(".", r"\.")):
        load_config(None, [override])


def test_run_precision_is_the_one_spelling():
    # 0.1.0's run.bf16 was migrated once (benchmarks/migrate_to_0_2.py); it is now unknown.
    assert Config().run.precision == "auto"
    with pytest.raises(SpecRobustError, match=r"run\.bf16"):
        config_from_dict({"run": {"bf16": False}})


def test_train_command_errors_are_one_line(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("optim:\n  epochs: 2\n  learning_rate: 0.1\n")
    assert main(["train", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "optim.learning_rate" in err and err.count("\n") == 1
    assert main(["train", str(tmp_path / "missing.yaml")]) == 2
    assert "does not exist" in capsys.readouterr().err
    loop = tmp_path / "loop.yaml"
    loop.write_text("base: loop.yaml\n")
    assert main(["train", str(loop)]) == 2
