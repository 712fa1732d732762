"""RobustBench's ImageNet: its 5,000-image evaluation subset (``imagenet:subset=robustbench``)
and the key layout of its ImageNet checkpoints (RobustBench's ``model_zoo/imagenet.py`` wraps
torchvision's ResNet-50 and Wide-ResNet-50-2 as ``Sequential(normalize, model)``; its loader
strips ``module.`` and ``model.`` from the saved keys)."""

import hashlib
import subprocess
import sys

import numpy as np
import pytest
import torch

from specrobust.data import load_dataset, robustbench
from specrobust.errors import SpecRobustError
from specrobust.loading import ModelSource, resolve
from specrobust.models import create_model

PIL = pytest.importorskip("PIL")
from PIL import Image  # noqa: E402

WNIDS = [f"n{k:08d}" for k in range(1000)]
# A list in RobustBench's format, not in class order: the subset keeps the list's order.
PICKED = [(WNIDS[k], f"ILSVRC2012_val_{n:08d}.JPEG") for k, n in
          ((7, 3), (2, 1), (999, 2000), (7, 4), (500, 7))]


def _jpeg(path, seed):
    pixels = np.random.default_rng(seed).integers(0, 256, (16, 16, 3), np.uint8)
    Image.fromarray(pixels).save(path, format="JPEG")


@pytest.fixture
def imagenet(tmp_path, monkeypatch):
    """A data root holding an ImageNet validation set in class folders (one decoy image per
    class besides the listed ones) and the list, accepted as RobustBench's."""
    val = tmp_path / "root" / "imagenet" / "val"
    for k, wnid in enumerate(WNIDS):
        (val / wnid).mkdir(parents=True)
        _jpeg(val / wnid / f"ILSVRC2012_val_{90000 + k:08d}.JPEG", k)
    for k, (wnid, name) in enumerate(PICKED):
        _jpeg(val / wnid / name, 5000 + k)
    text = "\n".join(f"{wnid}/{name}" for wnid, name in PICKED).encode()
    monkeypatch.setattr(robustbench, "SHA256", hashlib.sha256(text).hexdigest())
    monkeypatch.setattr(robustbench, "_installed", lambda: None)
    (tmp_path / "root" / robustbench.COPY).write_bytes(text)
    return tmp_path / "root"


def test_the_subset_is_robustbenchs_images_in_its_order(imagenet):
    dataset = load_dataset("imagenet:subset=robustbench", imagenet)
    assert dataset.test.labels.tolist() == [7, 2, 999, 7, 500]
    whole = load_dataset("imagenet", imagenet, first_test=3)
    assert whole.test.labels.tolist() == [0, 1, 2]  # without it: every class in turn
    first = load_dataset("imagenet:subset=robustbench", imagenet, first_test=2)
    assert torch.equal(first.test.images, dataset.test.images[:2])


def test_the_flat_release_takes_its_labels_from_val_txt(tmp_path, monkeypatch):
    val = tmp_path / "root" / "imagenet" / "val"
    val.mkdir(parents=True)
    lines = []
    for k, (_, name) in enumerate(PICKED):
        _jpeg(val / name, k)
        lines.append(f"{name} {[7, 2, 999, 7, 500][k]}")
    (val / "val.txt").write_text("\n".join(lines) + "\n")
    text = "\n".join(f"{wnid}/{name}" for wnid, name in reversed(PICKED)).encode()
    monkeypatch.setattr(robustbench, "SHA256", hashlib.sha256(text).hexdigest())
    monkeypatch.setattr(robustbench, "_installed", lambda: None)
    (tmp_path / "root" / robustbench.COPY).write_bytes(text)
    dataset = load_dataset("imagenet:subset=robustbench", tmp_path / "root")
    assert dataset.test.labels.tolist() == [500, 7, 999, 2, 7]


def test_a_missing_image_or_another_list_is_one_line(imagenet, monkeypatch):
    (imagenet / "imagenet" / "val" / PICKED[2][0] / PICKED[2][1]).unlink()
    with pytest.raises(SpecRobustError, match="lacks 1 of RobustBench's 5 images"):
        load_dataset("imagenet:subset=robustbench", imagenet)
    monkeypatch.setattr(robustbench, "SHA256", "0" * 64)
    with pytest.raises(SpecRobustError, match="not the one of RobustBench 1.1.1"):
        load_dataset("imagenet:subset=robustbench", imagenet)
    (imagenet / robustbench.COPY).unlink()
    with pytest.raises(SpecRobustError, match="data fetch imagenet:subset=robustbench"):
        load_dataset("imagenet:subset=robustbench", imagenet)
    with pytest.raises(SpecRobustError, match="subset is robustbench"):
        load_dataset("imagenet:subset=all", imagenet)


@pytest.mark.parametrize("name", ["imagenet_resnet50", "imagenet_wrn50_2"])
def test_robustbench_imagenet_checkpoints_load(imagenet, tmp_path, name):
    """As RobustBench's loader reads them: ``state_dict`` holding torchvision's keys behind
    ``module.`` (or ``module.model.``), its normalisation layer's buffers beside them."""
    torch.manual_seed(0)
    net = create_model(name, 1000).net.eval()
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    images = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        expected = net((images - mean) / std)
    for prefix in ("module.", "module.model."):
        state = {f"{prefix}{k}": v for k, v in net.state_dict().items()}
        if prefix == "module.model.":
            state |= {"module.normalize.mean": mean, "module.normalize.std": std}
        torch.save({"state_dict": state}, tmp_path / "published.pt")
        loaded = resolve(ModelSource(str(tmp_path / "published.pt"), model=name,
                                     dataset="imagenet", data_root=str(imagenet)))
        with torch.no_grad():
            assert torch.allclose(loaded.model(images), expected, atol=1e-5)


@pytest.mark.slow
def test_the_real_list_is_fetched_alone_and_checked(tmp_path):
    """RobustBench's own file, from its wheel on the package index (skipped offline)."""
    done = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--dest",
                           str(tmp_path / "probe"), "pip==24.0"], capture_output=True)
    if done.returncode != 0:
        pytest.skip("no package index reachable")
    path = robustbench.fetch(tmp_path / "root")
    pairs = robustbench.image_ids(tmp_path / "root")
    assert path.is_file() and len(pairs) == robustbench.IMAGES == len(set(pairs))
    assert len({wnid for wnid, _ in pairs}) == 997  # three classes have none of the 5,000
    assert pairs[0] == ("n09468604", "ILSVRC2012_val_00015253.JPEG")
