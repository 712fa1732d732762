"""``.npz`` datasets, read by specrobust's own ZIP reader: bounded by what they declare.

An ``.npz`` file is a ZIP archive of ``.npy`` members. It is parsed once by
``specrobust.files.ziparchive`` (which refuses an archive that readers could read differently), each
member's ``.npy`` header is read from the bytes that parser returns, and every declaration is
checked before anything is allocated: the archive's unpacked size, each array's dtype (allowed
by list), its shape against the bytes it holds, the labels against ``MAX_CLASSES``. Images are
read row by row up to the number a command uses (``first``), so a file declaring more than it
holds, or far more than is needed, costs only what is read.
"""

from __future__ import annotations

import io
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from specrobust.errors import SpecRobustError
from specrobust.files.storage import open_regular
from specrobust.files.ziparchive import DEFLATED, STORED, Archive

# Larger than any dataset held in memory here (ImageNet's validation set at 224 px is 7.5 GB).
MAX_NPZ_BYTES = 8 << 30
# More classes than any classification dataset in use (ImageNet-21k has 21,841).
MAX_CLASSES = 100_000
IMAGE_DTYPES = ("|u1",)
LABEL_KINDS = "iu"  # signed or unsigned integers, any width
_HEADER_BYTES = 1 << 16  # a .npy header is at most this long (numpy writes a few hundred bytes)


@dataclass(frozen=True)
class ArrayHeader:
    """What an ``.npy`` member declares, checked against the bytes it holds."""

    member: str
    shape: tuple[int, ...]
    dtype: np.dtype
    fortran_order: bool
    data_offset: int  # where the values start within the member


class NpzFile:
    """An open ``.npz`` file: its members parsed, their headers read on demand."""

    def __init__(self, path: Path):
        self.path = path
        try:
            self._descriptor = open_regular(path, "array file")
        except FileNotFoundError:
            raise SpecRobustError(f"array file {path} does not exist") from None
        except OSError as error:
            raise SpecRobustError(f"cannot read array file {path} ({error.strerror})") from None
        try:
            length = os.fstat(self._descriptor).st_size
            self.archive = Archive(lambda offset, size: os.pread(self._descriptor, size, offset),
                                   length, f"array file {path}", methods=(STORED, DEFLATED),
                                   max_size=MAX_NPZ_BYTES)
        except BaseException:
            self.close()
            raise
        self.keys = {name.removesuffix(".npy"): name for name in self.archive.names()}

    def close(self) -> None:
        os.close(self._descriptor)

    def __enter__(self) -> NpzFile:
        return self

    def __exit__(self, *_) -> None:
        self.close()

    def header(self, key: str) -> ArrayHeader:
        member = self.keys[key]
        head = self.archive.read(member, _HEADER_BYTES)
        try:
            stream = io.BytesIO(head)  # bytes the ZIP reader returned, not the file
            version = np.lib.format.read_magic(stream)
            read = np.lib.format.read_array_header_1_0 if version == (1, 0) else \
                np.lib.format.read_array_header_2_0
            shape, fortran, dtype = read(stream)
        except (ValueError, SyntaxError, KeyError, TypeError, MemoryError,
                RecursionError) as error:
            raise SpecRobustError(f"{self.path}: the array {key!r} has no readable .npy header "
                                  f"({str(error).splitlines()[0][:100] if str(error) else '?'})"
                                  ) from None
        if any(n < 0 for n in shape):
            raise SpecRobustError(f"{self.path}: the array {key!r} declares a negative size")
        if dtype.hasobject or dtype.kind in "OVMm" or dtype.itemsize == 0:
            raise SpecRobustError(f"{self.path}: the array {key!r} holds {dtype}, not numbers")
        data_offset = stream.tell()
        declared = math.prod(shape) * dtype.itemsize
        stored = self.archive.by_name[member].size - data_offset
        if declared != stored:
            raise SpecRobustError(f"{self.path}: the array {key!r} declares shape {shape} of "
                                  f"{dtype} ({declared:,} bytes) but holds {stored:,} bytes")
        return ArrayHeader(member, shape, dtype, fortran, data_offset)

    def read(self, header: ArrayHeader, rows: int | None = None) -> np.ndarray:
        """The array, or its first ``rows`` rows (C order: only those bytes are read)."""
        if header.fortran_order or not header.shape:
            rows = None
        count = header.shape[0] if rows is None or not header.shape else min(rows,
                                                                               header.shape[0])
        shape = (count, *header.shape[1:]) if header.shape else ()
        wanted = header.data_offset + math.prod(shape) * header.dtype.itemsize
        data = self.archive.read(header.member, None if rows is None else wanted)
        values = np.frombuffer(data, dtype=header.dtype, offset=header.data_offset,
                               count=math.prod(shape))
        if header.fortran_order:
            return np.ascontiguousarray(values.reshape(shape[::-1]).transpose())
        # A copy the caller owns: the bytes it was read from are immutable.
        return values.reshape(shape).copy()


def splits(npz: NpzFile) -> dict[str, tuple[str, str]]:
    """Split -> (the key of its images, of its labels)."""
    keys = set(npz.keys)
    if {"x", "y"} <= keys:
        return {"test": ("x", "y")}
    if {"x_test", "y_test"} <= keys:
        found = {"test": ("x_test", "y_test")}
        if {"x_train", "y_train"} <= keys:
            found["train"] = ("x_train", "y_train")
        return found
    raise SpecRobustError(f"{npz.path} holds {', '.join(sorted(keys)) or 'no arrays'}; expected "
                          "x and y, or x_test and y_test (and x_train, y_train)")


def chw_shape(header: ArrayHeader, path: Path) -> tuple[int, int, int]:
    """(channels, height, width) of images stored NHW, NCHW or NHWC as uint8."""
    shape = header.shape
    if header.dtype.str not in IMAGE_DTYPES:
        raise SpecRobustError(f"{path}: images must be uint8 (0-255), got {header.dtype}")
    if len(shape) == 3:
        return 1, shape[1], shape[2]
    if len(shape) == 4 and shape[1] in (1, 3):
        return shape[1], shape[2], shape[3]
    if len(shape) == 4 and shape[-1] in (1, 3):
        return shape[-1], shape[1], shape[2]
    raise SpecRobustError(f"{path}: images of shape {shape} are neither NHWC nor NCHW with 1 "
                          "or 3 channels, nor NHW")


def as_nchw(images: np.ndarray) -> np.ndarray:
    if images.ndim == 3:
        return images[:, None]
    return images if images.shape[1] in (1, 3) else images.transpose(0, 3, 1, 2)


def labels(npz: NpzFile, key: str, split: str, count: int,
           classes: int | None) -> np.ndarray:
    """The labels, one integer in [0, classes) per image (``classes`` None: below
    ``MAX_CLASSES``), checked before a list of classes is made from them."""
    header = npz.header(key)
    bound = classes or MAX_CLASSES
    rule = f"the {split} labels must be integers in [0, {bound}), one per image ({count})"
    if len(header.shape) != 1 or header.shape[0] != count or \
            header.dtype.kind not in LABEL_KINDS:
        raise SpecRobustError(f"{npz.path}: {rule}; got {header.dtype} of shape {header.shape}")
    values = npz.read(header)
    if count and (int(values.min()) < 0 or int(values.max()) >= bound):
        raise SpecRobustError(f"{npz.path}: {rule}; they span {int(values.min())} to "
                              f"{int(values.max())}")
    return values.astype(np.int64)
