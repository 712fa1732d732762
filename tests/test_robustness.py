"""Bad input and a hostile environment, tried as a careless or hostile user would.

Every case asserts the same contract: one line on stderr, exit status 2, and every file that
was there before byte-identical afterwards (no temporary file left either). Classes:

- options: generated strings for every option of every command that takes a value;
- config: generated values for every config key, and generated YAML documents;
- numbers: the budget grammar and numeric ranges;
- formats: crafted files for every reader (IDX, CIFAR binary and pickle, SVHN, Tiny ImageNet,
  checkpoints, safetensors, evaluation and analysis records);
- outputs: writing where a command has no business writing, through links included;
- report: HTML injection and files that are not what they claim;
- filesystem: a full disk, a read-only one, paths of the wrong kind, a closed pipe, memory;
- concurrency: two writers of one analysis or evaluation.

``benchmarks/reliability.py`` runs this module and tabulates how many cases each class tried
(``SPECROBUST_RELIABILITY_TALLY``).
"""

from __future__ import annotations

import collections
import contextlib
import errno
import json
import os
import pickle
import re
import string
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from specrobust.checkpoint import save_checkpoint
from specrobust.cli import build_parser, main
from specrobust.config import Config, load_config
from specrobust.errors import SpecRobustError
from specrobust.files import locks
from specrobust.loading import load_model
from specrobust.models import create_model
from specrobust.numbers import parse_fraction

DATA = "synthetic:band=low,n_train=40,n_test=20,seed=3"
FUZZ = settings(max_examples=40, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])

TALLY: collections.Counter = collections.Counter()


def tried(kind: str, intact_checked: bool = False) -> None:
    TALLY[kind] += 1
    if intact_checked:
        TALLY[kind + " (files checked intact)"] += 1


@pytest.fixture(scope="module", autouse=True)
def _write_tally():
    yield
    from tests_support import write_tally

    write_tally(TALLY)


def refused(capsys, argv) -> str:
    """Run the command; it must fail with one line and exit 2. Returns that line."""
    capsys.readouterr()
    code = main([str(a) for a in argv])
    err = capsys.readouterr().err
    assert code == 2, (argv, err)
    assert err.startswith("specrobust: error: ") and err.count("\n") == 1, (argv, err)
    return err


def snapshot(*roots: Path) -> dict:
    """Every file and link under the roots: bytes for files, targets for links."""
    found = {}
    for root in roots:
        for path in [root, *root.rglob("*")] if root.exists() else []:
            if path.is_symlink():
                found[str(path)] = ("link", os.readlink(path))
            elif path.is_file():
                found[str(path)] = path.read_bytes()
    return found


@contextlib.contextmanager
def intact(*roots: Path):
    """Assert that nothing under the roots changes, appears or disappears."""
    before = snapshot(*roots)
    yield
    assert snapshot(*roots) == before


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    """A random-weights cnn_small checkpoint on tiny synthetic data, inside a run directory."""
    run = tmp_path_factory.mktemp("robust") / "run"
    torch.manual_seed(0)
    save_checkpoint(run / "checkpoints" / "best.pt", create_model("cnn_small", 10),
                    dataset=DATA, eps="8/255")
    return run


def fresh_run(checkpoint: Path, tmp_path: Path, name: str = "run") -> Path:
    run = tmp_path / name
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / "best.pt").write_bytes((checkpoint / "checkpoints/best.pt").read_bytes())
    return run


# ---- options -----------------------------------------------------------------------------------


def _value_options() -> list[tuple[list[str], str]]:
    """(command words, option) for every option that takes a value, read off the parser.
    ``demo`` and ``data fetch`` are left out: a valid value there starts hours of work or a
    download; their options are the same types as eval's."""
    parser = build_parser()
    commands = next(a for a in parser._actions if a.dest == "command").choices
    found = []
    for name, sub in commands.items():
        if name == "demo":
            continue
        nested = [a for a in sub._actions if a.dest == "data_command"]
        subs = nested[0].choices.items() if nested else [(None, sub)]
        for inner, command in subs:
            if inner == "fetch":
                continue
            words = [name] + ([inner] if inner else [])
            found += [(words, action.option_strings[-1]) for action in command._actions
                      if action.option_strings and action.nargs != 0]
    return found


VALUE_OPTIONS = _value_options()


def test_the_option_list_covers_the_commands():
    options = {(tuple(words), option) for words, option in VALUE_OPTIONS}
    for expected in [(("eval",), "--eps"), (("eval",), "--check-n"), (("analyze",), "--num-images"),
                     (("analyze",), "--heatmap-norm"), (("report",), "--out"),
                     (("train",), "--set"), (("data", "inspect"), "--data-root")]:
        assert expected in options


@pytest.mark.parametrize("case", VALUE_OPTIONS, ids=lambda case: " ".join([*case[0], case[1]]))
@settings(FUZZ, max_examples=12)
@given(value=st.text(max_size=40))
def test_any_option_value_is_one_line_and_exit_2(tmp_path_factory, capsys, case, value):
    words, option = case
    missing = str(tmp_path_factory.getbasetemp() / "missing-source")
    positional = {"eval": [missing], "analyze": [missing], "report": [missing],
                  "train": [missing + ".yaml"], "data": ["no-such-dataset"]}.get(words[0], [])
    refused(capsys, [*words, *positional, option, value])
    tried("options")


@pytest.mark.parametrize("argv, message", [
    (["eval", "M", "--eps", "8/255/2"], "one number over another"),
    (["eval", "M", "--eps", "100"], "--eps must be in [0, 1], got 100"),
    (["eval", "M", "--check-n", "-1"], "--check-n must be >= 1, got -1"),
    (["eval", "M", "--check-n", "0"], "--check-n must be >= 1, got 0"),
    (["eval", "M", "--batch-size", "0"], "--batch-size must be in [1, 65536], got 0"),
    (["eval", "M", "--n", "1e3"], "--n must be a whole number"),
    (["eval", "M", "--seed", "٣"], "--seed must be a whole number"),
    (["eval", "M", "--device", "meta"], "unknown device"),
    (["eval", "M", "--attacks", "pgd:steps=²"], "steps must be a whole number"),
    (["eval", "M", "--attacks", "pgd:steps=0"], "steps must be in [1, 100000], got 0"),
    (["eval", "M", "--attacks", "pgd:alpha=nan"], "alpha must be"),
    (["analyze", "M", "--heatmap-norm", "inf"], "--heatmap-norm must be a number"),
    (["analyze", "M", "--heatmap-norm", "0"], "--heatmap-norm must be in (0, 1000], got 0"),
    (["analyze", "M", "--heatmap-stride", "0"], "--heatmap-stride must be >= 1"),
    (["train", "C", "--branch-epoch", "0"], "--branch-epoch must be >= 1"),
    (["eval", "a\x00b"], "NUL character"),
])
def test_numbers_out_of_range_name_the_range(capsys, checkpoint, argv, message):
    argv = [str(checkpoint) if a == "M" else a for a in argv]
    with intact(checkpoint):
        assert message in refused(capsys, argv)
    tried("numbers", intact_checked=True)


# ---- config ------------------------------------------------------------------------------------


def _config_keys(cls=Config, prefix="") -> list[str]:
    import dataclasses

    keys = []
    for f in dataclasses.fields(cls):
        name = "lambda" if f.name == "lam" else f.name
        default = getattr(cls(), f.name)
        if dataclasses.is_dataclass(default):
            keys += _config_keys(type(default), f"{prefix}{name}.")
        else:
            keys.append(prefix + name)
    return keys


CONFIG_KEYS = _config_keys()


