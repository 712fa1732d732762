"""The user's own data: folders of images and NumPy arrays, and ImageNet's validation set.

    folder:DIR[,size=224][,resize=256]     class subfolders, as torchvision's ImageFolder
    npz:FILE[,classes=K]                   arrays x and y, or x_train/y_train and x_test/y_test
    imagenet[:root=DIR]                    ImageNet's validation set, resize 256, crop 224
    imagenet:subset=robustbench            RobustBench's 5,000 of them, in its order

A folder dataset is ``DIR/train/`` and ``DIR/test/`` (or ``DIR/val/``), each holding one
subfolder per class, or ``DIR`` itself holding the class subfolders (then it is the test split,
for `eval` and `analyze`). Classes are the sorted subfolder names. PNG and JPEG files are decoded
with Pillow, grey where every file is grey, else RGB. ``size=S`` resizes each image's shorter
side to ``resize`` (default S) and crops the centre S x S; without it every image must have the
same size. The test split's order is class by class in turn (the first image of every class,
then the second...), so the first n test images cover the classes evenly; only the images a
command uses are decoded (``load_dataset(..., first_test=n)``).

An ``.npz`` file holds ``x`` (uint8, NHWC, NCHW or NHW) and ``y`` (integers in [0, classes))
as the test split, or ``x_train``/``y_train`` beside ``x_test``/``y_test``; the number of
classes is ``classes=K``, else one more than the largest label.

ImageNet's validation set is read from ``DATA_ROOT/imagenet/val/`` in one of its usual layouts:
one folder per WordNet id (1000 of them), or the flat release (``ILSVRC2012_val_*.JPEG``) beside
a label file ``val.txt`` of ``FILE INDEX`` lines (the index into the sorted WordNet ids).
``subset=robustbench`` keeps RobustBench's evaluation images in RobustBench's order
(``specrobust.data.robustbench``).

These datasets have no usual budget but ImageNet's (L-inf 4/255, L2 3.0, RobustBench's): give
``--eps`` for the others.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from specrobust.data import arrays
from specrobust.data import images as image_files
from specrobust.data.splits import ImageSplit
from specrobust.errors import SpecRobustError, quoted

if TYPE_CHECKING:
    import torch

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
KINDS = ("folder", "npz", "imagenet")
PATH_KINDS = ("folder", "npz")  # named with a path after the colon
# ImageNet's validation set as RobustBench evaluates it: resized, centre-cropped, its budgets.
IMAGENET_CLASSES = 1000
IMAGENET_SIZE, IMAGENET_RESIZE = 224, 256
IMAGENET_BUDGETS = {"linf": "4/255", "l2": "3.0"}
MAX_LABEL_FILE_BYTES = 16 << 20  # ImageNet's val.txt is about 1.4 MB
IMAGENET_TITLE = "ImageNet (validation set)"


@dataclass(frozen=True)
class UserData:
    """What a user dataset's name says: its kind, where it is, and how to size its images."""

    kind: str  # folder | npz | imagenet
    path: Path
    size: int | None = None  # centre crop S x S after resizing the shorter side
    resize: int | None = None  # the shorter side before the crop (default: size)
    classes: int | None = None  # npz: the number of classes, when the labels do not show it
    subset: str | None = None  # imagenet: robustbench
    data_root: Path | None = None  # imagenet: where a fetched subset list lies

    @property
    def text(self) -> str:
        if self.kind == "imagenet":
            return f"imagenet:subset={self.subset}" if self.subset else "imagenet"
        return f"{self.kind}:{self.path}"


