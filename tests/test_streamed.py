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


def test_prefetching_decodes_the_batches_in_order_and_never_more_than_one_ahead():
    from specrobust.data.streamed import StreamedImages, prefetched

    pixels = torch.randint(0, 256, (23, 1, 4, 4), dtype=torch.uint8)
    decoded = []

    def decode(positions):
        decoded.append(positions)
        return pixels[positions]

    images = StreamedImages(decode, 23, (1, 4, 4))
    keys = [slice(s, s + 5) for s in range(0, 23, 5)]
    for k, batch in enumerate(prefetched(images, keys)):
        assert torch.equal(batch, pixels[keys[k]].float() / 255)
        assert len(decoded) <= k + 2  # this batch, and at most the next one
    assert decoded == [list(range(23))[key] for key in keys]
    held = pixels.float()
    assert [b.tolist() for b in prefetched(held, keys)] == [held[key].tolist() for key in keys]


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


def test_a_streamed_analysis_equals_the_definitions_on_the_images_held_whole(tmp_path):
    """The one pass keeps per-example outcomes and sums: against each part's quantity computed
    on all n images at once (the PGD-20 images made batch by batch as always), outcomes are
    equal and means equal to float32 rounding."""
    from specrobust import fourier, seeds
    from specrobust.attacks import folded_for_attack, pgd
    from specrobust.attacks.pgd import default_step
    from specrobust.sar import sar_loss

    n, batch, eps = 30, 7, 8 / 255
    name = f"folder:{_folder(tmp_path / 'val', n, 32)},size=32"
    torch.manual_seed(1)
    torch.save(create_model("cnn_small", 2).state_dict(), tmp_path / "w.pt")
    assert main(["analyze", str(tmp_path / "w.pt"), "--model", "cnn_small", "--dataset", name,
                 "--eps", "8/255", "--parts", "filter,spectra,logits,bands", "--n", str(n),
                 "--batch-size", str(batch), "--out", str(tmp_path / "a")]) == 0
    found = {part: json.loads((tmp_path / "a" / f"{part}.json").read_text())
             for part in ("filter", "spectra", "logits", "bands")}

    model = resolve(ModelSource(str(tmp_path / "w.pt"), model="cnn_small", dataset=name)).model
    test = load_dataset(name, first_test=n).test
    x, y = test.as_float(), test.labels
    folded = folded_for_attack(model)  # what every attack runs on

    def attacked(label: str, mask=None) -> torch.Tensor:
        return torch.cat([pgd(folded, x[s:s + batch], y[s:s + batch], eps, default_step(eps), 20,
                              mask=mask, generator=seeds.generator(seeds.batch(0, label, s)))
                          for s in range(0, n, batch)])

    def logits(images: torch.Tensor) -> torch.Tensor:  # in the batches of the pass
        with torch.no_grad():
            return torch.cat([model(images[s:s + batch]) for s in range(0, n, batch)])

    def correct(images: torch.Tensor) -> torch.Tensor:
        return logits(images).argmax(1) == y

    def accuracy(images: torch.Tensor) -> float:
        return float(correct(images).float().mean())

    x_adv = attacked("pgd20")
    low = found["filter"]["lowpass"]
    for b, clean, robust in zip(low["bandwidths"], low["clean"], low["pgd20"], strict=True):
        mask = fourier.square_lowpass_mask(32, b)
        assert (clean, robust) == (accuracy(fourier.filter(x, mask)),
                                   accuracy(fourier.filter(x_adv, mask)))
    bands = found["bands"]
    assert bands["unrestricted"] == float((correct(x) & correct(x_adv)).float().mean())
    for band, mask in fourier.default_bands(32).items():
        robust = correct(x) & correct(attacked(f"pgd20-{band}", mask))
        assert bands["bands"][band] == float(robust.float().mean())
    z, z_adv = logits(x), logits(x_adv)
    gap = found["logits"]
    assert gap["sar_batch_class"] == float(sar_loss(z, z_adv))  # n < 128: one group
    assert gap["sar_class"] == pytest.approx(float(sar_loss(z, z_adv, axes="class")), 1e-6)
    assert gap["pgd20"] == accuracy(x_adv)
    spectra = found["spectra"]
    assert torch.allclose(torch.tensor(spectra["perturbation_amplitude"]),
                          fourier.mean_amplitude_spectrum(x_adv - x), rtol=1e-5)
    assert spectra["clean_band_shares"] == pytest.approx(fourier.band_energy_shares(x), 1e-6)


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


@pytest.mark.slow
def test_peak_memory_of_analyze_does_not_grow_with_n_under_a_hard_limit(tmp_path):
    """The analyses' pass over 800 224-px images runs within the address space that 100 took
    plus 1 GB (the images and their PGD-20 copies held whole would take over 3 GB more), and its
    resident peak stays within the run-to-run margin of eval's test."""
    bench = script("benchmarks/memory_vs_n.py")
    bench.write_images(tmp_path / "big", 800)
    (tmp_path / "arch.py").write_text(bench.MODEL)

    def run(n: int, address_space_mb: float | None = None) -> tuple[float, float, float]:
        return bench.peak(["analyze", "--model", f"{tmp_path / 'arch.py'}:build", "--dataset",
                           f"folder:{tmp_path / 'big'},size=224,resize=256", "--eps", "4/255",
                           "--parts", "spectra,logits", "--batch-size", "50", "--n", str(n),
                           "--out", str(tmp_path / f"a{n}")], tmp_path,
                          address_space_mb=address_space_mb)

    small, _, small_virtual = run(100)
    large, _, _ = run(800, address_space_mb=small_virtual + 1024)
    assert large - small < 600, (small, large)
