import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from specrobust import fourier
from specrobust.errors import SpecRobustError

sizes = st.tuples(st.integers(4, 20), st.integers(4, 20))


def _images(shape, seed):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


@settings(max_examples=40, deadline=None)
@given(size=sizes, seed=st.integers(0, 2**16))
def test_all_pass_mask_is_identity(size, seed):
    x = _images((2, 3, *size), seed)
    assert torch.allclose(fourier.filter(x, fourier.all_pass_mask(size)), x, atol=1e-12)


@settings(max_examples=40, deadline=None)
@given(size=sizes, seed=st.integers(0, 2**16), data=st.data())
def test_complementary_masks_sum_back_to_input(size, seed, data):
    x = _images((2, 3, *size), seed)
    b = data.draw(st.integers(0, min(size)))
    low = fourier.filter(x, fourier.square_lowpass_mask(size, b))
    high = fourier.filter(x, fourier.square_highpass_mask(size, b))
    assert torch.allclose(low + high, x, atol=1e-12)
    r = data.draw(st.floats(0, 15))
    low = fourier.filter(x, fourier.radial_lowpass_mask(size, r))
    high = fourier.filter(x, fourier.radial_highpass_mask(size, r))
    assert torch.allclose(low + high, x, atol=1e-12)


@settings(max_examples=40, deadline=None)
@given(size=sizes, seed=st.integers(0, 2**16))
def test_parseval(size, seed):
    x = _images((3, *size), seed)
    spatial = x.square().sum()
    spectral = fourier.power_spectrum(x).sum()
    assert torch.allclose(spatial, spectral, rtol=1e-10)
    # The radial profile redistributes the same energy over rings (per image, mean over batch).
    profile = fourier.radial_profile(x[None])
    assert torch.allclose(profile.sum(), spatial, rtol=1e-10)


@settings(max_examples=60, deadline=None)
@given(size=sizes, data=st.data())
def test_pure_cosine_lands_at_its_frequency(size, data):
    h, w = size
    fy = data.draw(st.integers(-(h // 2) + 1, (h - 1) // 2))
    fx = data.draw(st.integers(-(w // 2) + 1, (w - 1) // 2))
    if fy == 0 and fx == 0:
        fx = 1
    phase = data.draw(st.floats(0, 2 * math.pi))
    wave = fourier.cosine_image(size, fy, fx, phase=phase).double()
    assert torch.isclose(wave.square().sum(), torch.tensor(1.0, dtype=torch.float64), atol=1e-6)
    power = fourier.power_spectrum(wave)
    grid_y, grid_x = fourier.frequency_grid(size)
    at_peak = ((grid_y == fy) & (grid_x == fx)) | ((grid_y == -fy) & (grid_x == -fx))
    assert power[at_peak].sum() == pytest.approx(1.0, abs=1e-6)
    assert power[~at_peak].sum() == pytest.approx(0.0, abs=1e-9)


def test_dc_sits_at_the_centre():
    x = torch.full((1, 1, 8, 6), 0.25, dtype=torch.float64)
    power = fourier.power_spectrum(x)[0, 0]
    assert torch.argmax(power).item() == 4 * 6 + 3


def test_square_lowpass_keeps_a_b_by_b_block_around_the_centre():
    mask = fourier.square_lowpass_mask(32, 16)
    assert mask.sum() == 16 * 16
    rows = torch.nonzero(mask.any(dim=1)).flatten()
    assert rows.min() == 8 and rows.max() == 23  # [c - b/2, c + b/2) with c = 16
    assert fourier.square_lowpass_mask(32, 32).all()
    with pytest.raises(SpecRobustError):
        fourier.square_lowpass_mask(32, 33)


@settings(max_examples=30, deadline=None)
@given(size=sizes, seed=st.integers(0, 2**16), data=st.data())
def test_hermitian_symmetric_masks_give_real_images_with_no_energy_outside(size, seed, data):
    x = _images((2, 3, *size), seed)
    b = data.draw(st.integers(1, min(size)))
    mask = fourier.hermitian_symmetric(fourier.square_lowpass_mask(size, b))
    assert fourier.is_hermitian_symmetric(mask)
    filtered = fourier.filter(x, mask)
    spectrum = fourier.fft2c(filtered)
    assert spectrum[..., ~mask].abs().sum() < 1e-9
    # ... and the imaginary part that `filter` dropped was zero to begin with.
    complex_result = fourier.ifft2c(torch.where(mask, fourier.fft2c(x), 0))
    assert complex_result.imag.abs().max().item() < 1e-10


def test_radial_masks_are_symmetric_and_default_bands_partition():
    for size in (28, 32, (17, 23)):
        bands = fourier.default_bands(size)
        stacked = torch.stack(list(bands.values())).int()
        assert torch.equal(stacked.sum(0), torch.ones_like(stacked[0]))
        for mask in bands.values():
            assert fourier.is_hermitian_symmetric(mask)
    x = torch.rand(4, 3, 32, 32)
    shares = fourier.band_energy_shares(x)
    assert sum(shares.values()) == pytest.approx(1.0, abs=1e-5)


def test_energy_share_of_band_limited_images():
    size = 32
    low_wave = fourier.cosine_image(size, 1, 2)
    high_wave = fourier.cosine_image(size, 12, 9)
    images = torch.stack([low_wave, high_wave])[:, None]
    low = fourier.default_bands(size)["low"]
    share = fourier.energy_share(images, low)
    assert share[0] == pytest.approx(1.0, abs=1e-5)
    assert share[1] == pytest.approx(0.0, abs=1e-6)
    assert fourier.energy_share(torch.zeros(1, 1, 8, 8), fourier.all_pass_mask(8)).item() == 0.0


def test_mask_errors_are_clear():
    with pytest.raises(SpecRobustError, match="does not match"):
        fourier.filter(torch.rand(1, 1, 8, 8), fourier.all_pass_mask(9))
    with pytest.raises(SpecRobustError, match="bool"):
        fourier.filter(torch.rand(1, 1, 8, 8), torch.ones(8, 8))
    with pytest.raises(SpecRobustError):
        fourier.radial_lowpass_mask(8, -1)
    with pytest.raises(SpecRobustError):
        fourier.radial_band_mask(8, 3, 2)
