import subprocess
import sys

import pytest

from formats_on_disk import random_images, random_labels, write_cifar10_binary
from specrobust.cli import main


def _run(capsys, *argv):
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.parametrize("argv", [
    ["bogus"],
    ["data", "verify"],
    ["data", "verify", "imagenet"],
    ["data", "inspect", "synthetic:band=ultra"],
    ["data", "fetch", "synthetic"],
])
def test_bad_input_is_one_line_and_exit_2(capsys, argv):
    code, out, err = _run(capsys, *argv)
    assert code == 2
    assert err.startswith("specrobust: error: ") and err.count("\n") == 1


def test_debug_shows_the_traceback(capsys):
    from specrobust.errors import SpecRobustError

    with pytest.raises(SpecRobustError):
        main(["--debug", "data", "verify", "imagenet"])


def test_verify_missing_dataset_names_the_files(capsys, tmp_path):
    code, _, err = _run(capsys, "data", "verify", "cifar10", "--data-root", str(tmp_path))
    assert code == 2 and "data_batch_1.bin" in err and str(tmp_path) in err


def test_verify_flags_files_that_are_not_the_official_release(capsys, tmp_path):
    pair = (random_images(5, (3, 32, 32)), random_labels(5, 10))
    write_cifar10_binary(tmp_path, pair, pair)
    code, out, err = _run(capsys, "data", "verify", "cifar10", "--data-root", str(tmp_path))
    assert code == 2 and "mismatch" in out and "failed verification" in err


def test_list_inspect_and_models(capsys, tmp_path):
    code, out, _ = _run(capsys, "data", "list", )
    assert code == 0 and "synthetic" in out and "generated" in out
    code, out, _ = _run(capsys, "data", "inspect", "synthetic:band=high,n_train=200,n_test=100")
    assert code == 0 and "high" in out and "200 images" in out
    code, out, _ = _run(capsys, "models")
    from specrobust.models import MODELS, count_parameters, create_model

    rows = {line.split()[0]: line.split()[1:] for line in out.splitlines()[1:]}
    assert code == 0 and set(rows) == set(MODELS)
    assert rows["resnet18"] == ["10", f"{count_parameters(create_model('resnet18', 10)):,}"]
    assert rows["imagenet_resnet50"][0] == "1000"  # counted as published, at 1000 classes


@pytest.mark.parametrize("argv", [["--help"], ["eval", "--help"], ["analyze", "--help"]])
def test_help_answers_without_importing_torch(argv):
    # Building the parser must stay light: importing torch costs seconds on a small machine.
    script = ("import sys\nfrom specrobust.cli import main\ntry:\n    main(sys.argv[1:])\n"
              "except SystemExit:\n    pass\nassert 'torch' not in sys.modules, 'torch imported'\n")
    done = subprocess.run([sys.executable, "-c", script, *argv], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "usage: specrobust" in done.stdout
