"""Readers for the real on-disk dataset formats, in the layouts torchvision uses.

Every reader returns uint8 ``(N, C, H, W)`` images and int64 labels as an :class:`ImageSplit`.
A truncated or corrupt file raises :class:`SpecRobustError` with one line naming the file.
Nothing here executes code from a file: CIFAR's pickled batches go through a restricted
unpickler that builds only plain containers, strings, bytes, numbers and numpy arrays.
"""

from __future__ import annotations

import contextlib
import io
import math
import pickle
import zlib
from pathlib import Path

import numpy as np
import torch

from specrobust.data.splits import ImageSplit
from specrobust.errors import SpecRobustError
from specrobust.files import storage
from specrobust.files.storage import read_regular

# ---------------------------------------------------------------------------------------------
# Shared helpers
# ---------------------------------------------------------------------------------------------


def existing_variant(path: Path) -> Path | None:
    """``path`` itself, or its gzip-compressed sibling ``path.gz``, whichever exists."""
    for candidate in (path, path.with_name(path.name + ".gz")):
        if candidate.is_file():
            return candidate
    return None


# Larger than any file of a built-in dataset (SVHN's extra split is 1.3 GB), packed or unpacked.
MAX_DATASET_FILE_BYTES = 4 << 30


def read_bytes(path: Path) -> bytes:
    """The file's content (a regular file, within ``MAX_DATASET_FILE_BYTES``), transparently
    decompressed when it ends in ``.gz``, never past the same bound."""
    try:
        raw = read_regular(path, "dataset file", MAX_DATASET_FILE_BYTES)
        if path.suffix != ".gz":
            return raw
        inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
        data = inflater.decompress(raw, MAX_DATASET_FILE_BYTES + 1)
        if len(data) > MAX_DATASET_FILE_BYTES:
            raise SpecRobustError(f"{path} unpacks to more than {MAX_DATASET_FILE_BYTES:,} "
                                  "bytes; it is not a file of a dataset specrobust reads")
        if not inflater.eof:
            raise EOFError("compressed file ended before the end-of-stream marker")
        return data
    except FileNotFoundError:
        raise SpecRobustError(f"dataset file not found: {path}") from None
    except (EOFError, OSError, zlib.error) as error:  # gzip: EOFError when truncated
        raise SpecRobustError(f"cannot read {path}: truncated or corrupt ({error})") from None


def _split(images: np.ndarray, labels: np.ndarray) -> ImageSplit:
    # np.require copies only arrays that are read-only views (np.frombuffer over bytes) or
    # strided; torch refuses to share memory with a read-only array.
    return ImageSplit(
        torch.from_numpy(np.require(images, dtype=np.uint8, requirements=["C", "W"])),
        torch.from_numpy(np.asarray(labels, dtype=np.int64)),
    )


# ---------------------------------------------------------------------------------------------
# IDX (MNIST, Fashion-MNIST)
# ---------------------------------------------------------------------------------------------

_IDX_UBYTE = 0x08


