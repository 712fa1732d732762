"""What specrobust knows about each dataset: shape, classes, budget, files, checksums, sources.

Checksums are MD5s, as the dataset authors publish them. For IDX files they are of the
*uncompressed* content, so a copy that was re-compressed (Debian's Fashion-MNIST package is)
verifies just the same; downloaded archives are checked against the archive's own MD5.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from specrobust.data import formats
from specrobust.data.splits import ImageSplit
from specrobust.numbers import parse_fraction
from specrobust.registry import Registry

Reader = Callable[[Path], tuple[ImageSplit, ImageSplit]]


@dataclass(frozen=True)
class FileSpec:
    name: str
    md5: str | None = None  # None: no published checksum for this file (size and parse checked)


@dataclass(frozen=True)
class Layout:
    """One on-disk form of a dataset: a directory (relative to the data root, or absolute for a
    system-wide copy), the files it must hold, and the reader that parses them."""

    name: str
    directory: str
    files: tuple[FileSpec, ...]
    reader: Reader
    gzip_ok: bool = False  # IDX files may sit there as NAME or NAME.gz


@dataclass(frozen=True)
class Download:
    """One official file to fetch; archives are unpacked into the data root."""

    urls: tuple[str, ...]
    filename: str
    md5: str
    directory: str  # where the file is saved, relative to the data root
    unpack: str | None = None  # "tar" or "zip"


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    title: str
    image_shape: tuple[int, int, int]  # (C, H, W)
    num_classes: int
    class_names: tuple[str, ...] | None  # None: read from the dataset's own files
    eps_text: str | None  # the usual L-inf budget, as papers write it (None: the user's data)
    train_size: int
    test_size: int
    hflip: bool  # horizontal flips keep labels valid (not for digits)
    layouts: tuple[Layout, ...] = ()
    downloads: tuple[Download, ...] = ()
    notes: str = ""
    # The usual L2 budget where the field has one (RobustBench's CIFAR-10 L2 leaderboard: 0.5);
    # None where there is none to default to: an L2 evaluation then asks for --eps.
    l2_eps_text: str | None = None

    def budget_text(self, norm: str) -> str | None:
        """The usual budget in that threat model (``linf`` or ``l2``), as papers write it."""
        return self.eps_text if norm == "linf" else self.l2_eps_text

    @property
    def eps(self) -> float:
        return parse_fraction(self.eps_text, f"{self.name} eps")

    @property
    def generated(self) -> bool:
        return not self.layouts


# ---------------------------------------------------------------------------------------------

_IDX_NAMES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)


def _idx_layouts(raw_md5s: tuple[str, ...], directories: tuple[str, ...]) -> tuple[Layout, ...]:
    files = tuple(FileSpec(name, md5) for name, md5 in zip(_IDX_NAMES, raw_md5s, strict=True))
    return tuple(
        Layout("idx", directory, files, formats.read_idx_dataset, gzip_ok=True)
        for directory in directories
    )


def _idx_downloads(base_urls: tuple[str, ...], gz_md5s: tuple[str, ...], directory: str):
    return tuple(
        Download(tuple(f"{base}{name}.gz" for base in base_urls), f"{name}.gz", md5, directory)
        for name, md5 in zip(_IDX_NAMES, gz_md5s, strict=True)
    )


FASHION_MNIST = DatasetInfo(
    name="fashion-mnist",
    title="Fashion-MNIST",
    image_shape=(1, 28, 28),
    num_classes=10,
    class_names=("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                 "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
    eps_text="0.1",
    train_size=60000,
    test_size=10000,
    hflip=True,
    layouts=_idx_layouts(
        ("f4a8712d7a061bf5bd6d2ca38dc4d50a", "9018921c3c673c538a1fc5bad174d6f9",
         "8181f5470baa50b63fa0f6fddb340f0a", "15d484375f8d13e6eb1aabb0c3f46965"),
        # torchvision's layout under the data root, then Debian's dataset-fashion-mnist package.
        ("FashionMNIST/raw", "/usr/share/datasets/fashion-mnist"),
    ),
    downloads=_idx_downloads(
        ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
         "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/"),
        ("8d4fb7e6c68d591d4c3dfef9ec88bf0d", "25c81989df183df01b3e8a0aad5dffbe",
         "bef4ecab320f06d8554ea6380940ec79", "bb300cfdad3c16e7a12a480ee83cd310"),
        "FashionMNIST/raw",
    ),
    notes="On Debian: apt-get install dataset-fashion-mnist.",
)

MNIST = DatasetInfo(
    name="mnist",
    title="MNIST",
    image_shape=(1, 28, 28),
    num_classes=10,
    class_names=tuple(str(d) for d in range(10)),
    eps_text="0.3",
    train_size=60000,
    test_size=10000,
    hflip=False,
    layouts=_idx_layouts(
        ("6bbc9ace898e44ae57da46a324031adb", "a25bea736e30d166cdddb491f175f624",
         "2646ac647ad5339dbf082846283269ea", "27ae3e4e09519cfbb04c329615203637"),
        ("MNIST/raw",),
    ),
    downloads=_idx_downloads(
        ("https://ossci-datasets.s3.amazonaws.com/mnist/",
         "http://yann.lecun.com/exdb/mnist/"),
        ("f68b3c2dcbeaaa9fbdd348bbdeb94873", "d53e105ee54ea40749a09fcbcd1e9432",
         "9fb629c4189551a2d022fa330f9573f3", "ec29112dd5afa0611ce80d1b7f02629c"),
        "MNIST/raw",
    ),
)

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer",
                   "dog", "frog", "horse", "ship", "truck")

CIFAR10 = DatasetInfo(
    name="cifar10",
    title="CIFAR-10",
    image_shape=(3, 32, 32),
    num_classes=10,
    class_names=CIFAR10_CLASSES,
    eps_text="8/255",
    l2_eps_text="0.5",
    train_size=50000,
    test_size=10000,
    hflip=True,
    layouts=(
        Layout("binary", "cifar-10-batches-bin", (
            FileSpec("data_batch_1.bin", "5dd7e06a14cb22eb9f671a540d1b7c25"),
            FileSpec("data_batch_2.bin", "5ea93a67294ea407fff1d09f752e9692"),
            FileSpec("data_batch_3.bin", "942cd6a4bcdd0dd3c604fbe906cb4421"),
            FileSpec("data_batch_4.bin", "ae636b3ba5c66a11e91e8cb52e771fcb"),
            FileSpec("data_batch_5.bin", "53f37980c15c3d472c316c40844f3f0d"),
            FileSpec("test_batch.bin", "803d5f7f4d78ea53de84dbe85f74fb6d"),
        ), formats.read_cifar10_binary),
        Layout("python", "cifar-10-batches-py", (
            FileSpec("data_batch_1", "c99cafc152244af753f735de768cd75f"),
            FileSpec("data_batch_2", "d4bba439e000b95fd0a9bffe97cbabec"),
            FileSpec("data_batch_3", "54ebc095f3ab1f0389bbae665268c751"),
            FileSpec("data_batch_4", "634d18415352ddfa80567beed471001a"),
            FileSpec("data_batch_5", "482c414d41f54cd18b22e5b47cb7c3cb"),
            FileSpec("test_batch", "40351d587109b95175f43aff81a1287e"),
        ), formats.read_cifar10_pickle),
    ),
    # The binary archive, not the pickled one: nothing in it can carry code.
    downloads=(Download(("https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz",),
                        "cifar-10-binary.tar.gz", "c32a1d4ab5d03f1284b67883e8d87530", ".",
                        unpack="tar"),),
)

CIFAR100_CLASSES = tuple("""
apple aquarium_fish baby bear beaver bed bee beetle bicycle bottle bowl boy bridge bus butterfly
camel can castle caterpillar cattle chair chimpanzee clock cloud cockroach couch crab crocodile
cup dinosaur dolphin elephant flatfish forest fox girl hamster house kangaroo keyboard lamp
lawn_mower leopard lion lizard lobster man maple_tree motorcycle mountain mouse mushroom oak_tree
orange orchid otter palm_tree pear pickup_truck pine_tree plain plate poppy porcupine possum
rabbit raccoon ray road rocket rose sea seal shark shrew skunk skyscraper snail snake spider
squirrel streetcar sunflower sweet_pepper table tank telephone television tiger tractor train
trout tulip turtle wardrobe whale willow_tree wolf woman worm
""".split())

CIFAR100 = DatasetInfo(
    name="cifar100",
    title="CIFAR-100",
    image_shape=(3, 32, 32),
    num_classes=100,
    class_names=CIFAR100_CLASSES,
    eps_text="8/255",
    train_size=50000,
    test_size=10000,
    hflip=True,
    layouts=(
        Layout("binary", "cifar-100-binary", (
            FileSpec("train.bin", "6172c7755cfe09b2fe270c85cebc1b15"),
            FileSpec("test.bin", "4499cfba6c016c1be1438163640a0898"),
        ), formats.read_cifar100_binary),
        Layout("python", "cifar-100-python", (
            FileSpec("train", "16019d7e3df5f24257cddd939b257f8d"),
            FileSpec("test", "f0ef6b0ae62326f3e7ffdfab6717acfc"),
        ), formats.read_cifar100_pickle),
    ),
    downloads=(Download(("https://www.cs.toronto.edu/~kriz/cifar-100-binary.tar.gz",),
                        "cifar-100-binary.tar.gz", "03b5dce01913d631647c71ecec9e9cb8", ".",
                        unpack="tar"),),
)

_SVHN_FILES = (
    FileSpec("train_32x32.mat", "e26dedcc434d2e4c54c9b2d4a06d8373"),
    FileSpec("test_32x32.mat", "eb5a983be6a315427106f1b164d9cef3"),
)

SVHN = DatasetInfo(
    name="svhn",
    title="SVHN (cropped digits)",
    image_shape=(3, 32, 32),
    num_classes=10,
    class_names=tuple(str(d) for d in range(10)),
    eps_text="8/255",
    train_size=73257,
    test_size=26032,
    hflip=False,
    layouts=(
        Layout("mat", "svhn", _SVHN_FILES, formats.read_svhn),
        Layout("mat", ".", _SVHN_FILES, formats.read_svhn),  # torchvision keeps them in the root
    ),
    downloads=tuple(
        Download((f"http://ufldl.stanford.edu/housenumbers/{spec.name}",), spec.name, spec.md5,
                 "svhn")
        for spec in _SVHN_FILES
    ),
    notes="Reading needs scipy: pip install 'specrobust[svhn]'.",
)

TINY_IMAGENET = DatasetInfo(
    name="tinyimagenet",
    title="Tiny ImageNet-200",
    image_shape=(3, 64, 64),
    num_classes=200,
    class_names=None,
    eps_text="8/255",
    train_size=100000,
    test_size=10000,  # the labelled validation set serves as test set
    hflip=True,
    layouts=(
        Layout("folders", "tiny-imagenet-200", (
            FileSpec("wnids.txt"), FileSpec("words.txt"), FileSpec("val/val_annotations.txt"),
        ), formats.read_tiny_imagenet),
    ),
    downloads=(Download(("http://cs231n.stanford.edu/tiny-imagenet-200.zip",),
                        "tiny-imagenet-200.zip", "90528d7ca1a48142e341f4ef8d21d0de", ".",
                        unpack="zip"),),
    notes="Reading needs Pillow: pip install 'specrobust[tinyimagenet]'. Class names come from "
    "wnids.txt/words.txt; the labelled val/ split is used as the test set.",
)

SYNTHETIC = DatasetInfo(
    name="synthetic",
    title="Synthetic band-limited classes",
    image_shape=(3, 32, 32),
    num_classes=10,
    class_names=tuple(f"class {k}" for k in range(10)),
    eps_text="8/255",
    train_size=5000,
    test_size=1000,
    hflip=False,  # class patterns are oriented cosines; a flip changes the class signal
    notes="Generated, nothing to download; options such as synthetic:band=high,n_train=2000.",
)

# The built-in datasets by name (`specrobust data list`).
DATASETS: Registry[DatasetInfo] = Registry("dataset", hint=" (or folder:DIR, npz:FILE, imagenet)")
for _info in (FASHION_MNIST, MNIST, CIFAR10, CIFAR100, SVHN, TINY_IMAGENET, SYNTHETIC):
    DATASETS.add(_info.name, _info)
