"""The analysis suite on data whose answer is known: synthetic classes that live only in the low
(or only in the high) third of the spectrum."""

import json
import math

import pytest
import torch

from specrobust import fourier
from specrobust.analysis.band_attacks import band_attacks
from specrobust.analysis.context import PGD, AnalysisContext
from specrobust.analysis.filtering import filter_sweep
from specrobust.analysis.heatmap import fourier_heatmap
from specrobust.analysis.kernels import kernel_smoothness
from specrobust.analysis.logits import logit_gap
from specrobust.analysis.spectra import spectra

EPS = 8 / 255


@pytest.fixture(scope="module")
def contexts(natural_low):
    from trained_models import train_natural

    model_high, test_high = train_natural("high", epochs=6)  # its classes take longer to learn
    model_low, x_low, y_low = natural_low
    n = 120  # enough for clear differences; every image costs PGD-20 several times over
    return {
        "low": AnalysisContext(model_low, x_low[:n], y_low[:n], EPS),
        "high": AnalysisContext(model_high, test_high.as_float()[:n], test_high.labels[:n], EPS),
    }


def _adversarial(ctx: AnalysisContext) -> torch.Tensor:
    return torch.cat([batch.adversarial[PGD] for batch in ctx.stream({PGD: None})])


def _at(sweep: dict, kind: str, b: int, key: str = "clean") -> float:
    return sweep[kind][key][sweep[kind]["bandwidths"].index(b)]


def test_filtering_keeps_the_band_that_carries_the_classes(contexts):
    # 32x32 images: the low band is radius <= 5.3, which the centred 12 x 12 block contains; the
    # high band (radius > 10.7) lies wholly outside it.
    low = filter_sweep(contexts["low"], lowpass=[32, 12], highpass=[0, 12])
    high = filter_sweep(contexts["high"], lowpass=[32, 12], highpass=[0, 12])
    assert _at(low, "lowpass", 32) > 0.9 and _at(high, "lowpass", 32) > 0.9
    assert _at(low, "lowpass", 12) > 0.85 and _at(low, "highpass", 12) < 0.3
    assert _at(high, "lowpass", 12) < 0.3 and _at(high, "highpass", 12) > 0.85
    # unfiltered columns equal plain accuracy, and PGD-20 hurts a natural model
    assert _at(low, "highpass", 0) == _at(low, "lowpass", 32)
    assert _at(low, "lowpass", 32, "pgd20") < 0.2  # from all correct to about a tenth


def test_the_perturbation_goes_where_the_signal_is(contexts):
    low, high = spectra(contexts["low"]), spectra(contexts["high"])
    for result in (low, high):
        assert math.isclose(sum(result["perturbation_band_shares"].values()), 1, abs_tol=1e-4)
        assert math.isclose(sum(result["perturbation_radial_share"]), 1, abs_tol=1e-6)
        assert len(result["perturbation_amplitude"]) == 32
    assert low["perturbation_band_shares"]["low"] > high["perturbation_band_shares"]["low"]
    assert high["perturbation_band_shares"]["high"] > low["perturbation_band_shares"]["high"]
    assert low["perturbation_band_shares"]["low"] > low["perturbation_band_shares"]["high"]
    assert high["perturbation_band_shares"]["high"] > high["perturbation_band_shares"]["low"]


def test_bf16_analysis_attacks_where_fp32_does(contexts):
    fp32 = contexts["low"]
    bf16 = AnalysisContext(fp32.model, fp32.images, fp32.labels, EPS, precision="bf16")
    ours, theirs = spectra(bf16), spectra(fp32)
    for band, share in theirs["perturbation_band_shares"].items():
        assert ours["perturbation_band_shares"][band] == pytest.approx(share, abs=0.03)
    ours, theirs = _adversarial(bf16), _adversarial(fp32)
    assert not torch.equal(ours, theirs)  # bf16 did run
    assert (bf16.predict(ours) != fp32.predict(theirs)).float().mean() <= 0.05


def test_band_limited_attacks_hurt_most_in_the_signal_band(contexts):
    low, high = band_attacks(contexts["low"]), band_attacks(contexts["high"])
    assert low["bands"]["low"] < low["bands"]["high"]
    assert high["bands"]["high"] < high["bands"]["low"]
    for result in (low, high):
        assert result["unrestricted"] <= min(result["bands"].values()) + 0.02
        assert result["unrestricted"] <= result["clean"]


def _mean_error_in(result: dict, band: str) -> float:
    fy = torch.tensor(result["frequencies_y"], dtype=torch.float)[:, None]
    fx = torch.tensor(result["frequencies_x"], dtype=torch.float)[None, :]
    radius = (fy.square() + fx.square()).sqrt()
    nyquist = 16
    inside = {"low": radius <= nyquist / 3, "high": radius > 2 * nyquist / 3}[band]
    return float(torch.tensor(result["error_rate"])[inside].mean())


