"""Writers for tiny datasets in the real on-disk formats, for the tests (not part of the product).

Each writer takes uint8 NCHW images and labels and lays them out exactly as the official
releases do, so the readers are exercised on the genuine byte layouts.
"""

from __future__ import annotations

import gzip
import pickle
import struct
from pathlib import Path

import numpy as np


def random_images(n: int, shape: tuple[int, int, int], seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(n, *shape), dtype=np.uint8)


def random_labels(n: int, classes: int, seed: int = 0) -> np.ndarray:
    return (np.arange(n) % classes)[np.random.default_rng(seed + 1).permutation(n)].astype(np.uint8)


def idx_bytes(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(struct.pack(">I", d) for d in array.shape)
    return header + array.astype(np.uint8).tobytes()


def write_idx_dataset(directory: Path, splits: dict[str, tuple[np.ndarray, np.ndarray]],
                      compress: bool) -> None:
    """``splits``: {"train": (images N1HW, labels), "t10k": (...)}."""
    directory.mkdir(parents=True, exist_ok=True)
    for prefix, (images, labels) in splits.items():
        for kind, array in (("images-idx3", images[:, 0]), ("labels-idx1", labels)):
            name = f"{prefix}-{kind}-ubyte"
            data = idx_bytes(array)
            if compress:
                (directory / f"{name}.gz").write_bytes(gzip.compress(data))
            else:
                (directory / name).write_bytes(data)


def cifar_binary_bytes(images: np.ndarray, labels: np.ndarray, coarse: np.ndarray | None = None):
    rows = [labels[:, None]] if coarse is None else [coarse[:, None], labels[:, None]]
    rows.append(images.reshape(len(images), -1))
    return np.concatenate(rows, axis=1).astype(np.uint8).tobytes()


def write_cifar10_binary(root: Path, train, test) -> Path:
    directory = root / "cifar-10-batches-bin"
    directory.mkdir(parents=True)
    chunks = np.array_split(np.arange(len(train[0])), 5)
    for i, chunk in enumerate(chunks, 1):
        (directory / f"data_batch_{i}.bin").write_bytes(
            cifar_binary_bytes(train[0][chunk], train[1][chunk]))
    (directory / "test_batch.bin").write_bytes(cifar_binary_bytes(*test))
    (directory / "batches.meta.txt").write_text("airplane\n")
    return directory


def write_cifar100_binary(root: Path, train, test) -> Path:
    directory = root / "cifar-100-binary"
    directory.mkdir(parents=True)
    for name, (images, labels) in (("train.bin", train), ("test.bin", test)):
        coarse = (labels // 5).astype(np.uint8)
        (directory / name).write_bytes(cifar_binary_bytes(images, labels, coarse))
    return directory


def _pickle_batch(path: Path, images: np.ndarray, labels_key: str, labels: np.ndarray) -> None:
    # The official batches are Python 2 pickles keyed by bytes; protocol 2 with bytes keys
    # reproduces that (numpy arrays pickle through numpy's _reconstruct, as in the originals).
    batch = {b"batch_label": b"batch", b"data": images.reshape(len(images), -1),
             labels_key.encode(): [int(v) for v in labels], b"filenames": [b"x.png"] * len(labels)}
    path.write_bytes(pickle.dumps(batch, protocol=2))


def write_cifar10_python(root: Path, train, test) -> Path:
    directory = root / "cifar-10-batches-py"
    directory.mkdir(parents=True)
    chunks = np.array_split(np.arange(len(train[0])), 5)
    for i, chunk in enumerate(chunks, 1):
        _pickle_batch(directory / f"data_batch_{i}", train[0][chunk], "labels", train[1][chunk])
    _pickle_batch(directory / "test_batch", test[0], "labels", test[1])
    return directory


def write_cifar100_python(root: Path, train, test) -> Path:
    directory = root / "cifar-100-python"
    directory.mkdir(parents=True)
    _pickle_batch(directory / "train", train[0], "fine_labels", train[1])
    _pickle_batch(directory / "test", test[0], "fine_labels", test[1])
    return directory


def write_svhn(directory: Path, train, test) -> None:
    from scipy.io import savemat

    directory.mkdir(parents=True, exist_ok=True)
    for name, (images, labels) in (("train_32x32.mat", train), ("test_32x32.mat", test)):
        stored = labels.astype(np.uint8).copy()
        stored[stored == 0] = 10  # SVHN writes digit 0 as label 10
        savemat(directory / name, {"X": images.transpose(2, 3, 1, 0), "y": stored[:, None]})


def write_tiny_imagenet(root: Path, train, test, wnids: list[str]) -> Path:
    from PIL import Image

    directory = root / "tiny-imagenet-200"
    (directory / "val" / "images").mkdir(parents=True)
    (directory / "wnids.txt").write_text("\n".join(wnids) + "\n")
    (directory / "words.txt").write_text(
        "".join(f"{w}\tthing {i}, other name\n" for i, w in enumerate(wnids)))
    counters: dict[str, int] = {}
    for image, label in zip(*train, strict=True):
        wnid = wnids[label]
        folder = directory / "train" / wnid / "images"
        folder.mkdir(parents=True, exist_ok=True)
        index = counters.get(wnid, 0)
        counters[wnid] = index + 1
        Image.fromarray(image.transpose(1, 2, 0)).save(folder / f"{wnid}_{index}.JPEG", quality=95)
    lines = []
    for index, (image, label) in enumerate(zip(*test, strict=True)):
        name = f"val_{index}.JPEG"
        Image.fromarray(image.transpose(1, 2, 0)).save(directory / "val" / "images" / name,
                                                       quality=95)
        lines.append(f"{name}\t{wnids[label]}\t0\t0\t63\t63")
    (directory / "val" / "val_annotations.txt").write_text("\n".join(lines) + "\n")
    return directory
