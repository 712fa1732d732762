"""Every reader, on small files written in the real on-disk formats, through the public API."""

import gzip
import os
import pickle

import numpy as np
import pytest
import torch

from formats_on_disk import (
    random_images,
    random_labels,
    write_cifar10_binary,
    write_cifar10_python,
    write_cifar100_binary,
    write_cifar100_python,
    write_idx_dataset,
    write_svhn,
    write_tiny_imagenet,
)
from specrobust.data import load_dataset, verify_dataset
from specrobust.errors import SpecRobustError


def _pair(n, shape, classes, seed):
    return random_images(n, shape, seed), random_labels(n, classes, seed)


def _assert_split(split, images, labels):
    assert split.images.dtype == torch.uint8 and split.labels.dtype == torch.int64
    assert torch.equal(split.images, torch.from_numpy(images))
    assert torch.equal(split.labels, torch.from_numpy(labels.astype(np.int64)))


@pytest.mark.parametrize("compress", [True, False])
@pytest.mark.parametrize("name,folder", [("fashion-mnist", "FashionMNIST/raw"),
                                         ("mnist", "MNIST/raw")])
def test_idx_round_trip(tmp_path, compress, name, folder):
    train, test = _pair(30, (1, 28, 28), 10, 1), _pair(20, (1, 28, 28), 10, 2)
    write_idx_dataset(tmp_path / folder, {"train": train, "t10k": test}, compress)
    dataset = load_dataset(name, tmp_path)
    _assert_split(dataset.train, *train)
    _assert_split(dataset.test, *test)


@pytest.mark.parametrize("name,classes,writers", [
    ("cifar10", 10, (write_cifar10_binary, write_cifar10_python)),
    ("cifar100", 100, (write_cifar100_binary, write_cifar100_python)),  # fine labels
])
def test_cifar_binary_and_python_layouts_read_the_same_images(tmp_path, name, classes, writers):
    train, test = _pair(30, (3, 32, 32), classes, 3), _pair(12, (3, 32, 32), classes, 4)
    for folder, write in zip(("bin", "py"), writers, strict=True):
        write(tmp_path / folder, train, test)
        dataset = load_dataset(name, tmp_path / folder)
        _assert_split(dataset.train, *train)
        _assert_split(dataset.test, *test)
        assert len(dataset.class_names) == classes


@pytest.mark.parametrize("folder", ["svhn", "."])
def test_svhn_mat_maps_label_10_to_digit_0(tmp_path, folder):
    train, test = _pair(20, (3, 32, 32), 10, 7), _pair(10, (3, 32, 32), 10, 8)
    write_svhn(tmp_path / folder, train, test)
    dataset = load_dataset("svhn", tmp_path)
    _assert_split(dataset.train, *train)
    _assert_split(dataset.test, *test)
    assert (dataset.train.labels == 0).any()


def test_tiny_imagenet_folders_and_val_annotations(tmp_path):
    wnids = ["n01443537", "n01629819", "n01641577"]
    # Flat colours survive JPEG almost exactly, so pixels can be compared.
    colours = np.random.default_rng(0).integers(0, 256, size=(12, 3, 1, 1), dtype=np.uint8)
    images = np.broadcast_to(colours, (12, 3, 64, 64)).copy()
    labels = np.arange(12) % 3
    write_tiny_imagenet(tmp_path, (images[:9], labels[:9]), (images[9:], labels[9:]), wnids)
    dataset = load_dataset("tinyimagenet", tmp_path)
    assert dataset.train.images.shape == (9, 3, 64, 64)
    assert dataset.test.images.shape == (3, 3, 64, 64)
    assert sorted(dataset.train.labels.tolist()) == sorted(labels[:9].tolist())
    assert dataset.test.labels.tolist() == labels[9:].tolist()
    diff = (dataset.test.images.int() - torch.from_numpy(images[9:]).int()).abs().max()
    assert diff <= 3
    assert dataset.class_names == ("thing 0", "thing 1", "thing 2")
    # Second load comes from the decoded cache and gives the same arrays.
    again = load_dataset("tinyimagenet", tmp_path)
    assert torch.equal(again.train.images, dataset.train.images)
    assert list((tmp_path / "tiny-imagenet-200").glob(".specrobust-*.npy"))


class _RunsCode:
    """Unpickling this would call os.system: the classic malicious pickle."""

    def __init__(self, command):
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