def parse(name: str, options: dict[str, str], rest: list[str],
          data_root: Path | None = None) -> UserData:
    """``folder:DIR,size=224`` -> UserData. ``rest`` is what came after the colon that is not
    ``key=value`` (the path)."""
    known = {"folder": {"size", "resize"}, "npz": {"classes"},
             "imagenet": {"root", "subset"}}[name]
    unknown = sorted(set(options) - known)
    if unknown:
        raise SpecRobustError(f"dataset {name} takes {', '.join(sorted(known))}, not "
                              f"{quoted(unknown[0])}")
    numbers = {key: _whole(options[key], f"{name} option {key}") for key in ("size", "resize",
                                                                            "classes")
               if key in options}
    if name == "imagenet":
        if rest:
            raise SpecRobustError("imagenet takes root=DIR, not a path after the colon")
        if options.get("subset", "robustbench") != "robustbench":
            raise SpecRobustError(f"imagenet's subset is robustbench (RobustBench's 5,000 "
                                  f"images), got {quoted(options['subset'])}")
        root = Path(options["root"]) if "root" in options else (data_root or Path(".")) / \
            "imagenet"
        return UserData("imagenet", root / "val", IMAGENET_SIZE, IMAGENET_RESIZE,
                        IMAGENET_CLASSES, options.get("subset"), data_root or Path("."))
    if len(rest) != 1 or not rest[0]:
        raise SpecRobustError(f"dataset {name} needs one path: {name}:PATH (a path holding a comma "
                              "cannot be named this way)")
    return UserData(name, Path(rest[0]), numbers.get("size"), numbers.get("resize"),
                    numbers.get("classes"))


def _whole(text: str, what: str) -> int:
    from specrobust.numbers import check_range, parse_whole

    return int(check_range(parse_whole(text, what), what, 1, 4096))


@dataclass(frozen=True)
class Described:
    """A user dataset's shape, classes and names, read without decoding its images."""

    image_shape: tuple[int, int, int]
    class_names: tuple[str, ...]


def describe(data: UserData) -> Described:
    if data.kind == "npz":  # from the arrays' headers and labels: images are read by load
        with arrays.NpzFile(data.path) as npz:
            headers, names = _npz_contents(npz, data)
        return Described(arrays.chw_shape(headers["test"][0], data.path), names)
    splits = _folder_splits(data)
    return Described(_decoded_shape(data, splits), splits["test"].class_names)


def test_files(data: UserData, first_test: int) -> tuple[list[tuple[Path, int]],
                                                         tuple[int, int, int],
                                                         tuple[str, ...]]:
    """The first test images of a folder or ImageNet as (file, label), their decoded shape and
    the class names, nothing decoded yet (``decode`` decodes them, a batch at a time)."""
    splits = _folder_splits(data)
    return (splits["test"].files[:first_test], _decoded_shape(data, splits),
            splits["test"].class_names)


def decode(files: list[tuple[Path, int]], data: UserData, shape) -> torch.Tensor:
    """The images of ``files`` (from :func:`test_files`), uint8 NCHW."""
    return _decode(files, data, shape).images


def load(data: UserData, first_test: int | None = None) -> tuple[ImageSplit, ImageSplit,
                                                                  tuple[str, ...]]:
    """(train split, test split, class names); the train split is empty where there is none.
    ``first_test``: decode only the first n test images."""
    if data.kind == "npz":
        return _load_npz(data, first_test)
    splits = _folder_splits(data)
    shape = _decoded_shape(data, splits)
    test = _decode(splits["test"].files[:first_test], data, shape)
    train = _decode(splits["train"].files, data, shape) if "train" in splits and \
        first_test is None else _empty(test)
    return train, test, splits["test"].class_names


# ---- arrays ------------------------------------------------------------------------------------


def _npz_contents(npz: arrays.NpzFile, data: UserData):
    """Split -> (images' header, labels), and the class names: ``classes=K``, else one more
    than the largest label of any split."""
    found = {}
    for split, (x, y) in arrays.splits(npz).items():
        header = npz.header(x)
        arrays.chw_shape(header, data.path)
        count = header.shape[0]
        if count == 0:
            raise SpecRobustError(f"{data.path}: the {split} split holds no images")
        found[split] = (header, arrays.labels(npz, y, split, count, data.classes))
    classes = data.classes or max(int(y.max()) for _, y in found.values()) + 1
    return found, tuple(f"class {k}" for k in range(classes))


