import collections
import json

import pytest
import torch

from specrobust.checkpoint import export_safetensors, save_checkpoint
from specrobust.cli import main
from specrobust.errors import SpecRobustError
from specrobust.loading import load_model
from specrobust.models import create_model
from trained_models import dataset_name

DATA = dataset_name("low")


class Payload:
    """Any class: unpickling it would run code, so weights_only loading must refuse it."""


def _model(**kwargs):
    torch.manual_seed(1)
    return create_model("cnn_small", 10, 3, **kwargs).eval()


def _same_outputs(a, b):
    x = torch.rand(4, 3, 32, 32)
    with torch.no_grad():
        return torch.equal(a(x), b(x))


def test_checkpoint_and_safetensors_rebuild_the_model(tmp_path):
    model = _model(mean=(0.5, 0.4, 0.3), std=(0.2, 0.2, 0.25))
    save_checkpoint(tmp_path / "m.pt", model, dataset=DATA, eps="8/255")
    export_safetensors(tmp_path / "m.safetensors", model, dataset=DATA, eps="8/255")
    for name in ("m.pt", "m.safetensors"):
        loaded = load_model(tmp_path / name)
        assert loaded.model.spec == model.spec and loaded.dataset == DATA and loaded.eps == "8/255"
        assert _same_outputs(loaded.model, model)


def test_plain_state_dicts_load_with_model_and_dataset_named(tmp_path):
    model = _model()
    wrapped = collections.OrderedDict(("module." + k, v) for k, v in model.state_dict().items())
    torch.save(wrapped, tmp_path / "ddp.pt")  # as saved from DistributedDataParallel
    torch.save({"state_dict": model.net.state_dict()}, tmp_path / "bare.pt")
    for name in ("ddp.pt", "bare.pt"):
        with pytest.raises(SpecRobustError, match="--model and --dataset"):
            load_model(tmp_path / name)
        loaded = load_model(tmp_path / name, model="cnn_small", dataset=DATA)
        assert _same_outputs(loaded.model, model)


def test_loaded_normalisation_takes_effect(tmp_path):
    normalised = _model(mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    torch.save(normalised.state_dict(), tmp_path / "plain.pt")
    loaded = load_model(tmp_path / "plain.pt", model="cnn_small", dataset=DATA)
    assert not loaded.model.normalize.identity and _same_outputs(loaded.model, normalised)


def test_wrong_architecture_and_unsafe_files_are_refused(tmp_path):
    save_checkpoint(tmp_path / "m.pt", _model(), dataset=DATA)
    with pytest.raises(SpecRobustError, match="holds a cnn_small model, not resnet18"):
        load_model(tmp_path / "m.pt", model="resnet18")
    torch.save(_model().state_dict(), tmp_path / "plain.pt")
    with pytest.raises(SpecRobustError, match="does not fit a resnet18"):
        load_model(tmp_path / "plain.pt", model="resnet18", dataset=DATA)
    torch.save({"weights": Payload()}, tmp_path / "pickled.pt")
    with pytest.raises(SpecRobustError, match="refused"):
        load_model(tmp_path / "pickled.pt", model="cnn_small", dataset=DATA)
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(SpecRobustError, match="cannot read"):
        load_model(tmp_path / "junk.pt", model="cnn_small", dataset=DATA)


def test_run_directories_pick_the_averaged_best_first(tmp_path):
    run = tmp_path / "run"
    save_checkpoint(run / "checkpoints" / "best.pt", _model(), dataset=DATA)
    assert load_model(run).path.name == "best.pt"
    save_checkpoint(run / "checkpoints" / "best_averaged.pt", _model(), dataset=DATA)
    assert load_model(run).path.name == "best_averaged.pt"
    assert load_model(run, which="best").path.name == "best.pt"
    with pytest.raises(SpecRobustError, match="no last checkpoint"):
        load_model(run, which="last")


def test_eval_command_writes_eval_json_into_the_run(natural_low, tmp_path, capsys):
    model, _, _ = natural_low
    run = tmp_path / "run"
    save_checkpoint(run / "checkpoints" / "best.pt", model, dataset=DATA, eps="8/255")
    code = main(["eval", str(run), "--attacks", "clean,fgsm,pgd:steps=5", "--n", "64",
                 "--check-n", "32"])
    out = capsys.readouterr().out
    assert code == 0
    assert "| pgd:steps=5 |" in out and "worst case" in out and "Self-checks" in out
    evaluation = json.loads((run / "eval.json").read_text())
    assert evaluation["complete"] and evaluation["n"] == 64 and evaluation["eps_text"] == "8/255"
    assert [a["label"] for a in evaluation["attacks"]] == ["clean", "fgsm", "pgd:steps=5"]
    assert (run / "eval.md").read_text().splitlines()[1].startswith("# cnn_small")


@pytest.mark.parametrize("extra, message", [
    (["--attacks", "clean,pgd21"], "unknown attack"),
    (["--eps", "-1"], "--eps must be >= 0, got -1"),
    (["--eps", "2"], "--eps must be in [0, 1], got 2"),
    (["--eps", "8/255/2"], "one number over another"),
    (["--check-n", "-1"], "--check-n must be >= 1, got -1"),
    (["--out", "x.md"], "a .json file"),
    (["--model", "resnet18"], "not resnet18"),
    (["--n", "0"], "--n must be"),
])
def test_eval_command_bad_arguments(tmp_path, capsys, extra, message):
    save_checkpoint(tmp_path / "m.pt", _model(), dataset=DATA)
    assert main(["eval", str(tmp_path / "m.pt"), *extra]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_eval_command_missing_checkpoint(tmp_path, capsys):
    assert main(["eval", str(tmp_path / "nothing.pt")]) == 2
    assert "does not exist" in capsys.readouterr().err
