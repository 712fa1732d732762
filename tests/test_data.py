"""Registry, splits, the synthetic dataset, fetching, and the device-side loader."""

import hashlib
import io
import tarfile
from dataclasses import replace

import pytest
import torch

from formats_on_disk import cifar_binary_bytes, random_images, random_labels
from specrobust import fourier
from specrobust.data import (
    DATASETS,
    Augment,
    DeviceLoader,
    ImageSplit,
    class_balanced_subset,
    load_dataset,
    parse_dataset_name,
    store,
    train_val_split,
)
from specrobust.data.registry import Download
from specrobust.errors import SpecRobustError


def _split(n=100, classes=10, shape=(3, 8, 8)):
    return ImageSplit(torch.from_numpy(random_images(n, shape)),
                      torch.from_numpy(random_labels(n, classes)).long())


def test_registry_entries_are_complete():
    assert set(DATASETS) == {"fashion-mnist", "mnist", "cifar10", "cifar100", "svhn",
                             "tinyimagenet", "synthetic"}
    for info in DATASETS.values():
        assert len(info.image_shape) == 3 and info.num_classes >= 2
        assert info.eps > 0 and info.train_size > 0 and info.test_size > 0
        if info.class_names is not None:
            assert len(info.class_names) == info.num_classes
            assert len(set(info.class_names)) == info.num_classes
        if not info.generated:
            assert info.downloads and all(d.md5 and d.urls for d in info.downloads)
    assert DATASETS["cifar10"].eps == pytest.approx(8 / 255)
    assert not DATASETS["mnist"].hflip and DATASETS["cifar10"].hflip
    with pytest.raises(SpecRobustError, match="unknown dataset 'imagenet'"):
        DATASETS["imagenet"]


def test_train_val_split_is_seeded_disjoint_and_nine_to_one():
    split = _split(100)
    split.images[:, 0, 0, 0] = torch.arange(100, dtype=torch.uint8)  # identify each example
    train, val = train_val_split(split, 0.1, seed=3)
    assert (len(train), len(val)) == (90, 10)
    ids = torch.cat([train.images[:, 0, 0, 0], val.images[:, 0, 0, 0]])
    assert sorted(ids.tolist()) == list(range(100))
    again, _ = train_val_split(split, 0.1, seed=3)
    other, _ = train_val_split(split, 0.1, seed=4)
    assert torch.equal(again.images, train.images) and not torch.equal(other.images, train.images)
    with pytest.raises(SpecRobustError):
        train_val_split(split, 1.0)


def test_class_balanced_subset():
    split = _split(200, classes=10)
    subset = class_balanced_subset(split, 23, num_classes=10, seed=1)
    counts = subset.class_counts(10)
    assert counts.sum() == 23 and counts.max() - counts.min() <= 1
    assert torch.equal(class_balanced_subset(split, 23, 10, seed=1).images, subset.images)
    with pytest.raises(SpecRobustError, match="class"):
        class_balanced_subset(split, 200, num_classes=5, seed=0)  # labels 5..9 never drawn
    with pytest.raises(SpecRobustError):
        class_balanced_subset(split, 0, 10)


def test_parse_dataset_name():
    assert parse_dataset_name("cifar10") == ("cifar10", {})
    assert parse_dataset_name("synthetic:band=high,n_train=20") == (
        "synthetic", {"band": "high", "n_train": "20"})
    with pytest.raises(SpecRobustError):
        parse_dataset_name("synthetic:band")


@pytest.mark.parametrize("band", ["low", "high"])
def test_synthetic_signal_lives_in_its_band(band):
    dataset = load_dataset(f"synthetic:band={band},n_train=400,n_test=100")
    assert len(dataset.train) == 400 and dataset.train.class_counts(10).tolist() == [40] * 10
    again = load_dataset(f"synthetic:band={band},n_train=400,n_test=100")
    assert torch.equal(again.train.images, dataset.train.images)
    # The class means differ only inside the chosen band: the signal is where we put it.
    images = dataset.train.as_float()
    means = torch.stack([images[dataset.train.labels == k].mean(0) for k in range(10)])
    signal = means - means.mean(0, keepdim=True)
    bands = fourier.default_bands(32)
    assert fourier.energy_share(signal, bands[band]).min() > 0.95
    other = "high" if band == "low" else "low"
    assert fourier.energy_share(signal, bands[other]).max() < 0.03


def test_synthetic_options_are_checked():
    with pytest.raises(SpecRobustError, match="unknown synthetic option 'colour'"):
        load_dataset("synthetic:colour=red")
    with pytest.raises(SpecRobustError, match="n_train must be a int"):
        load_dataset("synthetic:n_train=many")
    with pytest.raises(SpecRobustError, match="band"):
        load_dataset("synthetic:band=ultra")
    with pytest.raises(SpecRobustError, match="takes no options"):
        load_dataset("cifar10:band=low")


# ---------------------------------------------------------------------------------------------
# Fetching, with file:// URLs standing in for the official servers
# ---------------------------------------------------------------------------------------------


def _cifar_archive(path, members):
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return hashlib.md5(path.read_bytes()).hexdigest()