def test_fourier_heat_map_lights_up_in_the_signal_band(contexts):
    low = fourier_heatmap(contexts["low"], norm=6.0, n=60, stride=2)
    high = fourier_heatmap(contexts["high"], norm=6.0, n=60, stride=2)
    assert len(low["error_rate"]) == len(low["frequencies_y"]) == 16
    assert _mean_error_in(low, "low") > _mean_error_in(low, "high") + 0.1
    assert _mean_error_in(high, "high") > _mean_error_in(high, "low") + 0.1


class _Counting(torch.nn.Module):
    """A small fixed classifier that counts the images it judges."""

    def __init__(self, channels: int, size: int):
        super().__init__()
        torch.manual_seed(1)
        self.linear = torch.nn.Linear(channels * size * size, 3)
        self.images = 0

    def forward(self, x):
        self.images += len(x)
        return self.linear(x.flatten(1))


@pytest.mark.parametrize("size", [8, 7])
def test_heat_map_equals_every_cell_measured_and_measures_each_basis_image_once(size):
    """Against the definition measured cell by cell (no mirroring): the copied cells must hold
    what measuring them gives, and only the distinct basis images may be measured (on an even
    axis -N/2 is its own mirror: (N*N + 4) / 2 of N*N; on odd axes (N*N + 1) / 2)."""
    from specrobust import fourier, seeds
    from specrobust.analysis.context import AnalysisContext

    torch.manual_seed(0)
    images, labels = torch.rand(12, 3, size, size), torch.randint(0, 3, (12,))
    model = _Counting(3, size).eval()
    result = fourier_heatmap(AnalysisContext(model, images, labels, EPS, seed=5), norm=3.0, n=12)
    signs = (torch.randint(0, 2, (12,), generator=seeds.generator(5)) * 2 - 1).float()
    expected = []
    for fy in result["frequencies_y"]:
        row = []
        for fx in result["frequencies_x"]:
            basis = fourier.cosine_image((size, size), fy, fx)
            perturbed = (images + signs.view(-1, 1, 1, 1) * (3.0 / 3 ** 0.5) * basis).clamp(0, 1)
            with torch.no_grad():
                row.append(float((model.linear(perturbed.flatten(1)).argmax(1) != labels)
                                 .float().mean()))
        expected.append(row)
    assert torch.allclose(torch.tensor(result["error_rate"]), torch.tensor(expected), atol=1e-6)
    distinct = (size * size + (4 if size % 2 == 0 else 1)) // 2
    assert model.images == 12 * (distinct + 1)  # each distinct basis image, and the clean pass


def test_kernel_smoothness_is_zero_for_constant_kernels_and_high_for_random_ones():
    from specrobust.models import create_model

    torch.manual_seed(0)
    model = create_model("cnn_small", 10, 3)
    conv = next(m for m in model.modules() if isinstance(m, torch.nn.Conv2d))
    random_share = kernel_smoothness(model)["high_frequency_share"]
    assert 0.8 < random_share < 0.95  # about 1 - 1/9 for i.i.d. 3x3 weights
    with torch.no_grad():
        constant = torch.randn(conv.weight.shape[:2])[..., None, None]
        conv.weight.copy_(constant.expand_as(conv.weight))
    smooth = kernel_smoothness(model)
    assert smooth["high_frequency_share"] < 1e-6
    assert smooth["shape"] == list(conv.weight.shape) and smooth["layer"]


def test_logit_gap_is_zero_without_an_attack_and_positive_with_one(contexts):
    ctx = contexts["low"]
    attacked = logit_gap(ctx)
    assert attacked["sar_batch_class"] > 0 and attacked["sar_class"] > 0
    assert attacked["pgd20"] < attacked["clean"]
    calm = logit_gap(AnalysisContext(ctx.model, ctx.images, ctx.labels, 0.0))
    assert calm["sar_batch_class"] < 1e-5 and calm["l1_logit_gap"] < 1e-5


def test_band_masks_used_by_the_analysis_partition_the_spectrum():
    bands = fourier.default_bands(32)
    total = sum(mask.int() for mask in bands.values())
    assert torch.equal(total, torch.ones(32, 32, dtype=torch.int))


def test_results_are_plain_json(contexts):
    ctx = contexts["low"]
    for result in (filter_sweep(ctx, lowpass=[32, 16], highpass=[0, 4]), spectra(ctx),
                   kernel_smoothness(ctx.model), logit_gap(ctx)):
        assert json.loads(json.dumps(result)) == result