def read_idx(path: Path) -> np.ndarray:
    """An IDX file (gzip or plain) of unsigned bytes as a numpy array of its declared shape."""
    raw = read_bytes(path)
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != _IDX_UBYTE:
        raise SpecRobustError(f"{path} is not an unsigned-byte IDX file (bad magic number)")
    ndim = raw[3]
    if ndim == 0:
        raise SpecRobustError(f"{path} is not an IDX file of images or labels (0 dimensions)")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise SpecRobustError(f"{path} is truncated: its IDX header is incomplete")
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    # Python integers: a crafted header's product cannot wrap around as numpy's int64 would.
    expected = math.prod(shape) if shape else 0
    if len(raw) - header != expected:
        raise SpecRobustError(
            f"{path} is truncated or corrupt: header promises {expected} bytes of data for shape "
            f"{shape}, file holds {len(raw) - header}"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def read_idx_pair(image_path: Path, label_path: Path) -> ImageSplit:
    images, labels = read_idx(image_path), read_idx(label_path)
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise SpecRobustError(
            f"{image_path} ({images.shape}) and {label_path} ({labels.shape}) do not form an "
            "image/label pair"
        )
    return _split(images[:, None], labels)


def read_idx_dataset(directory: Path) -> tuple[ImageSplit, ImageSplit]:
    def pair(prefix: str) -> ImageSplit:
        image = existing_variant(directory / f"{prefix}-images-idx3-ubyte")
        label = existing_variant(directory / f"{prefix}-labels-idx1-ubyte")
        if image is None or label is None:
            raise SpecRobustError(f"{directory} lacks the {prefix} IDX files")
        return read_idx_pair(image, label)

    return pair("train"), pair("t10k")


# ---------------------------------------------------------------------------------------------
# CIFAR-10 / CIFAR-100: official binary layout
# ---------------------------------------------------------------------------------------------

_CIFAR_PIXELS = 3 * 32 * 32


def read_cifar_binary(path: Path, label_bytes: int) -> ImageSplit:
    """Records of ``label_bytes`` label bytes + 3072 pixel bytes (R, G, B planes, row-major).

    CIFAR-10 has one label byte; CIFAR-100 has two (coarse, then fine; the fine label is used).
    """
    raw = read_bytes(path)
    record = label_bytes + _CIFAR_PIXELS
    if len(raw) == 0 or len(raw) % record:
        raise SpecRobustError(
            f"{path} is truncated or corrupt: {len(raw)} bytes is not a whole number of "
            f"{record}-byte CIFAR records"
        )
    table = np.frombuffer(raw, dtype=np.uint8).reshape(-1, record)
    labels = table[:, label_bytes - 1]
    return _split(table[:, label_bytes:].reshape(-1, 3, 32, 32), labels)


def _concat(splits: list[ImageSplit]) -> ImageSplit:
    return ImageSplit(torch.cat([s.images for s in splits]), torch.cat([s.labels for s in splits]))


def read_cifar10_binary(directory: Path) -> tuple[ImageSplit, ImageSplit]:
    train = [read_cifar_binary(directory / f"data_batch_{i}.bin", 1) for i in range(1, 6)]
    return _concat(train), read_cifar_binary(directory / "test_batch.bin", 1)


def read_cifar100_binary(directory: Path) -> tuple[ImageSplit, ImageSplit]:
    return (
        read_cifar_binary(directory / "train.bin", 2),
        read_cifar_binary(directory / "test.bin", 2),
    )


# ---------------------------------------------------------------------------------------------
# CIFAR-10 / CIFAR-100: pickled "python version", through a restricted unpickler
# ---------------------------------------------------------------------------------------------

# The only globals a CIFAR batch needs: numpy's array reconstruction (its module moved in numpy 2)
# and the codec helper Python uses for bytes in old protocols. Everything else, in particular
# anything callable that could run a command, is refused.
_PICKLE_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),
}


class _PlainDataUnpickler(pickle.Unpickler):
    def __init__(self, handle, path: Path):
        super().__init__(handle, encoding="latin1")
        self._path = path

    def find_class(self, module: str, name: str):
        if (module, name) in _PICKLE_ALLOWED:
            return super().find_class(module, name)
        raise SpecRobustError(
            f"refusing to load {self._path}: it asks to import {module}.{name}, which a CIFAR "
            "batch never contains (the file may be malicious; use the official download)"
        )


def load_plain_pickle(path: Path) -> object:
    """Unpickle ``path`` allowing only plain data (containers, str, bytes, numbers, ndarrays)."""
    raw = read_bytes(path)
    try:
        return _PlainDataUnpickler(io.BytesIO(raw), path).load()
    except SpecRobustError:
        raise
    except Exception as error:
        raise SpecRobustError(f"cannot read {path}: truncated or corrupt ({error})") from None


def _pickle_field(batch: object, key: str, path: Path):
    if not isinstance(batch, dict):
        raise SpecRobustError(f"{path} is not a CIFAR batch (expected a dict)")
    for candidate in (key, key.encode()):
        if candidate in batch:
            return batch[candidate]
    raise SpecRobustError(f"{path} is not a CIFAR batch: it has no '{key}' entry")


def read_cifar_pickle(path: Path, label_key: str) -> ImageSplit:
    batch = load_plain_pickle(path)
    data = np.asarray(_pickle_field(batch, "data", path))
    labels = np.asarray(_pickle_field(batch, label_key, path))
    if data.ndim != 2 or data.shape[1] != _CIFAR_PIXELS or len(labels) != len(data):
        raise SpecRobustError(
            f"{path} is corrupt: data of shape {data.shape} with {len(labels)} labels"
        )
    return _split(data.reshape(-1, 3, 32, 32), labels)


def read_cifar10_pickle(directory: Path) -> tuple[ImageSplit, ImageSplit]:
    train = [read_cifar_pickle(directory / f"data_batch_{i}", "labels") for i in range(1, 6)]
    return _concat(train), read_cifar_pickle(directory / "test_batch", "labels")


def read_cifar100_pickle(directory: Path) -> tuple[ImageSplit, ImageSplit]:
    return (
        read_cifar_pickle(directory / "train", "fine_labels"),
        read_cifar_pickle(directory / "test", "fine_labels"),
    )


# ---------------------------------------------------------------------------------------------
# SVHN: MATLAB files
# ---------------------------------------------------------------------------------------------