@FUZZ
@given(key=st.sampled_from(CONFIG_KEYS), value=st.text(max_size=30))
def test_any_config_value_is_accepted_or_refused_in_one_line(key, value):
    try:
        config = load_config(None, [f"{key}={value}"])
    except SpecRobustError as error:
        assert "\n" not in str(error)
    else:
        assert isinstance(config, Config)
    tried("config")


_YAML_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=4),
    max_leaves=12)


@FUZZ
@given(document=st.dictionaries(
    st.sampled_from(["seed", "data", "model", "optim", "attack", "sar", "averaging", "run",
                     "base", "bogus"]),
    _YAML_VALUES, max_size=5))
def test_any_yaml_recipe_is_accepted_or_refused_in_one_line(tmp_path_factory, document):
    path = tmp_path_factory.getbasetemp() / "fuzz.yaml"
    path.write_text(yaml.safe_dump(document))
    try:
        load_config(path)
    except SpecRobustError as error:
        assert "\n" not in str(error)
    tried("config")


def test_python_float_syntax_is_read_everywhere(tmp_path):
    (tmp_path / "r.yaml").write_text("optim:\n  lr: 1e-3\n  weight_decay: 5E-4\n"
                                     "sar:\n  lambda: 1e-1\n")
    config = load_config(tmp_path / "r.yaml", ["optim.momentum=9e-1"])
    assert (config.optim.lr, config.optim.weight_decay, config.sar.lam, config.optim.momentum) \
        == (1e-3, 5e-4, 0.1, 0.9)
    tried("numbers")


@FUZZ
@given(text=st.text(max_size=30))
def test_budgets_parse_or_are_refused(text):
    try:
        value = parse_fraction(text, "eps")
    except SpecRobustError:
        pass
    else:
        assert np.isfinite(value)
    tried("numbers")


@pytest.mark.parametrize("text", ["8/255/2", "8//255", "1/0", "nan", "inf", "0x10", "", "/",
                                  "8/", "1e99999", "8/255 x", "1,5"])
def test_ambiguous_budgets_are_refused(text):
    with pytest.raises(SpecRobustError):
        parse_fraction(text, "eps")
    tried("numbers")


# ---- formats -----------------------------------------------------------------------------------


def _reader_refuses_or_reads(read, path: Path) -> None:
    try:
        read(path)
    except SpecRobustError as error:
        assert "\n" not in str(error)


@FUZZ
@given(header=st.binary(min_size=0, max_size=24), body=st.binary(max_size=64))
def test_crafted_idx_files(tmp_path_factory, header, body):
    from specrobust.data.formats import read_idx

    path = tmp_path_factory.getbasetemp() / "crafted-idx"
    path.write_bytes(b"\x00\x00\x08" + header + body)
    _reader_refuses_or_reads(read_idx, path)
    tried("formats")


def test_idx_dimensions_that_overflow_are_refused(tmp_path):
    from specrobust.data.formats import read_idx

    for dims in ([0xFFFFFFFF] * 3, [2**16, 2**16, 2**16, 2**16], []):
        path = tmp_path / "overflow"
        path.write_bytes(bytes([0, 0, 8, len(dims)]) + b"".join(d.to_bytes(4, "big")
                                                                   for d in dims) + b"\x01")
        with pytest.raises(SpecRobustError):
            read_idx(path)
        tried("formats")


@FUZZ
@given(data=st.binary(max_size=8000))
def test_crafted_cifar_binary_and_pickle(tmp_path_factory, data):
    from specrobust.data.formats import read_cifar_binary, read_cifar_pickle

    path = tmp_path_factory.getbasetemp() / "crafted-cifar"
    path.write_bytes(data)
    _reader_refuses_or_reads(lambda p: read_cifar_binary(p, 1), path)
    _reader_refuses_or_reads(lambda p: read_cifar_pickle(p, "labels"), path)
    tried("formats")
    tried("formats")


class _RunsCode:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_pickles_that_would_run_code_are_refused_and_do_not_run(tmp_path):
    from specrobust.data.formats import read_cifar_pickle

    marker = tmp_path / "code-ran"
    (tmp_path / "batch").write_bytes(pickle.dumps({"data": _RunsCode(marker), "labels": [1]}))
    with pytest.raises(SpecRobustError, match="refusing to load"):
        read_cifar_pickle(tmp_path / "batch", "labels")
    torch.save({"state_dict": {"w": torch.zeros(1)}, "x": _RunsCode(marker)}, tmp_path / "m.pt")
    with pytest.raises(SpecRobustError, match=r"refused, since loading it could run code"):
        load_model(tmp_path / "m.pt", model="cnn_small", dataset=DATA)
    assert not marker.exists()
    tried("formats")
    tried("formats")


def test_crafted_svhn_and_tiny_imagenet_files(tmp_path):
    pytest.importorskip("scipy")
    pytest.importorskip("PIL")
    from specrobust.data.formats import read_svhn_mat, read_tiny_imagenet

    for data in (b"", b"MATLAB 5.0 MAT-file" + bytes(200), os.urandom(500)):
        (tmp_path / "train_32x32.mat").write_bytes(data)
        with pytest.raises(SpecRobustError):
            read_svhn_mat(tmp_path / "train_32x32.mat")
        tried("formats")
    root = tmp_path / "tiny"
    (root / "train" / "n01" / "images").mkdir(parents=True)
    (root / "wnids.txt").write_text("n01\n")
    (root / "train" / "n01" / "images" / "a.JPEG").write_bytes(b"\xff\xd8\xff not a jpeg")
    (root / "val" / "images").mkdir(parents=True)
    (root / "val" / "val_annotations.txt").write_text("a.JPEG\tn01\n")
    with pytest.raises(SpecRobustError):
        read_tiny_imagenet(root)
    (root / "val" / "val_annotations.txt").write_text("no tabs here\n")
    with pytest.raises(SpecRobustError):
        read_tiny_imagenet(root)
    tried("formats")
    tried("formats")


@FUZZ
@given(header=st.one_of(st.binary(max_size=40), st.dictionaries(
    st.sampled_from(["__metadata__", "w", "x"]),
    st.one_of(st.text(max_size=8), st.integers(), st.dictionaries(
        st.sampled_from(["format", "model", "dtype", "shape", "data_offsets"]),
        st.one_of(st.text(max_size=12), st.integers(), st.lists(st.integers(), max_size=3)),
        max_size=4)), max_size=3)))
def test_crafted_safetensors_headers(tmp_path_factory, header):
    path = tmp_path_factory.getbasetemp() / "crafted.safetensors"
    if isinstance(header, dict):
        header = json.dumps(header).encode()
        data = len(header).to_bytes(8, "little") + header + bytes(16)
    else:
        data = header
    path.write_bytes(data)
    with pytest.raises(SpecRobustError):
        load_model(path, model="cnn_small", dataset=DATA)
    tried("formats")


def test_safetensors_that_claims_specrobust_without_a_model(tmp_path):
    from safetensors.torch import save

    path = tmp_path / "m.safetensors"
    path.write_bytes(save({"w": torch.zeros(2)}, metadata={"format": "specrobust-checkpoint"}))
    with pytest.raises(SpecRobustError, match="no readable model description"):
        load_model(path)
    tried("formats")


@pytest.mark.parametrize("payload", [
    b"", b"PK\x03\x04garbage", os.urandom(300),
])
def test_crafted_checkpoint_bytes(tmp_path, payload):
    (tmp_path / "m.pt").write_bytes(payload)
    with pytest.raises(SpecRobustError, match="cannot read (checkpoint|model file)"):
        load_model(tmp_path / "m.pt", model="cnn_small", dataset=DATA)
    tried("formats")


