"""`specrobust eval` decodes a folder's test images a batch at a time: results identical, example
by example, to an evaluation of the same images held whole, and (slow) peak memory that does not
grow with the number of images."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from specrobust.attacks.registry import parse_attacks
from specrobust.cli import main
from specrobust.data import load_dataset, streamed_test
from specrobust.evaluation.runner import evaluate
from specrobust.loading import ModelSource, resolve
from specrobust.models import create_model
from specrobust.settings import Settings
from tests_support import script

PIL = pytest.importorskip("PIL")
from PIL import Image  # noqa: E402


def _folder(root: Path, n: int, side: int) -> Path:
    rng = np.random.default_rng(0)
    for k in range(n):
        folder = root / f"class{k % 2}"
        folder.mkdir(parents=True, exist_ok=True)
        pixels = rng.integers(0, 256, (side + 6, side + 2, 3), np.uint8)
        Image.fromarray(pixels).save(folder / f"{k:05d}.jpg", quality=85)
    return root


def test_streamed_images_are_the_rows_of_the_whole_tensor(tmp_path):
    name = f"folder:{_folder(tmp_path / 'val', 12, 32)},size=32"
    whole = load_dataset(name, first_test=12).test
    info, images, labels = streamed_test(name, None, 12)
    assert len(images) == 12 and images.shape == (12, 3, 32, 32) and info.num_classes == 2
    floats = whole.as_float()
    assert torch.equal(images[3:9], floats[3:9]) and torch.equal(labels, whole.labels)
    assert torch.equal(images[torch.tensor([11, 0, 5])], floats[[11, 0, 5]])
    assert images[torch.tensor([], dtype=torch.long)].shape == (0, 3, 32, 32)


def test_a_streamed_evaluation_equals_one_of_the_images_held_whole(tmp_path):
    name = f"folder:{_folder(tmp_path / 'val', 30, 32)},size=32"
    torch.manual_seed(1)
    torch.save(create_model("cnn_small", 2).state_dict(), tmp_path / "w.pt")
    out = tmp_path / "e.json"
    assert main(["eval", str(tmp_path / "w.pt"), "--model", "cnn_small", "--dataset", name,
                 "--eps", "8/255", "--attacks", "clean,fgsm,pgd:steps=3", "--n", "30",
                 "--batch-size", "7", "--check-n", "10", "--out", str(out)]) == 0
    streamed = json.loads(out.read_text())
    model = resolve(ModelSource(str(tmp_path / "w.pt"), model="cnn_small", dataset=name)).model
    test = load_dataset(name, first_test=30).test
    held = evaluate(model, test.as_float(), test.labels, parse_attacks("clean,fgsm,pgd:steps=3"),
                    8 / 255, Settings(batch_size=7, check_n=10), checks=True).as_dict()
    assert streamed["per_example"] == held["per_example"]
    assert [c["ok"] for c in streamed["checks"]] == [c["ok"] for c in held["checks"]]


@pytest.mark.slow
def test_peak_memory_of_eval_does_not_grow_with_n(tmp_path):
    # 224-px images as floats are 0.6 MB each: held whole, 1,900 more would add over 1.1 GB.
    # A process's peak varies by a few hundred MB from run to run (allocator arenas, thread
    # pools), hence the margin. The benchmark's images, model and measurement.
    bench = script("benchmarks/memory_vs_n.py")
    bench.write_images(tmp_path / "big", 2000)
    (tmp_path / "arch.py").write_text(bench.MODEL)

    def peak_mb(n: int) -> float:
        return bench.peak(["eval", "--model", f"{tmp_path / 'arch.py'}:build", "--dataset",
                           f"folder:{tmp_path / 'big'},size=224,resize=256", "--eps", "4/255",
                           "--attacks", "clean,fgsm", "--no-checks", "--batch-size", "50",
                           "--n", str(n), "--out", str(tmp_path / f"e{n}.json")], tmp_path)[0]

    small, large = peak_mb(100), peak_mb(2000)
    assert large - small < 600, (small, large)
