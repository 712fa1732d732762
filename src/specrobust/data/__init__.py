"""Datasets: registry, on-disk readers, the user's own data, splits and the device-side loader.

    >>> from specrobust.data import load_dataset
    >>> ds = load_dataset("fashion-mnist")            # finds Debian's copy or the data root
    >>> ds.train.images.shape, ds.train.images.dtype  # (60000, 1, 28, 28), torch.uint8
    >>> load_dataset("folder:photos,size=224")        # the user's own (specrobust.data.user)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from specrobust.data import store, user
from specrobust.data.loader import Augment, DeviceLoader
from specrobust.data.registry import DATASETS, DatasetInfo
from specrobust.data.splits import ImageSplit, class_balanced_subset, train_val_split
from specrobust.data.synthetic import SyntheticSpec
from specrobust.errors import SpecRobustError, quoted

if TYPE_CHECKING:
    import torch

__all__ = [
    "DATASETS", "Augment", "Dataset", "DatasetInfo", "DeviceLoader", "ImageSplit",
    "SyntheticSpec", "class_balanced_subset", "default_augment",
    "catalogue", "load_dataset", "parse_dataset_name", "train_val_split", "verify_dataset",
]


@dataclass(frozen=True)
class Dataset:
    info: DatasetInfo
    train: ImageSplit
    test: ImageSplit
    source: str  # where it came from: a directory, or "generated: ..." for synthetic data
    class_names: tuple[str, ...]


def parse_dataset_name(text: str) -> tuple[str, dict[str, str]]:
    """``"synthetic:band=high,n_train=2000"`` -> ``("synthetic", {"band": "high", ...})``; the
    user's own data names a path first: ``folder:DIR,size=224``."""
    name, options, _ = _split_name(text)
    return name, options


def _split_name(text: str) -> tuple[str, dict[str, str], list[str]]:
    name, _, rest = text.partition(":")
    name = name.strip()
    options: dict[str, str] = {}
    bare: list[str] = []
    for index, item in enumerate(filter(None, rest.split(","))):
        if index == 0 and name in user.PATH_KINDS:  # folder:DIR,... npz:FILE,...
            bare.append(item.strip())
            continue
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise SpecRobustError(f"dataset option {quoted(item)} in {quoted(text)} is not "
                                  "key=value")
        options[key.strip()] = value.strip()
    return name, options, bare


def user_data(text: str, data_root: str | Path | None = None) -> user.UserData | None:
    """The user's own dataset ``text`` names (folder, npz, imagenet), or None for the others."""
    name, options, bare = _split_name(text)
    if name not in user.KINDS:
        return None
    return user.parse(name, options, bare, store.resolve_data_root(data_root))


def dataset_facts(text: str, data_root: str | Path | None = None
                  ) -> tuple[int, tuple[int, int, int]]:
    """(classes, image shape (C, H, W)) of the dataset ``text`` names, without loading it (the
    user's own data: read from its folders' names and a few images, or its arrays)."""
    data = user_data(text, data_root)
    if data is not None:
        described = user.describe(data)
        return len(described.class_names), described.image_shape
    name, options = parse_dataset_name(text)
    info = DATASETS[name]
    if info.generated:
        spec = SyntheticSpec.from_options(options)
        return spec.num_classes, (spec.channels, spec.size, spec.size)
    if options:
        raise SpecRobustError(f"dataset {name} takes no options, got {', '.join(options)}")
    return info.num_classes, tuple(info.image_shape)