@pytest.mark.parametrize("payload", [
    {"format": "specrobust-checkpoint"},
    {"format": "specrobust-checkpoint", "model": {"name": "cnn_small"}, "state_dict": {}},
    {"format": "specrobust-checkpoint", "model": {"name": "cnn_small", "num_classes": 10**9},
     "state_dict": {}},
    {"format": "specrobust-checkpoint", "model": "cnn_small", "state_dict": [1, 2]},
    {"state_dict": {"w": "not a tensor"}},
    {"state_dict": {1: torch.zeros(1)}},
    [torch.zeros(3)],
])
def test_crafted_checkpoint_contents(tmp_path, payload):
    torch.save(payload, tmp_path / "m.pt")
    with pytest.raises(SpecRobustError):
        load_model(tmp_path / "m.pt", model="cnn_small", dataset=DATA)
    tried("formats")


def test_resuming_from_a_checkpoint_without_training_state(tmp_path, capsys, checkpoint):
    from tests_support import tiny_recipe

    recipe = tiny_recipe(tmp_path)
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    load = load_config(recipe)
    (run / "config.yaml").write_text(load.to_yaml())
    (run / "checkpoints" / "last.pt").write_bytes((checkpoint / "checkpoints/best.pt")
                                                  .read_bytes())
    with intact(run):
        assert "no training state" in refused(capsys, ["train", recipe, "--out", run,
                                                       "--resume"])
    tried("formats", intact_checked=True)


_EVAL_FIELDS = st.dictionaries(
    st.sampled_from(["attacks", "worst_case", "checks", "per_example", "model", "n", "dataset",
                     "eps_text", "partial", "under_way", "complete"]),
    st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=6),
              st.lists(st.dictionaries(st.sampled_from(["label", "accuracy", "ci95", "bits",
                                                        "done", "n", "correct", "seconds"]),
                                       st.one_of(st.integers(), st.text(max_size=4),
                                                 st.lists(st.integers(), max_size=2)),
                                       max_size=5), max_size=2),
              st.dictionaries(st.text(max_size=5), st.one_of(
                  st.text(max_size=5), st.integers(),
                  st.dictionaries(st.sampled_from(["bits", "done", "seconds"]),
                                  st.one_of(st.text("01", max_size=4), st.integers()),
                                  max_size=3)), max_size=3)),
    max_size=8)


@FUZZ
@given(fields=_EVAL_FIELDS)
def test_crafted_evaluation_records_do_not_crash_the_report(tmp_path_factory, capsys, fields):
    base = tmp_path_factory.getbasetemp()
    run = base / "crafted-eval-run"
    run.mkdir(exist_ok=True)
    (run / "eval.json").write_text(json.dumps({"format": "specrobust-eval", **fields}))
    out = base / "crafted-eval.html"
    capsys.readouterr()
    code = main(["report", str(run), "-o", str(out)])
    err = capsys.readouterr().err
    assert code == 0 or (code == 2 and err.count("\n") == 1), err
    tried("formats")


@pytest.mark.parametrize("record", [
    {"lowpass": "x"}, {"lowpass": {"bandwidths": [1], "clean": [], "pgd20": None}},
    {"weights": "no"}, {},
])
def test_crafted_analysis_records_do_not_crash_the_report(tmp_path, capsys, record):
    directory = tmp_path / "analysis"
    directory.mkdir()
    for part in ("filter", "kernels"):
        (directory / f"{part}.json").write_text(json.dumps(
            {"format": "specrobust-analysis", "part": part, "label": "x", **record}))
    (directory / "summary.json").write_text("{}")
    capsys.readouterr()
    code = main(["report", str(directory), "-o", str(tmp_path / "r.html")])
    err = capsys.readouterr().err
    assert code == 0 or (code == 2 and err.count("\n") == 1), err
    tried("formats")


# ---- outputs -----------------------------------------------------------------------------------


def test_train_refuses_a_directory_that_is_not_a_run(tmp_path, capsys):
    from tests_support import tiny_recipe

    recipe = tiny_recipe(tmp_path / "recipe")
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "config.yml").write_text("mine")
    (notes / "metrics.jsonl.txt").write_text("mine too")
    with intact(tmp_path):
        assert "not a run directory" in refused(capsys, ["train", recipe, "--out", notes])
    tried("outputs", intact_checked=True)


def test_eval_writes_only_its_own_files(tmp_path, capsys, checkpoint):
    run = fresh_run(checkpoint, tmp_path)
    (tmp_path / "notes.json").write_text('{"mine": 1}')
    (tmp_path / "fresh.md").write_text("# my notes\n")
    (tmp_path / "victim.json").write_text('{"format": "specrobust-eval"}')
    os.symlink(tmp_path / "victim.json", tmp_path / "link.json")
    (tmp_path / "adir.json").mkdir()
    args = ["eval", run, "--attacks", "clean", "--n", "4", "--no-checks", "--out"]
    with intact(tmp_path):
        assert "not an evaluation record" in refused(capsys, [*args, tmp_path / "notes.json"])
        assert "not an evaluation table" in refused(capsys, [*args, tmp_path / "fresh.json"])
        assert "a .json file" in refused(capsys, [*args, tmp_path / "x.md"])
        assert "symbolic link" in refused(capsys, [*args, tmp_path / "link.json"])
        assert "is a directory" in refused(capsys, [*args, tmp_path / "adir.json"])
        assert "is a file" in refused(capsys, [*args, tmp_path / "notes.json" / "e.json"])
    for _ in range(6):
        tried("outputs", intact_checked=True)
    # its own record (and table) it replaces
    assert main([str(a) for a in [*args, tmp_path / "mine.json"]]) == 0
    assert main([str(a) for a in [*args, tmp_path / "mine.json"]]) == 0


def test_analyze_writes_only_into_its_own_kind_of_directory(tmp_path, capsys, checkpoint):
    run = fresh_run(checkpoint, tmp_path)
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "paper.tex").write_text("mine")
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "kernels.json").write_text("precious")
    os.symlink(victim, run / "analysis")
    args = ["analyze", run, "--parts", "kernels", "--n", "4"]
    with intact(tmp_path):
        assert "not an analysis directory" in refused(capsys, [*args, "--out", foreign])
        assert "symbolic link" in refused(capsys, args)
        assert "is a file" in refused(capsys, [*args, "--out", foreign / "paper.tex"])
    (run / "analysis").unlink()
    assert main([str(a) for a in args]) == 0
    (run / "analysis" / "kernels.png").unlink()
    os.symlink(victim / "kernels.json", run / "analysis" / "kernels.png")
    with intact(victim):
        assert "symbolic link" in refused(capsys, [*args[:-1], "5"])  # another n: redone
    for _ in range(4):
        tried("outputs", intact_checked=True)


def test_report_replaces_only_reports(tmp_path, capsys, checkpoint):
    run = fresh_run(checkpoint, tmp_path)
    assert main(["analyze", str(run), "--parts", "kernels", "--n", "4"]) == 0
    (tmp_path / "mine.html").write_text("<html>my page</html>")
    (tmp_path / "victim.html").write_text("precious")
    os.symlink(tmp_path / "victim.html", tmp_path / "link.html")
    with intact(tmp_path):
        assert "--force" in refused(capsys, ["report", run, "-o", tmp_path / "mine.html"])
        assert "symbolic link" in refused(capsys, ["report", run, "-o", tmp_path / "link.html",
                                                   "--force"])
        assert "is a directory" in refused(capsys, ["report", run, "-o", run])
    for _ in range(3):
        tried("outputs", intact_checked=True)
    assert main(["report", str(run), "-o", str(tmp_path / "mine.html"), "--force"]) == 0
    assert main(["report", str(run), "-o", str(tmp_path / "mine.html")]) == 0  # ours now