def test_pickled_batch_that_would_execute_code_is_refused(tmp_path):
    train, test = _pair(10, (3, 32, 32), 10, 9), _pair(10, (3, 32, 32), 10, 10)
    directory = write_cifar10_python(tmp_path, train, test)
    sentinel = tmp_path / "pwned"
    evil = {b"data": _RunsCode(f"touch {sentinel}"), b"labels": [0]}
    (directory / "data_batch_3").write_bytes(pickle.dumps(evil, protocol=2))
    with pytest.raises(SpecRobustError, match=r"refusing to load .*data_batch_3.*posix\.system"):
        load_dataset("cifar10", tmp_path)
    assert not sentinel.exists(), "the pickle's payload ran"


def test_truncated_files_give_one_line_errors_naming_the_file(tmp_path):
    train, test = _pair(10, (3, 32, 32), 10, 11), _pair(10, (3, 32, 32), 10, 12)
    directory = write_cifar10_binary(tmp_path / "c10", train, test)
    batch = directory / "data_batch_2.bin"
    batch.write_bytes(batch.read_bytes()[:-100])
    with pytest.raises(SpecRobustError, match="data_batch_2.bin is truncated") as error:
        load_dataset("cifar10", tmp_path / "c10")
    assert "\n" not in str(error.value)

    idx_splits = {"train": _pair(10, (1, 28, 28), 10, 1), "t10k": _pair(5, (1, 28, 28), 10, 2)}
    write_idx_dataset(tmp_path / "fm/FashionMNIST/raw", idx_splits, compress=True)
    gz = tmp_path / "fm/FashionMNIST/raw/train-images-idx3-ubyte.gz"
    gz.write_bytes(gz.read_bytes()[:40])
    with pytest.raises(SpecRobustError, match="train-images-idx3-ubyte.gz.*truncated"):
        load_dataset("fashion-mnist", tmp_path / "fm")

    plain = tmp_path / "fm2/FashionMNIST/raw"
    write_idx_dataset(plain, idx_splits, compress=False)
    labels = plain / "t10k-labels-idx1-ubyte"
    labels.write_bytes(labels.read_bytes()[:-2])
    with pytest.raises(SpecRobustError, match="t10k-labels-idx1-ubyte is truncated"):
        load_dataset("fashion-mnist", tmp_path / "fm2")

    python_dir = write_cifar10_python(tmp_path / "py", train, test)
    pickled = python_dir / "test_batch"
    pickled.write_bytes(pickled.read_bytes()[:500])
    with pytest.raises(SpecRobustError, match="test_batch: truncated or corrupt"):
        load_dataset("cifar10", tmp_path / "py")

    write_svhn(tmp_path / "sv", train, test)
    mat = tmp_path / "sv/train_32x32.mat"
    mat.write_bytes(mat.read_bytes()[:300])
    with pytest.raises(SpecRobustError, match="train_32x32.mat: truncated or corrupt"):
        load_dataset("svhn", tmp_path / "sv")


def test_corrupt_gzip_and_wrong_magic(tmp_path):
    folder = tmp_path / "MNIST/raw"
    write_idx_dataset(folder, {"train": _pair(4, (1, 28, 28), 10, 1),
                               "t10k": _pair(4, (1, 28, 28), 10, 2)}, compress=True)
    (folder / "t10k-images-idx3-ubyte.gz").write_bytes(b"\x1f\x8b" + b"garbage" * 10)
    with pytest.raises(SpecRobustError, match="t10k-images-idx3-ubyte.gz"):
        load_dataset("mnist", tmp_path)
    (folder / "t10k-images-idx3-ubyte.gz").write_bytes(gzip.compress(b"\x12\x34\x56\x78" * 4))
    with pytest.raises(SpecRobustError, match="bad magic"):
        load_dataset("mnist", tmp_path)


def test_verify_reports_checksum_mismatch_for_files_that_are_not_the_official_ones(tmp_path):
    train, test = _pair(10, (3, 32, 32), 10, 13), _pair(10, (3, 32, 32), 10, 14)
    write_cifar10_binary(tmp_path, train, test)
    report = verify_dataset("cifar10", tmp_path)
    assert [c.status for c in report.files] == ["mismatch"] * 6
    assert (report.train, report.test) == (10, 10)
    assert not report.ok


def test_missing_dataset_error_lists_files_and_where_to_put_them(tmp_path):
    with pytest.raises(SpecRobustError) as error:
        load_dataset("cifar100", tmp_path)
    message = str(error.value)
    assert "train.bin, test.bin" in message and str(tmp_path / "cifar-100-binary") in message
    assert "specrobust data fetch cifar100" in message and "\n" not in message