def test_fetch_downloads_checks_and_unpacks(tmp_path):
    images, labels = random_images(10, (3, 32, 32)), random_labels(10, 10)
    record = cifar_binary_bytes(images, labels)
    members = {f"cifar-10-batches-bin/data_batch_{i}.bin": record for i in range(1, 6)}
    members["cifar-10-batches-bin/test_batch.bin"] = record
    archive = tmp_path / "server" / "cifar-10-binary.tar.gz"
    archive.parent.mkdir()
    md5 = _cifar_archive(archive, members)
    info = replace(DATASETS["cifar10"], downloads=(
        Download(("file:///nonexistent/mirror.tar.gz", archive.as_uri()),
                 "cifar-10-binary.tar.gz", md5, ".", unpack="tar"),))
    root = tmp_path / "root"
    layout, directory = store.fetch(info, root)
    assert layout.name == "binary" and directory == root / "cifar-10-batches-bin"
    assert not (root / "cifar-10-binary.tar.gz").exists()  # archive removed after unpacking
    assert store.fetch(info, root)[1] == directory  # already present: nothing to do


def test_fetch_rejects_wrong_checksum_and_leaves_nothing(tmp_path):
    archive = tmp_path / "a.tar.gz"
    _cifar_archive(archive, {"cifar-10-batches-bin/test_batch.bin": b"x"})
    info = replace(DATASETS["cifar10"], downloads=(
        Download((archive.as_uri(),), "cifar-10-binary.tar.gz", "0" * 32, ".", unpack="tar"),))
    with pytest.raises(SpecRobustError, match="MD5") as error:
        store.fetch(info, tmp_path / "root")
    assert "data_batch_1.bin" in str(error.value)  # says what to put where
    assert not any((tmp_path / "root").iterdir())


def test_fetch_refuses_archive_members_outside_the_root(tmp_path):
    archive = tmp_path / "evil.tar.gz"
    md5 = _cifar_archive(archive, {"../escaped.txt": b"x"})
    info = replace(DATASETS["cifar10"], downloads=(
        Download((archive.as_uri(),), "cifar-10-binary.tar.gz", md5, ".", unpack="tar"),))
    with pytest.raises(SpecRobustError, match="outside"):
        store.fetch(info, tmp_path / "root")
    assert not (tmp_path / "escaped.txt").exists()


def test_offline_fetch_gives_one_clear_error(tmp_path):
    info = replace(DATASETS["mnist"], downloads=tuple(
        replace(d, urls=("http://127.0.0.1:9/" + d.filename,))
        for d in DATASETS["mnist"].downloads))
    with pytest.raises(SpecRobustError) as error:
        store.fetch(info, tmp_path)
    message = str(error.value)
    assert "MNIST could not be downloaded" in message and "train-images-idx3-ubyte" in message
    assert "http://127.0.0.1:9/train-images-idx3-ubyte.gz" in message  # where to get it
    assert "data fetch" not in message  # not the command that just failed
    assert "\n" not in message


def test_data_root_resolution(tmp_path, monkeypatch):
    monkeypatch.setenv("SPECROBUST_DATA", str(tmp_path / "env"))
    assert store.resolve_data_root(None) == tmp_path / "env"
    assert store.resolve_data_root(tmp_path / "arg") == tmp_path / "arg"
    monkeypatch.delenv("SPECROBUST_DATA")
    assert store.resolve_data_root(None).parts[-2:] == (".cache", "specrobust")


# ---------------------------------------------------------------------------------------------
# Loader
# ---------------------------------------------------------------------------------------------


def test_loader_visits_every_example_once_per_epoch_in_a_seeded_order():
    split = _split(50)
    split.images[:, 0, 0, 0] = torch.arange(50, dtype=torch.uint8)
    loader = DeviceLoader(split, 16, shuffle=True, seed=5)
    assert len(loader) == 4
    seen = torch.cat([x[:, 0, 0, 0] for x, _ in loader])
    assert sorted((seen * 255).round().long().tolist()) == list(range(50))
    second = torch.cat([x[:, 0, 0, 0] for x, _ in loader])  # epoch 1: another order
    assert not torch.equal(seen, second)
    loader.set_epoch(0)
    assert torch.equal(torch.cat([x[:, 0, 0, 0] for x, _ in loader]), seen)
    for images, labels in DeviceLoader(split, 16):
        assert images.dtype == torch.float32 and images.min() >= 0 and images.max() <= 1
        assert labels.dtype == torch.int64
    assert len(DeviceLoader(split, 16, drop_last=True)) == 3


def test_random_crop_is_a_shifted_window_of_the_zero_padded_image():
    split = _split(64, shape=(2, 8, 8))
    loader = DeviceLoader(split, 64, augment=Augment(crop_padding=2), seed=1)
    (crops, _), = list(loader)
    originals = split.as_float()
    padded = torch.nn.functional.pad(originals, (2, 2, 2, 2))
    shifts = set()
    for crop, image in zip(crops, padded, strict=True):
        matches = [(dy, dx) for dy in range(5) for dx in range(5)
                   if torch.equal(image[:, dy:dy + 8, dx:dx + 8], crop)]
        assert matches, "a crop is not a window of its padded image"
        shifts.add(matches[0])
    assert len(shifts) > 5  # offsets vary across the batch


def test_flip_flips_about_half_and_keeps_the_rest():
    split = _split(200, shape=(1, 4, 4))
    (images, _), = list(DeviceLoader(split, 200, augment=Augment(hflip=True), seed=2))
    originals = split.as_float()
    same = (images == originals).flatten(1).all(1)
    flipped = (images == originals.flip(-1)).flatten(1).all(1)
    assert (same | flipped).all()
    assert 60 < int((flipped & ~same).sum()) < 140


def test_loader_errors():
    with pytest.raises(SpecRobustError):
        DeviceLoader(_split(10), 0)