def test_a_planted_cache_link_is_not_written_through(tmp_path):
    pytest.importorskip("PIL")
    from formats_on_disk import random_images, random_labels, write_tiny_imagenet
    from specrobust.data.formats import read_tiny_imagenet

    pair = (random_images(4, (3, 64, 64)), random_labels(4, 2))
    root = write_tiny_imagenet(tmp_path, pair, pair, ["n01", "n02"])
    victim = tmp_path / "victim"
    victim.write_bytes(b"precious")
    for name, n in (("train", 4), ("val", 4)):
        os.symlink(victim, root / f".specrobust-{name}-{n}.npy")
    with intact(victim):
        train, _ = read_tiny_imagenet(root)
    assert len(train) == 4
    tried("outputs", intact_checked=True)


# ---- report ------------------------------------------------------------------------------------

_INJECTIONS = ['<xssprobe xssattr="1">', '"><xssprobe xssattr=1>', "</pre><xssprobe>",
               "'><img xssattr=1 src=x>", "<script>alert(1)</script>"]


class _Elements(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags, self.attributes = set(), set()

    def handle_starttag(self, tag, attrs):
        self.tags.add(tag)
        self.attributes |= {name for name, _ in attrs}

    handle_startendtag = handle_starttag


def test_report_escapes_everything_that_came_from_data(tmp_path, capsys, checkpoint):
    evil = _INJECTIONS[0].replace("/", "")
    run = fresh_run(checkpoint, tmp_path, name=f"run{evil}")
    assert main(["eval", str(run), "--attacks", "clean,fgsm", "--n", "8", "--check-n", "4"]) == 0
    assert main(["analyze", str(run), "--parts", "kernels", "--n", "8"]) == 0
    record = json.loads((run / "eval.json").read_text())
    record["model"]["name"] = _INJECTIONS[1]
    record["dataset"] = record["eps_text"] = _INJECTIONS[2]
    record["attacks"][1]["label"] = _INJECTIONS[3]
    record["per_example"][_INJECTIONS[3]] = record["per_example"].pop("fgsm")
    record["checks"] = [{"name": _INJECTIONS[4], "message": _INJECTIONS[0], "ok": False}]
    (run / "eval.json").write_text(json.dumps(record))
    kernels = json.loads((run / "analysis" / "kernels.json").read_text())
    kernels["label"] = _INJECTIONS[4]
    (run / "analysis" / "kernels.json").write_text(json.dumps(kernels))
    (run / "config.yaml").write_text("model:\n  name: " + _INJECTIONS[2] + "\n")
    out = tmp_path / "r.html"
    assert main(["report", str(run), "-o", str(out), "--title", _INJECTIONS[1]]) == 0
    elements = _Elements()
    elements.feed(out.read_text())
    ours = {"html", "head", "meta", "title", "style", "body", "main", "h1", "h2", "h3", "p",
            "nav", "a", "table", "thead", "tbody", "tr", "th", "td", "b", "small", "img",
            "details", "summary", "pre"}
    assert elements.tags <= ours, elements.tags - ours
    assert elements.attributes <= {"lang", "charset", "name", "content", "href", "id", "class",
                                   "alt", "src"}, elements.attributes
    assert "xssprobe" in out.read_text()  # the text is there, as text
    for _ in _INJECTIONS:
        tried("report")


def test_report_embeds_only_regular_files_of_the_run(tmp_path, capsys, checkpoint):
    run = fresh_run(checkpoint, tmp_path)
    assert main(["analyze", str(run), "--parts", "kernels", "--n", "4"]) == 0
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-CONTENT")
    os.symlink(secret, run / "config.yaml")
    (run / "curves.png").write_text("TOP-SECRET-CONTENT, not a PNG")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "eval.json").write_text(json.dumps({"format": "specrobust-eval",
                                                     "model": {"name": "TOP-SECRET-CONTENT"}}))
    os.symlink(elsewhere / "eval.json", run / "eval-best.json")
    out = tmp_path / "r.html"
    assert main(["report", str(run), "-o", str(out)]) == 0
    assert "TOP-SECRET" not in out.read_text()
    for _ in range(3):
        tried("report")


# ---- filesystem --------------------------------------------------------------------------------


@contextlib.contextmanager
def small_filesystem(path: Path, kilobytes: int):
    """A tmpfs of that size at ``path`` where the machine lets the tests mount one (root on
    Linux), else None."""
    path.mkdir(parents=True, exist_ok=True)
    if sys.platform != "linux" or os.geteuid() != 0:
        yield None
        return
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={kilobytes}k", "tmpfs",
                           str(path)], capture_output=True)
    if done.returncode != 0:
        yield None
        return
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def _fill(directory: Path) -> None:
    """Take every free byte of the filesystem holding ``directory``."""
    with contextlib.suppress(OSError), open(directory / "filler", "wb") as out:
        while True:
            out.write(bytes(4096))
            out.flush()


def _no_space(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_a_full_disk_is_one_line_and_loses_nothing(tmp_path, capsys, checkpoint, monkeypatch):
    with small_filesystem(tmp_path / "fs", 1024) as fs:
        if fs is None:  # simulated: every durable write fails as on a full disk
            fs = tmp_path / "fs"
            monkeypatch.setattr("specrobust.files.storage.os.fsync", _no_space)
        run = fresh_run(checkpoint, fs)
        (run / "eval.json").write_text('{"format": "specrobust-eval", "old": true}')
        _fill(fs)
        with intact(fs):
            assert "No space left on device [ENOSPC]" in refused(
                capsys, ["eval", run, "--attacks", "clean", "--n", "4", "--no-checks"])
            assert "ENOSPC" in refused(capsys, ["analyze", run, "--parts", "kernels", "--n", "4"])
    tried("filesystem", intact_checked=True)
    tried("filesystem", intact_checked=True)


def _read_only_below(monkeypatch, root: Path) -> None:
    """Make creating files and directories below ``root`` fail with EROFS."""
    import tempfile

    def refusing(original, argument):
        def call(*args, **kwargs):
            target = kwargs.get("dir") if argument == "dir" else args[0]
            if str(target).startswith(str(root)):
                raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(target))
            return original(*args, **kwargs)
        return call

    monkeypatch.setattr(tempfile, "mkstemp", refusing(tempfile.mkstemp, "dir"))
    monkeypatch.setattr(os, "mkdir", refusing(os.mkdir, 0))
    monkeypatch.setattr(locks.os, "open", refusing(os.open, 0))


def test_a_read_only_place_is_one_line_and_loses_nothing(tmp_path, capsys, checkpoint,
                                                        monkeypatch):
    with small_filesystem(tmp_path / "fs", 2048) as fs:
        run = fresh_run(checkpoint, fs or tmp_path / "fs")
        assert main(["analyze", str(run), "--parts", "kernels", "--n", "4"]) == 0
        (run / "eval.json").write_text(  # an evaluation under way, nothing finished yet
            '{"format": "specrobust-eval", "format_version": 2, "complete": false, "eps": 0.1, '
            '"n": 4, "attacks": [], "per_example": {}}')
        remounted = fs is not None and subprocess.run(
            ["mount", "-o", "remount,ro", str(fs)], capture_output=True).returncode == 0
        if not remounted:  # simulated: creating anything below the run fails as read-only
            _read_only_below(monkeypatch, run)
        with intact(run):
            assert "EROFS" in refused(capsys, ["eval", run, "--attacks", "clean", "--n", "4"])
            assert "EROFS" in refused(capsys, ["analyze", run, "--parts", "kernels", "--n", "5"])
            assert "EROFS" in refused(capsys, ["report", run, "-o", run / "r.html"])
    for _ in range(3):
        tried("filesystem", intact_checked=True)


