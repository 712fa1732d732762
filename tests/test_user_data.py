"""The user's own data: folders of images and .npz arrays give the same results, example by
example, as the built-in readers on the same images; their mistakes end in one line naming the
file; and (marker `scale`) a ResNet-50 at 224 pixels goes through eval, analyze and report."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from formats_on_disk import random_images, random_labels, write_cifar10_binary, write_idx_dataset
from specrobust.cli import main
from specrobust.models import create_model

ATTACKS = "clean,pgd:steps=3,random_start=0"  # no random draw: batches may differ by source


def _write_folder(root: Path, images: np.ndarray, labels: np.ndarray, names) -> None:
    from PIL import Image

    for index, (image, label) in enumerate(zip(images, labels, strict=True)):
        folder = root / names[label]
        folder.mkdir(parents=True, exist_ok=True)
        pixels = image[0] if image.shape[0] == 1 else image.transpose(1, 2, 0)
        Image.fromarray(pixels).save(folder / f"{index:05d}.png")  # PNG: lossless


def _outcomes(record: Path) -> dict[str, str]:
    data = json.loads(record.read_text())
    return dict(data["per_example"])


def _folder_order(root: Path) -> list[int]:
    """The original index of each image in the order the folder reader yields them."""
    from specrobust.data import user

    split = user._folder_splits(user.UserData("folder", root))["test"]
    return [int(path.stem) for path, _ in split.files]


@pytest.mark.parametrize("layout", ["cifar10", "mnist"])
def test_folders_and_arrays_give_the_built_in_readers_results(tmp_path, capsys, layout):
    pytest.importorskip("PIL")
    shape = (3, 32, 32) if layout == "cifar10" else (1, 28, 28)
    test = (random_images(40, shape, 7), random_labels(40, 10, 7))
    train = (random_images(20, shape, 8), random_labels(20, 10, 8))
    if layout == "cifar10":
        write_cifar10_binary(tmp_path / "root", train, test)
    else:
        write_idx_dataset(tmp_path / "root" / "MNIST" / "raw",
                          {"train": train, "t10k": test}, compress=False)
    names = [f"c{k}" for k in range(10)]
    _write_folder(tmp_path / "folder", *test, names)
    np.savez(tmp_path / "arrays.npz", x=test[0].transpose(0, 2, 3, 1), y=test[1])  # NHWC
    torch.manual_seed(3)
    torch.save(create_model("cnn_small", 10, shape[0]).state_dict(), tmp_path / "w.pt")
    results = {}
    for name, dataset in (("built-in", layout), ("folder", f"folder:{tmp_path / 'folder'}"),
                          ("npz", f"npz:{tmp_path / 'arrays.npz'}")):
        out = tmp_path / f"{name}.json"
        assert main(["eval", str(tmp_path / "w.pt"), "--model", "cnn_small", "--dataset",
                     dataset, "--data-root", str(tmp_path / "root"), "--attacks", ATTACKS,
                     "--eps", "8/255", "--n", "40", "--no-checks", "--out", str(out)]) == 0
        results[name] = _outcomes(out)
        assert json.loads(out.read_text())["dataset"] == dataset  # the record says what it saw
    assert results["npz"] == results["built-in"]
    order = _folder_order(tmp_path / "folder")
    assert sorted(order) == list(range(40))
    for label, bits in results["folder"].items():
        original = ["?"] * 40
        for position, index in enumerate(order):
            original[index] = bits[position]
        assert "".join(original) == results["built-in"][label], label
    capsys.readouterr()


def test_the_first_test_images_of_a_folder_cover_the_classes_in_turn(tmp_path):
    pytest.importorskip("PIL")
    from specrobust.data import load_dataset

    images, labels = random_images(12, (3, 8, 8), 1), np.array([0] * 6 + [1] * 3 + [2] * 3)
    _write_folder(tmp_path / "d" / "test", images, labels, ["a", "b", "c"])
    _write_folder(tmp_path / "d" / "train", images, labels, ["a", "b", "c"])
    dataset = load_dataset(f"folder:{tmp_path / 'd'}", first_test=5)
    assert dataset.test.labels.tolist() == [0, 1, 2, 0, 1] and len(dataset.train) == 0
    assert dataset.class_names == ("a", "b", "c")
    whole = load_dataset(f"folder:{tmp_path / 'd'}")
    assert len(whole.train) == 12 and len(whole.test) == 12
    resized = load_dataset(f"folder:{tmp_path / 'd'},size=4,resize=6", first_test=2)
    assert tuple(resized.test.images.shape) == (2, 3, 4, 4)


def test_a_model_of_one_dataset_on_the_users_data_of_the_same_shape(tmp_path, capsys):
    from specrobust.checkpoint import save_checkpoint

    save_checkpoint(tmp_path / "run" / "checkpoints" / "best.pt",
                    create_model("cnn_small", 10, 3), dataset="cifar10", eps="8/255")
    np.savez(tmp_path / "mine.npz", x=random_images(8, (3, 32, 32), 2),
             y=random_labels(8, 10, 2))
    mine = f"npz:{tmp_path / 'mine.npz'},classes=10"
    assert main(["eval", str(tmp_path / "run"), "--dataset", mine, "--attacks", "clean", "--n",
                 "8", "--no-checks"]) == 0
    record = json.loads((tmp_path / "run" / "eval.json").read_text())
    assert record["dataset"] == mine and record["eps_text"] == "8/255"
    np.savez(tmp_path / "grey.npz", x=random_images(8, (1, 32, 32), 2)[:, 0],
             y=random_labels(8, 10, 2))
    grey = f"npz:{tmp_path / 'grey.npz'},classes=10"
    assert main(["eval", str(tmp_path / "run"), "--dataset", grey, "--attacks", "clean",
                 "--n", "8"]) == 2
    assert "cannot take" in capsys.readouterr().err


def _one_line(capsys, argv) -> str:
    capsys.readouterr()
    assert main([str(a) for a in argv]) == 2, argv
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    return err


def test_data_mistakes_end_in_one_line_naming_the_file(tmp_path, capsys):
    pytest.importorskip("PIL")
    from PIL import Image

    torch.save(create_model("cnn_small", 2, 3).state_dict(), tmp_path / "w.pt")
    common = ["--model", "cnn_small", "--attacks", "clean", "--eps", "8/255", "--n", "4"]
    (tmp_path / "bad" / "a").mkdir(parents=True)
    (tmp_path / "bad" / "b").mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / "bad" / "a" / "0.png")
    (tmp_path / "bad" / "b" / "0.png").write_bytes(b"\x89PNG not really")
    assert "0.png" in _one_line(capsys, ["eval", tmp_path / "w.pt", "--dataset",
                                         f"folder:{tmp_path / 'bad'}", *common])
    (tmp_path / "bad" / "b" / "0.png").unlink()
    assert "holds no PNG or JPEG" in _one_line(capsys, ["eval", tmp_path / "w.pt", "--dataset",
                                                        f"folder:{tmp_path / 'bad'}", *common])
    Image.new("RGB", (9, 8)).save(tmp_path / "bad" / "b" / "1.png")
    assert "size=" in _one_line(capsys, ["eval", tmp_path / "w.pt", "--dataset",
                                         f"folder:{tmp_path / 'bad'}", *common])
    np.savez(tmp_path / "labels.npz", x=random_images(4, (3, 8, 8), 1), y=np.array([0, 1, 2, -1]))
    assert "labels.npz" in _one_line(capsys, ["eval", tmp_path / "w.pt", "--dataset",
                                              f"npz:{tmp_path / 'labels.npz'},classes=2",
                                              *common])
    np.savez(tmp_path / "floats.npz", x=np.zeros((4, 8, 8, 3)), y=np.zeros(4, dtype=int))
    assert "uint8" in _one_line(capsys, ["eval", tmp_path / "w.pt", "--dataset",
                                         f"npz:{tmp_path / 'floats.npz'}", *common])
    np.savez(tmp_path / "keys.npz", images=np.zeros((4, 8, 8, 3), dtype=np.uint8))
    assert "expected x" in _one_line(capsys, ["eval", tmp_path / "w.pt", "--dataset",
                                              f"npz:{tmp_path / 'keys.npz'}", *common])
    assert "does not exist" in _one_line(capsys, ["eval", tmp_path / "w.pt", "--dataset",
                                                  f"folder:{tmp_path / 'nothing'}", *common])
    with zipfile.ZipFile(tmp_path / "header.npz", "w") as archive:  # a damaged array header
        archive.writestr("x.npy", b"\x93NUMPY\x01\x00\xff\xff{'descr': '|u1'")
        archive.writestr("y.npy", b"\x93NUMPY")
    assert "header.npz" in _one_line(capsys, ["eval", tmp_path / "w.pt", "--dataset",
                                              f"npz:{tmp_path / 'header.npz'}", *common])
    np.savez(tmp_path / "ok.npz", x=random_images(4, (3, 8, 8), 1), y=np.array([0, 1, 1, 0]))
    assert "no usual" in _one_line(capsys, ["eval", tmp_path / "w.pt", "--dataset",
                                            f"npz:{tmp_path / 'ok.npz'}", "--model", "cnn_small",
                                            "--attacks", "clean"])


def test_imagenet_is_read_from_the_data_root_given(tmp_path, capsys):
    """The model's check on blank images reads the dataset's shape where --data-root says,
    as the evaluation reads the images; a label file that lists nothing is one line."""
    torch.save(create_model("imagenet_resnet50", 1000).net.state_dict(), tmp_path / "r50.pt")
    val = tmp_path / "root" / "imagenet" / "val"
    val.mkdir(parents=True)
    (val / "val.txt").write_text("\n")
    error = _one_line(capsys, ["eval", tmp_path / "r50.pt", "--model", "imagenet_resnet50",
                               "--dataset", "imagenet", "--data-root", tmp_path / "root",
                               "--attacks", "clean", "--n", "2"])
    assert f"{val / 'val.txt'} lists no images" in error


@pytest.mark.scale
def test_a_resnet50_at_224_pixels_through_eval_analyze_and_report(tmp_path, capsys):
    """CI-sized: two classes of two images, a coarse heat-map grid; the figures are written at
    the size a report shows them."""
    pytest.importorskip("PIL")
    from PIL import Image

    for label in ("cat", "dog"):
        (tmp_path / "val" / label).mkdir(parents=True)
        for index in range(2):
            pixels = np.random.default_rng(index).integers(0, 256, (300, 260, 3), np.uint8)
            Image.fromarray(pixels).save(tmp_path / "val" / label / f"{index}.jpg")
    torch.manual_seed(0)
    torch.save(create_model("imagenet_resnet50", 2).net.state_dict(), tmp_path / "r50.pt")
    source = [str(tmp_path / "r50.pt"), "--model", "imagenet_resnet50", "--dataset",
              f"folder:{tmp_path / 'val'},size=224,resize=256", "--eps", "4/255", "--n", "4",
              "--batch-size", "4"]
    assert main(["eval", *source, "--attacks", "clean,pgd:steps=2", "--check-n", "2"]) == 0
    assert main(["analyze", *source, "--heatmap-stride", "56", "--heatmap-n", "2"]) == 0
    analysis = tmp_path / "r50-analysis"
    spectra = json.loads((analysis / "spectra.json").read_text())
    assert spectra["radii"][:3] == [0, 7, 14]  # rings in proportion to the image
    low = json.loads((analysis / "filter.json").read_text())["lowpass"]["bandwidths"]
    assert low == [224, 196, 168, 140, 112, 84, 56, 28]
    heatmap = json.loads((analysis / "heatmap.json").read_text())
    assert len(heatmap["error_rate"]) == 4
    assert main(["report", str(tmp_path / "r50.pt"), "-o", str(tmp_path / "r.html")]) == 0
    assert (tmp_path / "r.html").stat().st_size > 10_000
