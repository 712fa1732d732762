"""Any model in: user code, TorchScript, torch.export, wrapped and prefixed weights, pretrained
names. Each source goes through the CLI (`eval` and `analyze`) and must give the results of
the same model loaded in Python; every bad source ends in one line, exit 2, nothing written."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest
import torch

from specrobust.analysis.kernels import kernel_smoothness
from specrobust.attacks.registry import parse_attacks
from specrobust.cli import main
from specrobust.data import load_dataset
from specrobust.errors import SpecRobustError
from specrobust.evaluation.runner import evaluate
from specrobust.loading import ModelSource, resolve
from specrobust.settings import Settings

DATA = "synthetic:band=low,n_train=40,n_test=24,seed=3"
ATTACKS = "clean,pgd:steps=3"
N = 16

ARCH = '''
import torch
from torch import nn


class Tiny(nn.Module):
    def __init__(self, width=8, classes=10):
        super().__init__()
        self.conv = nn.Conv2d(3, width, 3, padding=1)
        self.bn = nn.BatchNorm2d(width)
        self.fc = nn.Linear(width, classes)

    def forward(self, x):
        return self.fc(torch.relu(self.bn(self.conv(x))).mean((2, 3)))


def tiny(width=8):
    return Tiny(width)


def trained(width=4):
    torch.manual_seed(5)
    model = Tiny(width)
    model.bn.running_mean.uniform_(-0.1, 0.1)
    return model


def broken(**kwargs):
    raise ValueError("this factory is broken")


def not_a_model():
    return 42
'''


@pytest.fixture(scope="module")
def arch(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("user") / "arch.py"
    path.write_text(ARCH)
    return path


@pytest.fixture(scope="module")
def network(arch):
    """The user's architecture with fixed random weights, built in Python."""
    from specrobust.loading.usercode import load_factory

    torch.manual_seed(11)
    net = load_factory(f"{arch}:tiny")(width=6).eval()
    for module in net.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.2, 0.2)
            module.running_var.uniform_(0.5, 1.5)
    return net


@pytest.fixture(scope="module")
def test_images():
    test = load_dataset(DATA).test
    return test.as_float()[:N], test.labels[:N]


def _python_outcomes(model, test_images) -> dict:
    images, labels = test_images
    result = evaluate(model, images, labels, parse_attacks(ATTACKS), 8 / 255,
                      Settings(seed=0, batch_size=256), checks=False)
    return result.as_dict()["per_example"]


def _cli_outcomes(capsys, tmp_path, *argv) -> dict:
    out = tmp_path / "e.json"
    assert main(["eval", *map(str, argv), "--attacks", ATTACKS, "--n", str(N), "--no-checks",
                 "--out", str(out)]) == 0, capsys.readouterr().err
    return json.loads(out.read_text())["per_example"]


def _cli_kernels(tmp_path, *argv) -> dict:
    out = tmp_path / "analysis"
    assert main(["analyze", *map(str, argv), "--parts", "kernels", "--n", "8", "--out",
                 str(out)]) == 0
    return json.loads((out / "kernels.json").read_text())


def _sources(tmp_path: Path, arch: Path, network) -> dict[str, list[str]]:
    """The same network as every kind of source, each as CLI arguments."""
    state = network.state_dict()
    torch.save(state, tmp_path / "plain.pt")
    torch.save({"epoch": 3, "model_state_dict": {f"module.{k}": v for k, v in state.items()}},
               tmp_path / "wrapped.pt")
    torch.save({"net": {f"_orig_mod.model.{k}": v for k, v in state.items()}},
               tmp_path / "prefixed.pth")
    torch.jit.save(torch.jit.script(network), tmp_path / "scripted.pt")
    program = torch.export.export(network, (torch.rand(2, 3, 32, 32),),
                                  dynamic_shapes={"x": {0: torch.export.Dim("batch")}})
    torch.export.save(program, tmp_path / "exported.pt2")
    factory = [f"--model={arch}:tiny", "--model-args", '{"width": 6}', "--dataset", DATA]
    return {
        "plain": [tmp_path / "plain.pt", *factory],
        "wrapped (model_state_dict, module.)": [tmp_path / "wrapped.pt", *factory],
        "prefixed (net, _orig_mod.model.)": [tmp_path / "prefixed.pth", *factory],
        "torchscript": [tmp_path / "scripted.pt", "--dataset", DATA],
        "torch.export": [tmp_path / "exported.pt2", "--dataset", DATA],
    }