def _load_npz(data: UserData, first_test: int | None):
    import torch

    with arrays.NpzFile(data.path) as npz:
        found, names = _npz_contents(npz, data)
        splits = {}
        for split, (header, labels) in found.items():
            rows = first_test if split == "test" else None
            if split == "train" and first_test is not None:
                continue  # a command that names its test images reads no training images
            images = arrays.as_nchw(npz.read(header, rows))
            splits[split] = ImageSplit(torch.from_numpy(np.ascontiguousarray(images)),
                                       torch.from_numpy(labels[:len(images)]))
    test = splits["test"]
    return splits.get("train", _empty(test)), test, names


def _empty(like: ImageSplit) -> ImageSplit:
    import torch

    return ImageSplit(like.images[:0], like.labels[:0].to(torch.int64))


# ---- folders of images -------------------------------------------------------------------------


@dataclass(frozen=True)
class _FolderSplit:
    class_names: tuple[str, ...]
    files: list[tuple[Path, int]]  # (image, class index), in the split's order


def _folder_splits(data: UserData) -> dict[str, _FolderSplit]:
    root = data.path
    if not root.is_dir():
        raise SpecRobustError(f"dataset folder {root} does not exist (or is not a directory)")
    if data.kind == "imagenet":
        flat = not any(p.is_dir() for p in root.iterdir())
        test = _imagenet_flat(root) if flat else _class_folders(root, data)
        return {"test": _robustbench_subset(test, data, flat) if data.subset else test}
    named = {name: root / name for name in ("train", "test", "val") if (root / name).is_dir()}
    if "test" in named or "val" in named:
        splits = {"test": _class_folders(named.get("test") or named["val"], data)}
        if "train" in named:
            splits["train"] = _class_folders(named["train"], data, order="by class")
            if splits["train"].class_names != splits["test"].class_names:
                raise SpecRobustError(f"{root}: train/ and test/ hold different class folders; "
                                      "they must name the same classes")
        return splits
    return {"test": _class_folders(root, data)}


