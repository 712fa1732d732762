"""Datasets: registry, on-disk readers, splits and the device-side loader.

    >>> from specrobust.data import load_dataset
    >>> ds = load_dataset("fashion-mnist")            # finds Debian's copy or the data root
    >>> ds.train.images.shape, ds.train.images.dtype  # (60000, 1, 28, 28), torch.uint8
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from specrobust.data import store
from specrobust.data.loader import Augment, DeviceLoader
from specrobust.data.registry import DATASETS, DatasetInfo, get_dataset_info
from specrobust.data.splits import ImageSplit, class_balanced_subset, train_val_split
from specrobust.data.synthetic import SyntheticSpec
from specrobust.errors import SpecRobustError, quoted

__all__ = [
    "DATASETS", "Augment", "Dataset", "DatasetInfo", "DeviceLoader", "ImageSplit",
    "SyntheticSpec", "class_balanced_subset", "default_augment", "get_dataset_info",
    "load_dataset", "parse_dataset_name", "train_val_split", "verify_dataset",
]


@dataclass(frozen=True)
class Dataset:
    info: DatasetInfo
    train: ImageSplit
    test: ImageSplit
    source: str  # where it came from: a directory, or "generated: ..." for synthetic data
    class_names: tuple[str, ...]


def parse_dataset_name(text: str) -> tuple[str, dict[str, str]]:
    """``"synthetic:band=high,n_train=2000"`` -> ``("synthetic", {"band": "high", ...})``."""
    name, _, rest = text.partition(":")
    options: dict[str, str] = {}
    for item in filter(None, rest.split(",")):
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise SpecRobustError(f"dataset option {quoted(item)} in {quoted(text)} is not "
                                  "key=value")
        options[key.strip()] = value.strip()
    return name.strip(), options


def default_augment(info: DatasetInfo) -> Augment:
    """The paper's augmentation scaled to the image: 4 px crop padding on 32 px (1/8 of the
    side), flips only where they keep the label valid."""
    return Augment(crop_padding=max(1, info.image_shape[1] // 8), hflip=info.hflip)


def load_dataset(name: str, data_root: str | Path | None = None) -> Dataset:
    """Load both splits of a dataset into memory (uint8). ``name`` may carry options for the
    generated dataset: ``synthetic:band=high``."""
    base, options = parse_dataset_name(name)
    info = get_dataset_info(base)
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
    info = get_dataset_info(parse_dataset_name(name)[0])
    if info.generated:
        raise SpecRobustError(f"{info.name} is generated on the fly; there are no files to verify")
    layout, directory = store.locate(info, data_root)
    report = store.VerifyReport(info.name, directory, layout.name,
                                expected_train=info.train_size, expected_test=info.test_size)
    report.files = store.check_files(layout, directory)
    train, test = layout.reader(directory)
    report.train, report.test = len(train), len(test)
    return report