def read_svhn_mat(path: Path) -> ImageSplit:
    """``train_32x32.mat`` / ``test_32x32.mat``: X is (32, 32, 3, N); label 10 means digit 0."""
    try:
        from scipy.io import loadmat
    except ImportError:
        raise SpecRobustError(
            "reading SVHN needs scipy: pip install 'specrobust[svhn]'"
        ) from None
    try:
        mat = loadmat(str(path))
        images, labels = np.asarray(mat["X"]), np.asarray(mat["y"]).reshape(-1).astype(np.int64)
    except Exception as error:
        raise SpecRobustError(f"cannot read {path}: truncated or corrupt ({error})") from None
    if images.ndim != 4 or images.shape[:3] != (32, 32, 3) or images.shape[3] != len(labels):
        raise SpecRobustError(f"{path} is corrupt: X of shape {images.shape}, {len(labels)} labels")
    labels[labels == 10] = 0
    return _split(images.transpose(3, 2, 0, 1), labels)


def read_svhn(directory: Path) -> tuple[ImageSplit, ImageSplit]:
    return read_svhn_mat(directory / "train_32x32.mat"), read_svhn_mat(directory / "test_32x32.mat")


# ---------------------------------------------------------------------------------------------
# Tiny ImageNet: folders of JPEGs
# ---------------------------------------------------------------------------------------------


def _read_jpeg_stack(paths: list[Path]) -> np.ndarray:
    from specrobust.data.images import pixels as decoded

    stack = np.empty((len(paths), 64, 64, 3), dtype=np.uint8)
    for index, path in enumerate(paths):
        # A few Tiny ImageNet images are greyscale; three channels keeps every one RGB.
        pixels = np.asarray(decoded(path, 3))
        if pixels.shape != (64, 64, 3):
            raise SpecRobustError(f"{path} is {pixels.shape[1]}x{pixels.shape[0]}, expected 64x64")
        stack[index] = pixels
    return stack.transpose(0, 3, 1, 2)


def tiny_imagenet_wnids(directory: Path) -> list[str]:
    path = directory / "wnids.txt"
    if not path.is_file():
        raise SpecRobustError(f"{path} is missing; it lists the 200 class ids of Tiny ImageNet")
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


def read_tiny_imagenet(directory: Path) -> tuple[ImageSplit, ImageSplit]:
    """Train: ``train/<wnid>/images/*.JPEG``. Test: the labelled validation set,
    ``val/images/*.JPEG`` with ``val/val_annotations.txt`` (the official test set has no labels).

    Decoding 110k JPEGs takes a while, so the decoded arrays are cached beside the data as
    ``.npy`` files (plain arrays, no pickle) and reused while the source files are unchanged.
    """
    wnids = tiny_imagenet_wnids(directory)
    index_of = {wnid: i for i, wnid in enumerate(wnids)}

    train_paths, train_labels = [], []
    for wnid in wnids:
        files = sorted((directory / "train" / wnid / "images").glob("*.JPEG"))
        if not files:
            raise SpecRobustError(f"{directory / 'train' / wnid / 'images'} holds no JPEG images")
        train_paths += files
        train_labels += [index_of[wnid]] * len(files)

    annotations = directory / "val" / "val_annotations.txt"
    if not annotations.is_file():
        raise SpecRobustError(f"{annotations} is missing; it labels the validation images")
    val_paths, val_labels = [], []
    for line_number, line in enumerate(annotations.read_text().splitlines(), 1):
        fields = line.split("\t")
        if len(fields) < 2 or fields[1] not in index_of:
            raise SpecRobustError(f"{annotations} line {line_number} is malformed: {line!r}")
        val_paths.append(directory / "val" / "images" / fields[0])
        val_labels.append(index_of[fields[1]])

    return (
        _cached_split(directory, "train", train_paths, train_labels),
        _cached_split(directory, "val", val_paths, val_labels),
    )


def _cached_split(directory: Path, name: str, paths: list[Path], labels: list[int]) -> ImageSplit:
    cache = directory / f".specrobust-{name}-{len(paths)}.npy"
    newest_source = max(p.stat().st_mtime for p in paths) if paths else 0.0
    # A cache planted as a link is neither read nor written through (it could name any file).
    usable = cache.is_file() and not cache.is_symlink()
    images = None
    if usable and cache.stat().st_mtime >= newest_source:
        try:
            # Mapped first: a damaged header may claim any shape, and is checked before any
            # memory is taken for it.
            mapped = np.load(cache, allow_pickle=False, mmap_mode="r")
            if mapped.shape == (len(paths), 3, 64, 64) and mapped.dtype == np.uint8:
                images = np.array(mapped)
        except (OSError, ValueError):
            images = None  # a damaged cache is rebuilt
    if images is None:
        images = _read_jpeg_stack(paths)
        # A read-only dataset directory (or a link in the way) just means no cache.
        with contextlib.suppress(OSError, SpecRobustError):
            storage.write_with(cache, lambda out: np.save(out, images, allow_pickle=False))
    return _split(images, np.asarray(labels))
