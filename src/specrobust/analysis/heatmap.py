"""Fourier heat map (Yin et al., 2019, "A Fourier Perspective on Model Robustness").

For each frequency ``(fy, fx)`` on a grid: add ``r * s * basis(fy, fx)`` to every image, where
``basis`` is ``fourier.cosine_image`` (unit L2 norm, energy at ``(fy, fx)`` and ``(-fy, -fx)``
only), the same in every channel and scaled so the whole perturbation has L2 norm ``r``, and
``s = +-1`` is drawn per image; clip to [0, 1]; record the error rate. ``(fy, fx)`` and
``(-fy, -fx)`` give the same basis image, so each pair is measured once and copied to its
mirror. Frequencies are taken modulo the image size: on an even axis of N pixels, -N/2 is its
own mirror (cos(pi y) has no sign to flip), so a 32 x 32 map measures 514 of its 1024 cells
(every pair once, and the 4 cells that are their own mirrors).

The default norm keeps Yin et al.'s per-pixel strength: ``r = 4`` for a 3x32x32 image, scaled by
``sqrt(pixels / 3072)`` for other shapes (about 2 for 1x28x28).

JSON fields: ``norm`` (r), ``n`` (images used), ``frequencies_y`` and ``frequencies_x`` (the
grid's integer frequencies in cycles per image, low in the middle), ``error_rate`` (rows: fy,
columns: fx, in those orders), ``clean_error`` (the error rate without a perturbation).
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import TypeVar

import torch

from specrobust import fourier, seeds
from specrobust.analysis import PARTS
from specrobust.analysis.context import AnalysisContext
from specrobust.analysis.parts import Entries, Part
from specrobust.settings import Settings

SettingsLike = TypeVar("SettingsLike", bound=Settings)

# Every frequency costs one pass over the images: 200 images at every frequency of a 32 x 32
# image; at larger sizes a grid of at most 32 x 32 frequencies and fewer images keep it bounded
# (its cost at 224 pixels: benchmarks/RESULTS.md).
DEFAULT_IMAGES = 200
GRID = 32  # frequencies per axis at most, by default


def default_stride(shape: tuple[int, ...]) -> int:
    """Every frequency up to 32 x 32 images; every k-th above, so the grid is 32 x 32 at most."""
    return max(1, max(shape[-2:]) // GRID)


def default_n(shape: tuple[int, ...]) -> int:
    """200 images up to 32 x 32; fewer in proportion to the pixels above (at least 10)."""
    pixels = shape[-2] * shape[-1]
    return max(10, min(DEFAULT_IMAGES, DEFAULT_IMAGES * GRID * GRID // pixels))


def sized(settings: SettingsLike, shape: tuple[int, ...]) -> SettingsLike:
    """``settings`` (``Settings``, or a job made of them) with the heat map's images and stride
    that were left to their default filled in for images of ``shape``."""
    return dataclasses.replace(
        settings,
        heatmap_n=default_n(shape) if settings.heatmap_n is None else settings.heatmap_n,
        heatmap_stride=default_stride(shape) if settings.heatmap_stride is None
        else settings.heatmap_stride)


def default_norm(shape: tuple[int, ...]) -> float:
    return 4.0 * math.sqrt(math.prod(shape) / 3072)


def fourier_heatmap(ctx: AnalysisContext, *, norm: float | None = None, n: int = DEFAULT_IMAGES,
                    stride: int = 1) -> dict:
    images, labels = ctx.images[:n], ctx.labels[:n]
    channels, height, width = images.shape[1:]
    norm = default_norm(tuple(images.shape[1:])) if norm is None else norm
    fy_values = list(range(-(height // 2), height - height // 2, stride))
    fx_values = list(range(-(width // 2), width - width // 2, stride))
    generator = seeds.generator(ctx.seed)
    signs = (torch.randint(0, 2, (len(images),), generator=generator) * 2 - 1).to(images)
    signs = signs.view(-1, 1, 1, 1)
    # A real image's spectrum is symmetric: (fy, fx) and (-fy, -fx) are one basis image, so
    # each pair is measured once (the first met, row by row) and copied to its mirror.
    measured, mirrors, seen = [], {}, set()
    for i, fy in enumerate(fy_values):
        for j, fx in enumerate(fx_values):
            if (i, j) in seen:
                continue
            my, mx = _mirror(fy_values, fy, height), _mirror(fx_values, fx, width)
            measured.append((i, j))
            seen.add((i, j))
            if my is not None and mx is not None:
                mirrors[(i, j)] = (my, mx)
                seen.add((my, mx))
    total = len(fy_values) * len(fx_values)
    done = 0  # cells filled so far, for the progress line

    def error_at(position: tuple[int, int]) -> float:
        nonlocal done
        i, j = position
        basis = fourier.cosine_image((height, width), fy_values[i], fx_values[j],
                                     device=images.device)
        wave = (norm / math.sqrt(channels)) * basis
        wrong = torch.cat([~ctx.correct((x + s * wave).clamp(0, 1), y)
                           for _, (x, s, y) in ctx.batches(images, signs, labels)])
        if ctx.progress:  # each measurement fills about two cells, in every process
            done += 2 * ctx.shard.world_size
            ctx.progress("heatmap", min(total - 1, done), total)
        return float(wrong.float().mean())

    error = torch.full((len(fy_values), len(fx_values)), float("nan"))
    for position, value in zip(measured, ctx.shared_map(measured, error_at), strict=True):
        error[position] = value
        if position in mirrors:
            error[mirrors[position]] = value
    if ctx.progress:
        ctx.progress("heatmap", total, total)
    clean_error = float((ctx.predict(images) != labels).float().mean())
    return {"norm": norm, "n": len(images), "frequencies_y": fy_values,
            "frequencies_x": fx_values, "error_rate": error.tolist(), "clean_error": clean_error}


def _mirror(values: list[int], value: int, size: int) -> int | None:
    """Position on the grid axis of the frequency -``value`` taken modulo ``size`` (so -N/2 is
    its own mirror on an even axis); None where the grid (a stride) leaves it out."""
    mirrored = (-value + size // 2) % size - size // 2
    return values.index(mirrored) if mirrored in values else None


def headline(result: dict) -> dict[str, float]:
    values = [v for row in result["error_rate"] for v in row if v == v]  # NaN: not measured
    return {"heat map mean error": sum(values) / len(values) if values else float("nan")}


def options(job) -> dict:
    """The job's heat-map settings (``AnalysisJob.heatmap_*``; the analysis job resolves the
    defaults by image size before they join a fingerprint)."""
    return {"norm": job.heatmap_norm, "n": job.heatmap_n, "stride": job.heatmap_stride}


def _plot_heatmaps(entries: Entries, path: str | Path) -> None:
    from specrobust.figures import extent, np, plt, save

    columns = min(len(entries), 3)
    rows = math.ceil(len(entries) / columns)
    figure, axes = plt.subplots(rows, columns, figsize=(4.6 * columns, 4 * rows), dpi=110,
                                squeeze=False)
    # Each model on its own scale, from its clean error to its highest error: one scale for
    # all would flatten a robust model's map (errors within a few points) to one colour. The
    # colour bars carry the numbers that compare across models.
    for k, (label, data) in enumerate(entries):
        axis = axes[k // columns, k % columns]
        error = 100 * np.array(data["error_rate"])
        low = 100 * data["clean_error"]
        high = max(low + 1, float(np.nanmax(error)))
        image = axis.imshow(error, cmap="magma", vmin=low, vmax=high, origin="lower",
                            extent=extent(data["frequencies_y"], data["frequencies_x"]))
        figure.colorbar(image, ax=axis, fraction=0.046, pad=0.04).set_label(
            "error rate (%), this model's scale")
        axis.set_title(f"{label}\nFourier heat map, L2 norm {data['norm']:.2f} "
                       f"(clean error {100 * data['clean_error']:.0f}%)", fontsize=9)
        axis.set_xlabel("horizontal frequency (cycles/image)", fontsize=8)
        axis.set_ylabel("vertical frequency (cycles/image)", fontsize=8)
    for k in range(len(entries), rows * columns):
        axes[k // columns, k % columns].axis("off")
    save(figure, path)


PART = Part(
    name="heatmap",
    title="Fourier heat map",
    explanation=("Yin et al. (2019): error rate when one Fourier basis image of fixed L2 norm is "
                 "added, for every frequency (centre: low frequencies)."),
    compute=fourier_heatmap,
    headline=headline,
    plot=_plot_heatmaps,
    options=options,
)
PARTS.add(PART.name, PART)