def test_every_source_evaluates_like_the_model_in_python(tmp_path, capsys, arch, network,
                                                          test_images):
    images, _ = test_images
    with torch.no_grad():
        reference_logits = network(images)
    for kind, argv in _sources(tmp_path, arch, network).items():
        loaded = resolve(ModelSource(path=str(argv[0]), model=next(
            (a.split("=", 1)[1] for a in argv if str(a).startswith("--model=")), None),
            model_args={"width": 6} if "--model-args" in argv else None, dataset=DATA))
        with torch.no_grad():
            assert torch.allclose(loaded.model(images), reference_logits, atol=1e-5), kind
        assert _cli_outcomes(capsys, tmp_path, *argv) == \
            _python_outcomes(loaded.model, test_images), kind
        kernels = _cli_kernels(tmp_path, *argv)
        assert kernels["weights"] == kernel_smoothness(network)["weights"], kind


def test_user_code_that_returns_its_own_weights(tmp_path, capsys, arch, test_images):
    from specrobust.loading.usercode import load_factory

    reference = load_factory(f"{arch}:trained")().eval()
    outcomes = _cli_outcomes(capsys, tmp_path, f"--model={arch}:trained", "--dataset", DATA)
    assert outcomes == _python_outcomes(reference, test_images)


def test_normalisation_from_options_and_from_stored_buffers(tmp_path, arch, network,
                                                            test_images):
    images, _ = test_images
    mean, std = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)
    expected = network((images - torch.tensor(mean).view(1, 3, 1, 1))
                       / torch.tensor(std).view(1, 3, 1, 1))
    torch.save(network.state_dict(), tmp_path / "plain.pt")
    given = resolve(ModelSource(str(tmp_path / "plain.pt"), model=f"{arch}:tiny",
                                model_args={"width": 6}, dataset=DATA, mean=mean, std=std))
    torch.save({**network.state_dict(), "mean": torch.tensor(mean).view(1, 3, 1, 1),
                "std": torch.tensor(std).view(1, 3, 1, 1)}, tmp_path / "stored.pt")
    stored = resolve(ModelSource(str(tmp_path / "stored.pt"), model=f"{arch}:tiny",
                                 model_args={"width": 6}, dataset=DATA))
    with torch.no_grad():
        for loaded in (given, stored):
            assert torch.allclose(loaded.model(images), expected, atol=1e-5)