def test_a_study_on_a_read_only_place_is_one_line_and_loses_nothing(tmp_path, capsys,
                                                                       monkeypatch):
    """The study's own files (its tables, its report) on a place that refuses writes."""
    from tests_support import tiny_recipe

    recipe = tiny_recipe(tmp_path / "recipe")
    with small_filesystem(tmp_path / "fs", 1024) as fs:
        out = (fs or tmp_path / "fs") / "study"
        plan = tmp_path / "plan.yaml"
        plan.write_text(f"name: p\neps: 8/255\nout: {out}\nattacks: clean\n"
                        f"runs: {{at: {{recipe: {recipe}}}}}\nmethods: {{AT: [at, best]}}\n")
        assert main(["study", str(plan), "--stages", "none"]) == 0  # an empty study's tables
        remounted = fs is not None and subprocess.run(
            ["mount", "-o", "remount,ro", str(fs)], capture_output=True).returncode == 0
        if not remounted:
            _read_only_below(monkeypatch, out)
        with intact(out):
            assert "EROFS" in refused(capsys, ["study", plan, "--stages", "none"])
    tried("filesystem", intact_checked=True)


def test_paths_of_the_wrong_kind(tmp_path, capsys, checkpoint):
    from tests_support import tiny_recipe

    run = fresh_run(checkpoint, tmp_path)
    (tmp_path / "file").write_text("mine")
    recipe = tiny_recipe(tmp_path / "recipe")
    with intact(tmp_path):
        refused(capsys, ["train", recipe, "--out", tmp_path / "file"])
        refused(capsys, ["train", tmp_path, "--out", tmp_path / "new"])  # recipe is a directory
        refused(capsys, ["analyze", run, "--out", tmp_path / "file" / "sub", "--parts",
                         "kernels", "--n", "4"])
        refused(capsys, ["eval", tmp_path / "file"])  # not a checkpoint
        refused(capsys, ["report", run, "-o", tmp_path / "file" / "r.html"])
        refused(capsys, ["data", "inspect", "cifar10", "--data-root", tmp_path / "file"])
    for _ in range(6):
        tried("filesystem", intact_checked=True)


def test_a_closed_pipe_is_one_line():
    read_end, write_end = os.pipe()
    os.close(read_end)
    done = subprocess.run([sys.executable, "-c", "import sys; from specrobust.cli import main; "
                           "sys.exit(main(['data', 'list']))"], stdout=write_end,
                          stderr=subprocess.PIPE, text=True, timeout=120)
    os.close(write_end)
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("specrobust: error: output pipe closed") and \
        done.stderr.count("\n") == 1, done.stderr
    tried("filesystem")


def test_memory_exhaustion_is_refused_or_one_line(capsys, monkeypatch, checkpoint):
    assert "too large" in refused(capsys, ["data", "inspect",
                                           "synthetic:n_train=1000000000,size=512"])

    def exhausted(*args, **kwargs):
        raise MemoryError

    monkeypatch.setattr("specrobust.data.load_dataset", exhausted)
    assert "out of memory" in refused(capsys, ["eval", checkpoint, "--n", "4"])
    tried("filesystem")
    tried("filesystem")


# ---- concurrency -------------------------------------------------------------------------------


@pytest.mark.skipif(sys.platform == "win32", reason="no flock")
def test_a_second_analysis_of_one_directory_is_refused(tmp_path, capsys, checkpoint):
    from specrobust.analysis.job import AnalysisInUseError

    run = fresh_run(checkpoint, tmp_path)
    (run / "analysis").mkdir()
    os.symlink(run / "analysis", tmp_path / "link")
    held = locks.claim(tmp_path / "link", AnalysisInUseError("held"))  # through the link
    try:
        with intact(run):
            assert "another analysis" in refused(capsys, ["analyze", run, "--parts", "kernels",
                                                          "--n", "4"])
    finally:
        locks.release(held)
    assert main(["analyze", str(run), "--parts", "kernels", "--n", "4"]) == 0
    tried("concurrency", intact_checked=True)


@pytest.mark.skipif(sys.platform == "win32", reason="no flock")
def test_an_evaluation_lock_cannot_be_sidestepped_through_a_link(tmp_path, capsys, checkpoint):
    from specrobust.evaluation.runner import EvalInUseError

    run = fresh_run(checkpoint, tmp_path)
    os.symlink(run, tmp_path / "alias")
    assert locks.beside(tmp_path / "alias" / "eval.json") == locks.beside(run / "eval.json")
    held = locks.claim(locks.beside(run / "eval.json"), EvalInUseError("held"), create=True)
    try:
        with intact(run):
            assert "another evaluation" in refused(capsys, ["eval", tmp_path / "alias",
                                                            "--attacks", "clean", "--n", "4"])
    finally:
        locks.release(held)
    tried("concurrency", intact_checked=True)


def test_printable_garbage_source_names(capsys):
    for name in ["", " ", "-", "--", string.punctuation, "a" * 5000]:
        capsys.readouterr()
        code = main(["eval", name])
        assert code == 2 and capsys.readouterr().err.count("\n") == 1
        tried("options")


def test_a_projects_own_config_yaml_does_not_make_a_run(tmp_path, capsys):
    from tests_support import tiny_recipe

    recipe = tiny_recipe(tmp_path / "recipe")
    project = tmp_path / "project"
    project.mkdir()
    (project / "config.yaml").write_text("learning_rate: 3\n")
    with intact(project):
        assert "not a run directory" in refused(capsys, ["train", recipe, "--out", project,
                                                         "--resume"])
    tried("outputs", intact_checked=True)


def test_a_dollar_in_a_label_is_drawn_as_text(tmp_path, checkpoint, capsys):
    """Matplotlib reads $...$ as mathtext: a run named 'a$b' must neither break a figure nor
    turn off mathtext elsewhere (log-axis tick labels use it)."""
    import matplotlib

    from specrobust.analysis import draw

    run = fresh_run(checkpoint, tmp_path, name="a$b")
    assert main(["analyze", str(run), "--parts", "kernels", "--n", "4"]) == 0
    record = json.loads((run / "analysis" / "kernels.json").read_text())
    draw("kernels", [("a$b", record), ("$x", record)], tmp_path / "k.png")
    assert matplotlib.rcParams["text.parse_math"]
    tried("report")


# ---- model files: no code runs from any file that is not named as code --------------------------

def _payload_tensor(marker: str, value: torch.Tensor) -> torch.Tensor:
    """What a crafted pickle runs: it leaves a mark, then returns a valid value, so a loader
    that ran it would carry on as if nothing happened."""
    Path(marker).touch()
    return value


class _TensorPayload:
    def __init__(self, marker: Path, value: torch.Tensor):
        self.marker, self.value = str(marker), value

    def __reduce__(self):
        return (_payload_tensor, (self.marker, self.value))