def _class_folders(root: Path, data: UserData, order: str = "in turn") -> _FolderSplit:
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise SpecRobustError(f"{root} holds no class folders (one subfolder per class, as "
                              "torchvision's ImageFolder)")
    if data.kind == "imagenet" and len(classes) != IMAGENET_CLASSES:
        raise SpecRobustError(f"{root} holds {len(classes)} class folders, not ImageNet's "
                              f"{IMAGENET_CLASSES}")
    per_class = []
    for index, name in enumerate(classes):
        files = sorted(p for p in (root / name).iterdir()
                       if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        if not files:
            raise SpecRobustError(f"class folder {root / name} holds no PNG or JPEG image")
        per_class.append([(file, index) for file in files])
    if order == "by class":
        return _FolderSplit(tuple(classes), [item for items in per_class for item in items])
    return _FolderSplit(tuple(classes), _in_turn(per_class))


def _in_turn(groups: list[list]) -> list:
    """The first item of every group, then the second...: the first n items cover the groups
    evenly."""
    return [items[k] for k in range(max(map(len, groups))) for items in groups if k < len(items)]


def _robustbench_subset(split: _FolderSplit, data: UserData, flat: bool) -> _FolderSplit:
    """RobustBench's images, in its order: found by class folder and file name (by file name
    alone in the flat layout, whose labels come from val.txt)."""
    from specrobust.data import robustbench

    by_folder = {(path.parent.name, path.name): (path, label) for path, label in split.files}
    by_name = {path.name: (path, label) for path, label in split.files}
    wanted = robustbench.image_ids(data.data_root or Path("."))
    chosen = [by_name.get(name) if flat else by_folder.get((wnid, name))
              for wnid, name in wanted]
    missing = [f"{wnid}/{name}" for (wnid, name), item in zip(wanted, chosen, strict=True)
               if item is None]
    if missing:
        raise SpecRobustError(f"{data.path} lacks {len(missing)} of RobustBench's "
                              f"{len(wanted):,} images (the first: {missing[0]}); it needs "
                              "ImageNet's whole validation set")
    return _FolderSplit(split.class_names, [item for item in chosen if item is not None])


def _imagenet_flat(root: Path) -> _FolderSplit:
    labels_file = root / "val.txt"
    if not labels_file.exists():
        raise SpecRobustError(f"{root} holds images but no class folders and no val.txt ("
                              "FILE INDEX lines); see `specrobust data list`")
    from specrobust.files.storage import read_regular

    try:
        text = read_regular(labels_file, "label file", MAX_LABEL_FILE_BYTES).decode("ascii")
    except UnicodeDecodeError as error:
        raise SpecRobustError(f"{labels_file} holds a byte that is not ASCII text at offset "
                              f"{error.start}; expected FILE INDEX lines") from None
    except OSError as error:
        raise SpecRobustError(f"cannot read {labels_file} ({error.strerror})") from None
    files, seen = [], set()
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 2 or not parts[1].isdigit() or int(parts[1]) >= IMAGENET_CLASSES:
            raise SpecRobustError(f"{labels_file}, line {number}: expected FILE INDEX with an "
                                  f"index below {IMAGENET_CLASSES}, got {quoted(line)}")
        name = Path(parts[0]).name
        if name in seen:
            raise SpecRobustError(f"{labels_file}, line {number}: {quoted(name)} is listed "
                                  "twice; each image is listed once")
        seen.add(name)
        files.append((root / name, int(parts[1])))
    if not files:
        raise SpecRobustError(f"{labels_file} lists no images (FILE INDEX lines)")
    names = tuple(f"class {k}" for k in range(IMAGENET_CLASSES))
    by_class: dict[int, list] = {}
    for item in sorted(files):
        by_class.setdefault(item[1], []).append(item)
    return _FolderSplit(names, _in_turn([by_class[k] for k in sorted(by_class)]))


def _decoded_shape(data: UserData, splits: dict[str, _FolderSplit]) -> tuple[int, int, int]:
    """(channels, height, width) of the decoded images: grey only where the first images of
    each split are grey; the size from size=, else from the first image."""
    probe = [path for split in splits.values() for path, _ in split.files[:4]]
    headers = [image_files.open_image(path) for path in probe]  # each file read once
    channels = 1 if {h.mode for h in headers} <= set(image_files.GREY_MODES) else 3
    if data.size:
        return channels, data.size, data.size
    width, height = headers[0].size
    largest = image_files.MAX_UNRESIZED_SIDE
    if max(width, height) > largest:
        raise SpecRobustError(f"{probe[0]} is {width}x{height}; images larger than {largest} "
                              "a side are read resized: give size= (e.g. folder:DIR,size=224)")
    return channels, height, width


def _decode(files: list[tuple[Path, int]], data: UserData, shape) -> ImageSplit:
    import torch
    from PIL import Image

    channels, height, width = shape
    images = np.empty((len(files), channels, height, width), dtype=np.uint8)
    for index, (path, _) in enumerate(files):
        image = image_files.pixels(path, channels)
        if data.size:
            shorter = data.resize or data.size
            scale = shorter / min(image.size)
            resized = (max(shorter, round(image.size[0] * scale)),
                       max(shorter, round(image.size[1] * scale)))
            image = image.resize(resized, Image.Resampling.BILINEAR)
            left, top = (resized[0] - width) // 2, (resized[1] - height) // 2
            image = image.crop((left, top, left + width, top + height))
        elif image.size != (width, height):
            raise SpecRobustError(f"{path} is {image.size[0]}x{image.size[1]}, not "
                                  f"{width}x{height} as the others; give size= to resize them "
                                  "all (e.g. folder:DIR,size=224)")
        pixels = np.asarray(image, dtype=np.uint8)
        images[index] = pixels[None] if channels == 1 else pixels.transpose(2, 0, 1)
    labels = torch.tensor([label for _, label in files], dtype=torch.int64)
    return ImageSplit(torch.from_numpy(images), labels)