def default_augment(info: DatasetInfo) -> Augment:
    """The paper's augmentation scaled to the image: 4 px crop padding on 32 px (1/8 of the
    side), flips only where they keep the label valid."""
    return Augment(crop_padding=max(1, info.image_shape[1] // 8), hflip=info.hflip)


def load_dataset(name: str, data_root: str | Path | None = None,
                 first_test: int | None = None) -> Dataset:
    """Load both splits of a dataset into memory (uint8). ``name`` may carry options for the
    generated dataset (``synthetic:band=high``) or name the user's own data
    (``folder:DIR,size=224``, ``npz:FILE``, ``imagenet``), of which only the first
    ``first_test`` test images are decoded when given (and no training images)."""
    data = user_data(name, data_root)
    if data is not None:
        return _load_user_data(data, first_test)
    base, options = parse_dataset_name(name)
    info = DATASETS[base]
    if info.generated:
        from specrobust.data import synthetic

        spec = SyntheticSpec.from_options(options)
        train, test = synthetic.generate(spec)
        names = tuple(f"class {k}" for k in range(spec.num_classes))
        return Dataset(info, train, test, f"generated: {spec.as_dict()}", names)
    if options:
        raise SpecRobustError(f"dataset {base} takes no options, got {', '.join(options)}")
    layout, directory = store.locate(info, data_root)
    train, test = layout.reader(directory)
    for split, part in (("training", train), ("test", test)):
        outside = (part.labels < 0) | (part.labels >= info.num_classes)
        if bool(outside.any()):
            raise SpecRobustError(f"{directory}: the {split} labels hold "
                                  f"{int(part.labels[outside][0])}, outside {info.title}'s "
                                  f"classes 0-{info.num_classes - 1}; the files are damaged")
    names = info.class_names or _read_class_names(info, directory)
    return Dataset(info, train, test, str(directory), names)


def _load_user_data(data: user.UserData, first_test: int | None) -> Dataset:
    train, test, names = user.load(data, first_test)
    info = _user_info(data, tuple(test.images.shape[1:]), names, len(train), len(test))
    return Dataset(info, train, test, str(data.path), names)


def _user_info(data: user.UserData, shape: tuple[int, ...], names: tuple[str, ...],
               train_size: int, test_size: int) -> DatasetInfo:
    imagenet = data.kind == "imagenet"
    budgets = user.IMAGENET_BUDGETS if imagenet else {}
    return DatasetInfo(
        name=data.text, title=user.IMAGENET_TITLE if imagenet else data.text,
        image_shape=shape, num_classes=len(names), class_names=names,
        eps_text=budgets.get("linf"), train_size=train_size, test_size=test_size,
        hflip=True, l2_eps_text=budgets.get("l2"))


def streamed_test(name: str, data_root: str | Path | None, n: int,
                  device: torch.device | str = "cpu"):
    """(dataset facts, the first ``n`` test images as :class:`StreamedImages`, their labels):
    a folder's or ImageNet's images are decoded from their files a batch at a time when
    indexed; the other datasets' are held as uint8 and made floats a batch at a time."""
    import torch

    from specrobust.data.streamed import StreamedImages

    data = user_data(name, data_root)
    if data is not None and data.kind != "npz":
        files, shape, names = user.test_files(data, n)
        info = _user_info(data, shape, names, 0, len(files))
        labels = torch.tensor([label for _, label in files], dtype=torch.int64)
        images = StreamedImages(lambda positions: user.decode([files[k] for k in positions],
                                                              data, shape),
                                len(files), shape, device)
        return info, images, labels
    dataset = load_dataset(name, data_root, first_test=n)
    test = dataset.test.take(torch.arange(min(n, len(dataset.test))))
    images = StreamedImages(lambda positions: test.images[positions], len(test),
                            tuple(test.images.shape[1:]), device)
    return dataset.info, images, test.labels


def _read_class_names(info: DatasetInfo, directory: Path) -> tuple[str, ...]:
    from specrobust.data.formats import tiny_imagenet_wnids

    wnids = tiny_imagenet_wnids(directory)
    words = {}
    words_file = directory / "words.txt"
    if words_file.is_file():
        for line in words_file.read_text().splitlines():
            wnid, _, text = line.partition("\t")
            words[wnid] = text.split(",")[0].strip()
    return tuple(words.get(wnid, wnid) for wnid in wnids)


def verify_dataset(name: str, data_root: str | Path | None = None) -> store.VerifyReport:
    """Checksums of every file, then a full parse with split sizes compared to the registry."""
    info = DATASETS[parse_dataset_name(name)[0]]
    if info.generated:
        raise SpecRobustError(f"{info.name} is generated on the fly; there are no files to verify")
    layout, directory = store.locate(info, data_root)
    report = store.VerifyReport(info.name, directory, layout.name,
                                expected_train=info.train_size, expected_test=info.test_size)
    report.files = store.check_files(layout, directory)
    train, test = layout.reader(directory)
    report.train, report.test = len(train), len(test)
    return report


@dataclass(frozen=True)
class CatalogueEntry:
    """One line of `specrobust data list`: a dataset and whether it is present here."""

    name: str
    shape: tuple[int, ...]
    classes: int
    train: int | None
    test: int | None
    eps: str
    flip: bool
    status: str


def catalogue(root: Path) -> list[CatalogueEntry]:
    """Every dataset specrobust can read by name, and where it was found under ``root``."""
    entries = []
    for info in DATASETS.values():
        found = None if info.generated else store.find_layout(info, root)
        status = "generated" if info.generated else \
            f"found ({found[0].name}) in {found[1]}" if found else "not found"
        entries.append(CatalogueEntry(info.name, info.image_shape, info.num_classes,
                                      info.train_size, info.test_size, info.eps_text, info.hflip,
                                      status))
    imagenet, size = root / "imagenet" / "val", user.IMAGENET_SIZE
    entries.append(CatalogueEntry(
        "imagenet", (3, size, size), user.IMAGENET_CLASSES, None, None,
        user.IMAGENET_BUDGETS["linf"], True,
        (f"found in {imagenet}" if imagenet.is_dir() else "not found") +
        f" (validation set, resize {user.IMAGENET_RESIZE}, crop {size})"))
    return entries