class _Exported(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(3 * 32 * 32, 10)
        self.register_buffer("offset", torch.arange(10.0), persistent=False)  # a constant

    def forward(self, x):
        return self.linear(x.flatten(1)) + self.offset


def _exported_archive(path: Path):
    """(the members of a real exported program's archive, its weights and constants)."""
    program = torch.export.export(_Exported().eval(), (torch.rand(2, 3, 32, 32),),
                                  dynamic_shapes={"x": {0: torch.export.Dim("batch")}})
    torch.export.save(program, path)
    import zipfile

    with zipfile.ZipFile(path) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    return members, {**program.state_dict, **program.constants}


def _write_archive(path: Path, members: dict[str, bytes] | list[tuple[str, bytes]]) -> None:
    """A ZIP archive of ``members``; a list may name a member twice (zipfile warns, and keeps
    both: readers then disagree on which one counts)."""
    import warnings
    import zipfile

    with warnings.catch_warnings(), zipfile.ZipFile(path, "w") as archive:
        warnings.simplefilter("ignore")
        for name, data in (members.items() if isinstance(members, dict) else members):
            archive.writestr(name, data)


def _pickled_member(members: dict, config_name: str, marker: Path, values: dict) -> dict:
    """Every payload of a weights or constants config pickled, and its pickle running code."""
    import io

    root = next(iter(members)).split("/")[0]
    config_key = f"{root}/{config_name}"
    config = json.loads(members[config_key])
    for fqn, meta in config["config"].items():
        meta["use_pickle"] = True
        buffer = io.BytesIO()
        torch.save(_TensorPayload(marker, values[fqn]), buffer)
        members[f"{root}/{config_name.rsplit('/', 1)[0]}/{meta['path_name']}"] = buffer.getvalue()
    members[config_key] = json.dumps(config).encode()
    return members


def _crafted_exports(directory: Path, marker: Path) -> dict[str, dict | list]:
    """Archives that each carry one way in for code, with a payload that returns a valid
    value; the rest of each archive is a real exported program."""
    import io

    clean, values = _exported_archive(directory / "clean.pt2")
    root = next(iter(clean)).split("/")[0]
    variants = {}
    variants["weights"] = _pickled_member(dict(clean), "data/weights/model_weights_config.json",
                                          marker, values)
    variants["constants"] = _pickled_member(dict(clean),
                                            "data/constants/model_constants_config.json",
                                            marker, values)
    buffer = io.BytesIO()
    torch.save(((_TensorPayload(marker, torch.rand(2, 3, 32, 32)),), {}), buffer)
    variants["sample inputs"] = {**clean, f"{root}/data/sample_inputs/model.pt":
                                 buffer.getvalue()}
    opaque = dict(clean)
    config = json.loads(opaque[f"{root}/data/constants/model_constants_config.json"])
    for meta in config["config"].values():
        meta["path_name"] = "opaque_obj_0"
    opaque[f"{root}/data/constants/model_constants_config.json"] = json.dumps(config).encode()
    opaque[f"{root}/data/constants/opaque_obj_0"] = pickle.dumps(
        _TensorPayload(marker, values["offset"]))
    variants["opaque object"] = opaque
    program = json.loads(clean[f"{root}/models/model.json"])
    guarded = json.loads(json.dumps(program))
    guarded["guards_code"] = [f"__import__('pathlib').Path({str(marker)!r}).touch()"]
    variants["guard code"] = {**clean, f"{root}/models/model.json": json.dumps(guarded).encode()}
    text = clean[f"{root}/models/model.json"].decode()
    variants["node target"] = {**clean, f"{root}/models/model.json": text.replace(
        '"torch.ops.aten.linear.default"', '"torch.os.system"', 1).encode()}
    variants["shape expression"] = {**clean, f"{root}/models/model.json": re.sub(
        r'"expr_str": "[^"]*"', '"expr_str": "__import__(\'os\').getcwd()"', text,
        count=1).encode()}
    variants["compiled code"] = {**clean, f"{root}/data/aotinductor/model/x.so": b"\x7fELF"}
    for name, members in variants.items():
        assert members != clean, name
    # The same hostile members beside the clean ones under the same names, in both orders:
    # which copy a reader takes is its own choice (zipfile the last, torch another).
    for hostile in ("opaque object", "shape expression"):
        changed = [(n, data) for n, data in variants[hostile].items() if clean.get(n) != data]
        variants[f"repeated names ({hostile} last)"] = [*clean.items(), *changed]
        variants[f"repeated names ({hostile} first)"] = [*changed, *clean.items()]
    return variants


@pytest.mark.parametrize("variant", ["weights", "constants", "sample inputs"])
def test_exported_payloads_would_run_in_torch_itself(tmp_path, variant):
    """The crafted archives are live: torch.export.load runs their payloads, so the refusals
    below are specrobust's doing. (Guard code runs only where torch's configuration turns the
    guards on, and the other ways in fail later in torch; specrobust refuses them all.)"""
    marker = tmp_path / "ran"
    _write_archive(tmp_path / "evil.pt2", _crafted_exports(tmp_path, marker)[variant])
    import logging

    logging.disable(logging.CRITICAL)  # torch's fallback warning is a broken format string
    try:
        torch.export.load(tmp_path / "evil.pt2").module()
    finally:
        logging.disable(logging.NOTSET)
    assert marker.exists()


@pytest.mark.parametrize("variant", ["weights", "constants", "sample inputs", "opaque object",
                                     "guard code", "node target", "shape expression",
                                     "compiled code", "repeated names (opaque object last)",
                                     "repeated names (opaque object first)",
                                     "repeated names (shape expression last)",
                                     "repeated names (shape expression first)"])
def test_crafted_export_archives_run_no_code_however_named(tmp_path, capsys, monkeypatch,
                                                           variant):
    marker = tmp_path / "code-ran"
    members = _crafted_exports(tmp_path, marker)[variant]
    models = tmp_path / "models"
    monkeypatch.setenv("SPECROBUST_MODELS", str(models))
    _write_archive(tmp_path / "evil.pt2", members)
    _write_archive(tmp_path / "weights.pth", members)
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    _write_archive(run / "checkpoints" / "best.pt", members)
    models.mkdir()
    _write_archive(models / "Carmon2019Unlabeled.pt", members)
    common = ["--attacks", "clean", "--n", "4", "--no-checks"]
    for argv in (["eval", str(tmp_path / "evil.pt2"), "--dataset", DATA, *common],
                 ["eval", str(tmp_path / "weights.pth"), "--model", "cnn_small", "--dataset",
                  DATA, *common],
                 ["eval", str(run), *common],
                 ["eval", "Carmon2019Unlabeled", *common],
                 ["fetch-model", "Carmon2019Unlabeled"],
                 ["analyze", str(tmp_path / "evil.pt2"), "--dataset", DATA, "--parts",
                  "kernels"]):
        before = snapshot(tmp_path)
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and not marker.exists(), (argv, err)
        assert snapshot(tmp_path) == before
        tried("model files", intact_checked=True)


def test_a_clean_export_still_loads_after_the_checks(tmp_path):
    from specrobust.loading import ModelSource, resolve

    _exported_archive(tmp_path / "clean.pt2")[0]
    loaded = resolve(ModelSource(str(tmp_path / "clean.pt2"), dataset=DATA))
    x = torch.rand(3, 3, 32, 32)
    reference = torch.export.load(tmp_path / "clean.pt2").module()
    with torch.no_grad():
        assert torch.equal(loaded.model(x), reference(x))
    tried("model files")


def test_programs_and_pickles_given_as_weights_are_refused(tmp_path, capsys):
    """A file's kind comes from its content and must agree with how it was named."""
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 32 * 32, 10)).eval()
    torch.jit.save(torch.jit.script(net), tmp_path / "scripted.pth")
    (tmp_path / "plain.pkl").write_bytes(pickle.dumps({"w": [1.0]}, protocol=4))
    common = ["--dataset", DATA, "--attacks", "clean", "--n", "4"]
    with intact(tmp_path):
        assert "TorchScript program, not a weights file" in refused(
            capsys, ["eval", tmp_path / "scripted.pth", "--model", "cnn_small", *common])
        assert "plain Python pickle" in refused(
            capsys, ["eval", tmp_path / "plain.pkl", "--model", "cnn_small", *common])
    tried("model files", intact_checked=True)
    tried("model files", intact_checked=True)