def test_a_part_is_one_registry_entry(tmp_path, request):
    """A new part registered once is run by `specrobust analyze`, fingerprinted, summarised,
    drawn and shown in the report: nothing else needs to know about it."""
    from specrobust.analysis import PARTS
    from specrobust.analysis.parts import Part
    from specrobust.checkpoint import save_checkpoint
    from specrobust.cli import main
    from specrobust.data import load_dataset
    from specrobust.models import create_model

    def plot(entries, path):
        from specrobust.figures import plt, save

        figure, axis = plt.subplots()
        axis.bar([label for label, _ in entries], [data["mean"] for _, data in entries])
        save(figure, path)

    class Brightness:  # a running sum over the pass it shares with the filter sweep
        attacks: dict = {}

        def __init__(self, ctx):
            self.total, self.pixels = 0.0, 0

        def add(self, batch):
            self.total += float(batch.clean.double().sum())
            self.pixels += batch.clean.numel()

        def result(self):
            return {"mean": self.total / self.pixels}

    brightness = Part("brightness", "Mean brightness", "The mean pixel value of the images.",
                      tally=Brightness, plot=plot,
                      headline=lambda result: {"mean brightness": result["mean"]})
    PARTS.add("brightness", brightness)
    request.addfinalizer(lambda: PARTS.remove("brightness"))
    run = tmp_path / "run"
    dataset = "synthetic:band=low,n_train=40,n_test=20"
    save_checkpoint(run / "checkpoints" / "best.pt", create_model("cnn_small", 10),
                    dataset=dataset, eps="8/255")
    assert main(["analyze", str(run), "--parts", "brightness,kernels,filter", "--n", "8",
                 "--batch-size", "3"]) == 0
    record = json.loads((run / "analysis" / "brightness.json").read_text())
    images = load_dataset(dataset).test.as_float()[:8].double()
    assert record["mean"] == pytest.approx(float(images.mean()), rel=1e-12)
    assert record["fingerprint"]["n"] == 8
    assert (run / "analysis" / "filter.json").is_file()
    assert (run / "analysis" / "brightness.png").read_bytes().startswith(b"\x89PNG")
    summary = json.loads((run / "analysis" / "summary.json").read_text())
    assert summary["numbers"]["mean brightness"] == record["mean"]
    assert main(["report", str(run), "-o", str(tmp_path / "r.html")]) == 0
    page = (tmp_path / "r.html").read_text()
    assert "Mean brightness" in page and "The mean pixel value of the images." in page
    for name, part in PARTS.items():  # the shipped parts are complete entries too
        assert part.name == name and part.title and part.explanation.endswith(".")


def test_an_analysis_says_it_starts_only_when_it_has_a_part_to_compute(tmp_path):
    """A resumed study announces the analyses it runs, not the ones it finds done."""
    from specrobust.analysis.job import AnalysisJob, run_analysis_job
    from specrobust.checkpoint import save_checkpoint
    from specrobust.loading import ModelSource
    from specrobust.models import create_model

    save_checkpoint(tmp_path / "run" / "checkpoints" / "best.pt", create_model("cnn_small", 10),
                    dataset="synthetic:band=low,n_train=40,n_test=20", eps="8/255")
    started = []
    for _ in range(2):
        run_analysis_job(AnalysisJob(source=ModelSource(str(tmp_path / "run")), parts="kernels",
                                     n=8, progress=False),
                         on_start=lambda: started.append(1))
    assert started == [1]  # the first time only: the second finds the part done


def test_the_attack_progress_moves_within_a_batch(contexts):
    # One batch can take minutes on a large model: the bar moves per gradient step.
    base = contexts["low"]
    seen = []
    context = AnalysisContext(base.model, base.images[:10], base.labels[:10], EPS,
                              batch_size=8, progress=lambda *a: seen.append(a))
    _adversarial(context)
    assert seen == [("pgd20", k, 40) for k in range(1, 41)]  # two batches of 20 steps


def test_the_logit_gap_groups_consecutive_images_across_the_batches_of_the_pass():
    """Groups of 128 images straddle the pass's batches of 50: the tally's SAR distances are
    those of the groups taken from all logits at once; the leftover 44 images join no group."""
    from specrobust.analysis.context import Batch
    from specrobust.analysis.logits import LogitTally
    from specrobust.sar import sar_loss

    torch.manual_seed(0)
    n = 300
    clean, adversarial = torch.randn(n, 5, 1, 1), torch.randn(n, 5, 1, 1)
    labels = torch.randint(0, 5, (n,))
    ctx = AnalysisContext(torch.nn.Flatten(), clean, labels, EPS, batch_size=50)
    tally = LogitTally(ctx)
    for start in range(0, n, 50):
        tally.add(Batch(start, clean[start:start + 50], labels[start:start + 50],
                        {PGD: adversarial[start:start + 50]}))
    result = tally.result()
    z, z_adv = clean.flatten(1), adversarial.flatten(1)
    groups = [float(sar_loss(z[s:s + 128], z_adv[s:s + 128])) for s in (0, 128)]
    assert result["sar_batch_class"] == sum(groups) / 2
    assert result["sar_class"] == pytest.approx(float(sar_loss(z, z_adv, axes="class")), 1e-6)
    assert result["l1_logit_gap"] == pytest.approx(float((z_adv - z).abs().mean()), 1e-6)
    assert result["pgd20"] == float((z_adv.argmax(1) == labels).float().mean())