def test_a_zoo_architecture_takes_prefixed_weights(tmp_path):
    from specrobust.models import create_model

    torch.manual_seed(2)
    model = create_model("cnn_small", 10).eval()
    torch.save({"state_dict": {f"module.{k}": v for k, v in model.net.state_dict().items()}},
               tmp_path / "ddp.pt")
    loaded = resolve(ModelSource(str(tmp_path / "ddp.pt"), model="cnn_small", dataset=DATA))
    x = torch.rand(3, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(loaded.model(x), model(x))


def test_mismatched_keys_name_the_first_ones_and_the_prefix(tmp_path, arch, network):
    torch.save({f"encoder.{k}": v for k, v in network.state_dict().items()},
               tmp_path / "nested.pt")
    with pytest.raises(SpecRobustError, match=r"missing keys \(first \['bn.bias'.*unexpected "
                       r"\(first \['encoder.bn.bias'.*extra prefix 'encoder.'"):
        resolve(ModelSource(str(tmp_path / "nested.pt"), model=f"{arch}:tiny",
                            model_args={"width": 6}, dataset=DATA))
    torch.save(network.state_dict(), tmp_path / "plain.pt")  # width 6, loaded into width 8
    with pytest.raises(SpecRobustError, match="size mismatch"):
        resolve(ModelSource(str(tmp_path / "plain.pt"), model=f"{arch}:tiny", dataset=DATA))


def test_pretrained_name_resolves_to_the_pyautoattack_model():
    pytest.importorskip("pyautoattack")
    loaded = resolve("autoattack-natural-resnet18")
    assert loaded.dataset == "cifar10" and loaded.model.spec.name == "autoattack-natural-resnet18"
    assert loaded.path.name == "model_test.pt" and loaded.home.name == \
        "autoattack-natural-resnet18"


class _RunsCode:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def _one_line_nothing_written(capsys, tmp_path, argv) -> str:
    before = sorted(p.name for p in tmp_path.iterdir())
    capsys.readouterr()
    assert main([str(a) for a in argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("specrobust: error: ") and err.count("\n") == 1, err
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    return err


def test_bad_sources_are_one_line_and_write_nothing(tmp_path, capsys, arch):
    marker = tmp_path.parent / f"{tmp_path.name}-code-ran"
    torch.save({"state_dict": {"w": torch.zeros(1)}, "x": _RunsCode(marker)},
               tmp_path / "evil.pt")
    (tmp_path / "evil.pkl").write_bytes(pickle.dumps({"state_dict": _RunsCode(marker)}, 2))
    wrong_shape = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 16 * 16, 10))
    torch.jit.save(torch.jit.trace(wrong_shape, torch.rand(2, 3, 16, 16)),
                   tmp_path / "small.ts")
    program = torch.export.export(wrong_shape, (torch.rand(2, 3, 16, 16),),
                                  dynamic_shapes={"input": {0: torch.export.Dim("batch")}})
    torch.export.save(program, tmp_path / "small.pt2")
    fixed = torch.export.export(torch.nn.Sequential(torch.nn.Flatten(),
                                                    torch.nn.Linear(3 * 32 * 32, 10)),
                                (torch.rand(2, 3, 32, 32),))
    torch.export.save(fixed, tmp_path / "fixed-batch.pt2")
    torch.save({}, tmp_path / "empty.pt")
    common = ["--attacks", "clean", "--n", "4", "--dataset", DATA]
    cases = {
        "refused": ["eval", tmp_path / "evil.pt", f"--model={arch}:tiny", *common],
        "refused ": ["eval", tmp_path / "evil.pkl", f"--model={arch}:tiny", *common],
        "cannot take 2": ["eval", tmp_path / "small.ts", *common],
        "cannot take 2 ": ["analyze", tmp_path / "small.pt2", "--parts", "kernels",
                           "--dataset", DATA],
        "cannot take 3": ["eval", tmp_path / "fixed-batch.pt2", *common],
        "raised ValueError: this factory is broken": ["eval", f"--model={arch}:broken",
                                                      *common],
        "returned a int": ["eval", f"--model={arch}:not_a_model", *common],
        "has no callable nope": ["eval", f"--model={arch}:nope", *common],
        "does not exist": ["eval", f"--model={tmp_path}/missing.py:tiny", *common],
        "cannot import": ["eval", "--model=no_such_package_here.arch:tiny", *common],
        "JSON object": ["eval", f"--model={arch}:tiny", "--model-args", "[1]", *common],
        "does not exist ": ["eval", tmp_path / "missing.pt", "--model", "cnn_small", *common],
        "without their architecture": ["eval", tmp_path / "empty.pt", *common],
        "name a model source": ["eval", *common],
    }
    for expected, argv in cases.items():
        assert expected.strip() in _one_line_nothing_written(capsys, tmp_path, argv), argv
    assert not marker.exists()


@pytest.mark.parametrize("name, wrap", [
    ("dm_preact_resnet18", lambda sd: {"state_dict": {f"module.{k}": v for k, v in sd.items()}}),
    pytest.param("rb_wrn28_10", lambda sd: {"model": {f"model.{k}": v for k, v in sd.items()}},
                 marks=pytest.mark.slow),  # 36M parameters: a 146 MB file
])
def test_robustbench_layout_checkpoints_load_through_the_cli(tmp_path, capsys, name, wrap):
    """Random weights in a published layout, saved as checkpoints in the wild are (wrapped,
    prefixed; TRADES' WideResNets with their unused sub_block1 weights): the CLI's results are
    those of the network in Python."""
    from specrobust.models import MODELS

    torch.manual_seed(4)
    net = MODELS[name](10, 3).eval()
    state = dict(net.state_dict())
    if name.startswith("rb_"):
        state |= {f"sub_block1.layer.0.{k}": v for k, v in
                  net.block1.layer[0].state_dict().items()}
    torch.save(wrap(state), tmp_path / "published.pt")
    argv = [tmp_path / "published.pt", "--model", name, "--dataset", DATA]
    loaded = resolve(ModelSource(str(tmp_path / "published.pt"), model=name, dataset=DATA))
    images, labels = load_dataset(DATA).test.as_float()[:4], load_dataset(DATA).test.labels[:4]
    with torch.no_grad():
        assert torch.equal(loaded.model(images), net(images))
    out = tmp_path / "e.json"
    assert main(["eval", *map(str, argv), "--attacks", "clean,pgd:steps=1", "--n", "4",
                 "--no-checks", "--out", str(out)]) == 0
    expected = evaluate(loaded.model, images, labels, parse_attacks("clean,pgd:steps=1"),
                        8 / 255, checks=False).as_dict()["per_example"]
    assert json.loads(out.read_text())["per_example"] == expected
    kernels = _cli_kernels(tmp_path, *argv)
    assert kernels["weights"] == kernel_smoothness(net)["weights"]


def test_pretrained_registry_lists_fetches_and_checks(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("SPECROBUST_MODELS", str(tmp_path))
    monkeypatch.setattr("urllib.request.urlopen", _offline)
    assert main(["models", "--pretrained"]) == 0
    listing = capsys.readouterr().out
    assert "Carmon2019Unlabeled" in listing and "59.53" in listing and "rb_wrn28_10" in listing
    # no network: one line saying where the file goes, nothing written
    err = _one_line_nothing_written(capsys, tmp_path, ["fetch-model",
                                                       "Rebuffi2021Fixing_R18_ddpm"])
    assert str(tmp_path / "Rebuffi2021Fixing_R18_ddpm.pt") in err
    assert "fetch-model" in _one_line_nothing_written(
        capsys, tmp_path, ["eval", "Rebuffi2021Fixing_R18_ddpm", "--n", "2"])
    # a file put there by hand is checked against the architecture the entry names
    from specrobust.models import MODELS

    torch.save({"state_dict": {"x": torch.zeros(1)}}, tmp_path / "Rebuffi2021Fixing_R18_ddpm.pt")
    assert "does not fit" in _one_line_nothing_written(
        capsys, tmp_path, ["fetch-model", "Rebuffi2021Fixing_R18_ddpm"])
    torch.save({"state_dict": {f"module.{k}": v for k, v in
                               MODELS["dm_preact_resnet18"](10, 3).state_dict().items()}},
               tmp_path / "Rebuffi2021Fixing_R18_ddpm.pt")
    assert main(["fetch-model", "Rebuffi2021Fixing_R18_ddpm"]) == 0
    loaded = resolve("Rebuffi2021Fixing_R18_ddpm")
    assert loaded.eps == "8/255" and loaded.dataset == "cifar10"


def _offline(*args, **kwargs):
    raise OSError("no network in this test")