@pytest.mark.parametrize("damage, message", [
    (lambda sd: sd["net.classifier.1.weight"].fill_(float("nan")), "NaN or infinite"),
    (lambda sd: sd.__setitem__("net.classifier.1.bias",
                               sd["net.classifier.1.bias"].to(torch.complex64)), "complex"),
    (lambda sd: sd["normalize.std"].fill_(float("nan")), "NaN or infinite"),
])
def test_weights_a_model_cannot_compute_with_are_refused(tmp_path, capsys, damage, message):
    state = create_model("cnn_small", 10, mean=(0.5,) * 3, std=(0.2,) * 3).state_dict()
    damage(state)
    torch.save(state, tmp_path / "w.pt")
    with intact(tmp_path):
        assert message in refused(capsys, ["eval", tmp_path / "w.pt", "--model", "cnn_small",
                                           "--dataset", DATA, "--attacks", "clean", "--n", "4"])
    tried("model files", intact_checked=True)


USER_CODE = '''
import sys
import torch


class IntegerLogits(torch.nn.Module):
    def forward(self, x):
        return torch.zeros(len(x), 10, dtype=torch.long)


def integer_logits():
    return IntegerLogits()


def exits():
    sys.exit(0)


def base_exception():
    raise BaseException("not an Exception")
'''


@pytest.mark.parametrize("factory, message", [
    ("integer_logits", "torch.int64 logits"),
    ("exits", "raised SystemExit"),
    ("base_exception", "raised BaseException: not an Exception"),
])
def test_user_code_that_misbehaves_is_one_line(tmp_path, capsys, factory, message):
    (tmp_path / "arch.py").write_text(USER_CODE)
    with intact(tmp_path):
        assert message in refused(capsys, ["eval", f"--model={tmp_path}/arch.py:{factory}",
                                           "--dataset", DATA, "--attacks", "clean", "--n", "4"])
    tried("model files", intact_checked=True)


# ---- names that become paths, and plans -----------------------------------------------------


def _plan(tmp_path: Path, body: str) -> Path:
    from tests_support import tiny_recipe

    recipe = tiny_recipe(tmp_path / "recipe")
    plan = tmp_path / "plan.yaml"
    plan.write_text(f"name: p\neps: 8/255\nout: {tmp_path / 'study'}\nattacks: clean\n"
                    + body.replace("RECIPE", str(recipe)))
    return plan


@pytest.mark.parametrize("body, message", [
    ("runs: {'../..': {recipe: RECIPE}}\nmethods: {AT: ['../..', best]}\n", "one path"),
    ("runs: {/tmp/elsewhere: {recipe: RECIPE}}\nmethods: {AT: [/tmp/elsewhere, best]}\n",
     "one path"),
    ("runs: {a/b: {recipe: RECIPE}}\nmethods: {AT: [a/b, best]}\n", "one path"),
    ("runs: {'..': {recipe: RECIPE}}\nmethods: {AT: ['..', best]}\n", "one path"),
    ("runs: {at: {recipe: RECIPE}, at: {recipe: RECIPE}}\nmethods: {AT: [at, best]}\n",
     "appears twice"),
    ("runs: {1: {recipe: RECIPE}, '1': {recipe: RECIPE}}\nmethods: {AT: ['1', best]}\n",
     "one path"),
    ("runs: {at: {recipe: RECIPE}}\nmethods: {AT: [at, best], AT: [at, last]}\n",
     "appears twice"),
    ("runs: {at: {recipe: RECIPE}}\nmethods: {AT: [at, best]}\nreference: {root: x, methods: "
     "{AT: [at, best]}}\n", "labelled 'AT'"),
    ("runs: {at: {recipe: RECIPE}}\nmethods: {a/b: [at, best]}\n", "method label"),
    ("runs: {at: {recipe: RECIPE, branch_from: 3}}\nmethods: {AT: [at, best]}\n",
     "branches from '3'"),
    ("runs: {at: {recipe: RECIPE}}\nmethods: {AT: [at, best]}\ncomparisons: AT\n",
     "comparisons must be a list"),
    ("runs: {at: {recipe: RECIPE}}\nmethods: {AT: [at, best]}\nreference: [1]\n",
     "reference must be a mapping"),
    ("runs: {at: {recipe: RECIPE}}\nmethods: {AT: [at, best]}\nreport: {reference: BT}\n",
     "report.reference"),
    ("runs: {at: {recipe: RECIPE}}\nmethods: {AT: [at, best]}\nseeds: [18446744073709551616]\n",
     "2**63"),
    ("runs: {at: {recipe: RECIPE, sett: []}}\nmethods: {AT: [at, best]}\n",
     "unknown plan key runs.at.sett"),
    ("runs: {at: {recipe: RECIPE}}\nmethods: {AT: [at, best]}\nprogress: maybe\n",
     "true or false"),
])
def test_plans_are_checked_whole_before_any_work(tmp_path, capsys, body, message):
    plan = _plan(tmp_path, body)
    plan.write_text(plan.read_text().replace("eps: 8/255\n", "eps: 8/255\n", 1))
    with intact(tmp_path, Path("/tmp/elsewhere")):
        assert message in refused(capsys, ["study", plan])
    assert not (tmp_path / "study").exists()
    tried("plans", intact_checked=True)


def test_a_plans_budget_is_read_with_the_plan(tmp_path, capsys):
    plan = _plan(tmp_path, "runs: {at: {recipe: RECIPE}}\nmethods: {AT: [at, best]}\n")
    plan.write_text(plan.read_text().replace("eps: 8/255", "eps: abc"))
    with intact(tmp_path):
        err = refused(capsys, ["study", plan])
    assert "plan.yaml: " in err and "eps" in err and "--eps" not in err
    tried("plans", intact_checked=True)


def test_directories_given_as_plans_or_recipes(tmp_path, capsys):
    (tmp_path / "plan.yaml").mkdir()
    with intact(tmp_path):
        assert "is a directory" in refused(capsys, ["study", tmp_path / "plan.yaml"])
        assert "is a directory" in refused(capsys, ["train", tmp_path / "plan.yaml", "--out",
                                                    tmp_path / "r"])
    tried("plans", intact_checked=True)
    tried("plans", intact_checked=True)


def test_branching_from_a_run_that_does_not_exist(tmp_path, capsys):
    from tests_support import tiny_recipe

    recipe = tiny_recipe(tmp_path / "recipe")
    err = refused(capsys, ["train", recipe, "--out", tmp_path / "r", "--branch-from",
                           tmp_path / "nothing", "--branch-epoch", "1"])
    assert "not a run directory" in err
    tried("plans")


# ---- bounded work on hostile input ------------------------------------------------------------

_DEEP_JSON = "[" * 5000 + "]" * 5000
_DEEP_YAML = "a: " + "[" * 5000 + "]" * 5000 + "\n"


def test_deeply_nested_records_are_one_line(tmp_path, capsys, checkpoint):
    run = fresh_run(checkpoint, tmp_path)
    (run / "eval.json").write_text('{"format": "specrobust-eval", "x": ' + _DEEP_JSON + "}")
    (run / "analysis").mkdir()
    (run / "analysis" / "kernels.json").write_text(_DEEP_JSON)
    (run / "analysis" / "summary.json").write_text(_DEEP_JSON)
    with intact(run):
        refused(capsys, ["report", run, "-o", tmp_path / "r.html"])
        refused(capsys, ["eval", run, "--attacks", "clean", "--n", "4"])
    assert "nested" in refused(capsys, ["eval", run, "--model-args", _DEEP_JSON])
    for _ in range(3):
        tried("bounded input", intact_checked=True)


def test_deeply_nested_and_self_multiplying_yaml_is_one_line(tmp_path, capsys):
    (tmp_path / "deep.yaml").write_text(_DEEP_YAML)
    bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, "
        f"*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, "
        f"*{chr(97 + i)}, *{chr(97 + i)}]\n" for i in range(8))
    (tmp_path / "bomb.yaml").write_text(bomb)
    with intact(tmp_path):
        for name in ("deep.yaml", "bomb.yaml"):
            refused(capsys, ["study", tmp_path / name])
            refused(capsys, ["train", tmp_path / name, "--out", tmp_path / "r"])
            tried("bounded input", intact_checked=True)
            tried("bounded input", intact_checked=True)
    assert "nested" in refused(capsys, ["train", tmp_path / "deep.yaml", "--out", tmp_path / "r",
                                        "--set", "seed=" + "[" * 5000 + "]" * 5000])


def test_a_huge_file_posing_as_a_figure_is_not_read(tmp_path, capsys, checkpoint):
    """A 2 GB sparse file with a real PNG header, named curves.png: the report neither embeds
    nor reads it (its size is checked first)."""
    run = fresh_run(checkpoint, tmp_path)
    assert main(["analyze", str(run), "--parts", "kernels", "--n", "4"]) == 0
    with open(run / "curves.png", "wb") as out:
        out.write(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
        out.truncate(2 << 30)
    assert main(["report", str(run), "-o", str(tmp_path / "r.html")]) == 0
    assert (tmp_path / "r.html").stat().st_size < 10 << 20
    tried("bounded input")


# ---- outputs: locks, tables, leftovers ---------------------------------------------------------


def test_a_dangling_lock_link_is_not_followed(tmp_path, capsys, checkpoint):
    run = fresh_run(checkpoint, tmp_path)
    (run / ".eval.json.lock").symlink_to(tmp_path / "created-elsewhere")
    with intact(tmp_path):
        assert "symbolic link" in refused(capsys, ["eval", run, "--attacks", "clean", "--n",
                                                   "4"])
    assert not (tmp_path / "created-elsewhere").exists()
    tried("outputs", intact_checked=True)


def test_a_users_own_markdown_beside_a_record_is_kept(tmp_path, capsys, checkpoint):
    run = fresh_run(checkpoint, tmp_path)
    assert main(["eval", str(run), "--attacks", "clean", "--n", "4", "--no-checks"]) == 0
    (run / "eval.md").write_text("# my notes about this run\n")
    with intact(tmp_path):
        assert "not an evaluation table" in refused(
            capsys, ["eval", run, "--attacks", "clean,fgsm", "--n", "4", "--no-checks"])
    tried("outputs", intact_checked=True)


def test_leftovers_of_killed_writes_never_block_the_next_command(tmp_path, capsys, checkpoint):
    """What a kill -9 leaves between a temporary file and its rename: the next command that
    owns the place goes on, and removes the leftovers it owns."""
    from tests_support import tiny_recipe

    recipe = tiny_recipe(tmp_path / "recipe")
    train_run = tmp_path / "trained"
    assert main(["train", str(recipe), "--out", str(train_run), "--set", "optim.epochs=2",
                 "--set", "optim.epochs=1"]) == 0
    leftovers = [train_run / ".config.yaml.specrobust-partial-x1",
                 train_run / "checkpoints" / ".last.pt.specrobust-partial-x2"]
    for leftover in leftovers:
        leftover.write_bytes(b"half")
    assert main(["train", str(recipe), "--out", str(train_run), "--resume", "--set",
                 "optim.epochs=1"]) == 0
    assert not any(p.exists() for p in leftovers)
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    (fresh / ".config.yaml.specrobust-partial-x3").write_bytes(b"half")
    assert main(["train", str(recipe), "--out", str(fresh)]) == 0
    run = fresh_run(checkpoint, tmp_path)
    (run / ".eval.json.specrobust-partial-x4").write_bytes(b"half")
    (run / "analysis").mkdir()
    (run / "analysis" / ".kernels.json.specrobust-partial-x5").write_bytes(b"half")
    assert main(["eval", str(run), "--attacks", "clean", "--n", "4", "--no-checks"]) == 0
    assert main(["analyze", str(run), "--parts", "kernels", "--n", "4"]) == 0
    assert not list(run.rglob("*specrobust-partial*"))
    for _ in range(3):
        tried("kills")


# ---- faults of the environment, and damaged data -----------------------------------------------


def test_training_onto_a_full_disk_is_one_line(tmp_path, capsys):
    from tests_support import tiny_recipe

    recipe = tiny_recipe(tmp_path / "recipe")
    with small_filesystem(tmp_path / "fs", 300) as fs:
        if fs is None:
            pytest.skip("needs a small tmpfs (root on Linux)")
        assert "ENOSPC" in refused(capsys, ["train", recipe, "--out", fs / "run"])
    tried("filesystem")


def test_labels_outside_the_classes_name_the_data(tmp_path):
    from formats_on_disk import random_images, write_idx_dataset
    from specrobust.data import load_dataset

    images = random_images(6, (1, 28, 28))
    labels = np.array([0, 1, 2, 12, 3, 4], dtype=np.uint8)
    write_idx_dataset(tmp_path / "fm/FashionMNIST/raw", {"train": (images, labels),
                                                          "t10k": (images, labels)},
                      compress=False)
    with pytest.raises(SpecRobustError, match="labels hold 12, outside .* classes 0-9"):
        load_dataset("fashion-mnist", tmp_path / "fm")
    tried("formats")


def test_a_tiny_imagenet_cache_with_a_damaged_header_is_rebuilt(tmp_path):
    pytest.importorskip("PIL")
    from formats_on_disk import write_tiny_imagenet
    from specrobust.data.formats import read_tiny_imagenet

    colours = np.random.default_rng(0).integers(0, 256, size=(6, 3, 1, 1), dtype=np.uint8)
    images = np.broadcast_to(colours, (6, 3, 64, 64)).copy()
    labels = np.arange(6) % 2
    root = write_tiny_imagenet(tmp_path, (images[:4], labels[:4]), (images[4:], labels[4:]),
                               ["n01443537", "n01629819"])
    train, _ = read_tiny_imagenet(root)
    cache = next(root.glob(".specrobust-train-*.npy"))
    data = bytearray(cache.read_bytes())
    header_end = data.index(b"\n") + 1
    header = data[:header_end].replace(b"(", b"(99999999999, ", 1)
    cache.write_bytes(bytes(header[:header_end]) + bytes(data[header_end:]))
    again, _ = read_tiny_imagenet(root)
    assert torch.equal(again.images, train.images)
    tried("formats")


def test_lock_files_are_removed_by_whoever_releases_them(tmp_path):
    from specrobust.files import locks

    target = tmp_path / ".out.json.lock"
    with locks.held(target, locks.InUseError("busy"), create=True):
        assert target.is_file()
        with pytest.raises(locks.InUseError):
            locks.claim(target, locks.InUseError("busy"), create=True)
    with locks.waited(target):
        assert target.is_file()
    assert list(tmp_path.iterdir()) == []


def test_lock_files_removed_on_release_still_exclude_under_contention(tmp_path):
    # Waiters block on the descriptor of a file the holder then removes; each must notice and
    # lock the new file, or two would be inside at once. (flock locks belong to open file
    # descriptions, so threads opening the file separately contend like processes.)
    import threading
    import time

    from specrobust.files import locks

    target, inside, overlaps = tmp_path / ".x.lock", [0], []

    def worker():
        for _ in range(25):
            with locks.waited(target):
                inside[0] += 1
                if inside[0] > 1:
                    overlaps.append(inside[0])
                time.sleep(0.0005)
                inside[0] -= 1

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert overlaps == [] and not target.exists()
