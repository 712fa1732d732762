"""`specrobust analyze`: run the analysis parts on a checkpoint, resumable part by part.

Each part writes ``<part>.json`` (its results plus a ``fingerprint`` of model, data, n, eps and
seed) and ``<part>.png`` into the analysis directory; a part whose JSON has the same fingerprint
is not run again. ``summary.json`` gathers the headline numbers of all finished parts.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from specrobust.analysis import PARTS
from specrobust.analysis.context import AnalysisContext
from specrobust.analysis.heatmap import sized
from specrobust.errors import SpecRobustError
from specrobust.files import layout, locks, outputs, storage
from specrobust.files.storage import read_json
from specrobust.jobs import start_test_job
from specrobust.loading import ModelSource, as_source
from specrobust.machine import Distributed
from specrobust.progress import progress_bars
from specrobust.settings import Settings

FORMAT = layout.ANALYSIS_FORMAT
# Part of every fingerprint: bump it when a part's method changes, so old results are redone.
METHOD_VERSION = 1


@dataclass(frozen=True, kw_only=True)
class AnalysisJob(Settings):
    """`specrobust analyze`: the shared settings (``specrobust.settings``; their PGD is every
    analysis' attack) and what is an analysis' own."""

    source: ModelSource | str  # a plain string is a path (a run, a checkpoint, a program)
    parts: str = ",".join(PARTS)
    out: str | None = None  # the analysis directory (default: beside the model, or in its run)

    def part_options(self, part: str) -> dict:
        """Options that change a part's result (they join its fingerprint)."""
        return PARTS[part].options(self)


def parse_parts(text: str) -> list[str]:
    parts = [p.strip() for p in text.split(",") if p.strip()]
    unknown = [p for p in parts if p not in PARTS]
    if unknown or not parts:
        raise SpecRobustError(f"unknown analysis part {', '.join(unknown) or repr(text)}; known: "
                              f"{', '.join(PARTS)}")
    return list(dict.fromkeys(parts))


def output_dir(job: AnalysisJob, loaded) -> Path:
    if job.out:
        return Path(job.out)
    if loaded.run_dir is not None:
        return layout.analysis_dir(loaded.run_dir, as_source(job.source).which)
    return layout.beside(loaded.home, "analysis")


class AnalysisInUseError(locks.InUseError):
    """Another process is analysing into the same directory."""


def run_analysis_job(job: AnalysisJob, *,
                     on_start: Callable[[], None] | None = None) -> Path:
    """Run the parts; returns the analysis directory. ``on_start`` is called before the first
    part that is not finished already (a resumed study says what it computes, not what it
    finds done)."""

    parts = parse_parts(job.parts)  # first: a typo should not wait for a model to load
    shard, target = start_test_job(job, job.source, "the analyses' attacks run",
                                   streamed=True)
    loaded = target.loaded
    job = sized(job, tuple(target.images.shape[1:]))  # the heat map's defaults by image size
    progress = progress_bars(job.progress and shard.main, unit="step", indent="  ")

    directory = output_dir(job, loaded)
    if not shard.main:  # under torchrun: share the work, leave the writing to the main one
        _run_parts(job, parts, target, directory, progress, shard)
        return directory
    with outputs.output_directory(directory, outputs.ANALYSIS) as directory:
        # Two analyses into one directory would mix their parts and both report success.
        with locks.held(directory, AnalysisInUseError(
                f"{directory} is being written by another analysis; wait for it to finish or "
                "stop it first")):
            layout.remove_leftovers(directory)  # what a killed analysis left half-written
            if not (directory / "summary.json").is_file():
                # First, so that a kill after a part's first write leaves a directory the next
                # analysis recognises as its own (by this record's format tag).
                write_summary(directory)
            _run_parts(job, parts, target, directory, progress, shard, on_start)
    return directory


def _run_parts(job: AnalysisJob, parts: list[str], target, directory: Path, progress,
               shard: Distributed, on_start: Callable[[], None] | None = None) -> None:
    """The parts not yet finished in ``directory`` (whose lock the main process holds); only
    the main process writes. The parts that go over the test images share one pass."""
    from specrobust.analysis import draw
    from specrobust.analysis.parts import computed

    loaded = target.loaded
    ctx = AnalysisContext(target.model, target.images, target.labels, target.eps,
                          seed=job.seed, batch_size=job.batch_size, progress=progress,
                          norm=job.norm, shard=shard, precision=job.precision)
    fingerprint = {"weights_sha256": loaded.sha256, "dataset": loaded.dataset,
                   "n": len(target.images), "eps": target.eps, "seed": job.seed,
                   "method_version": METHOD_VERSION, "norm": job.norm,
                   "precision": job.precision}
    label = _label(loaded, as_source(job.source).which)
    todo = {}
    for part in parts:
        options = job.part_options(part)
        part_fingerprint = {**fingerprint, **({"options": options} if options else {})}
        if not _finished(directory / f"{part}.json", part_fingerprint, directory / f"{part}.png"):
            todo[part] = (options, part_fingerprint)
    if todo and on_start is not None:
        on_start()
    in_pass = [part for part in todo if PARTS[part].tally is not None]
    results = computed(ctx, {part: options for part, (options, _) in todo.items()})
    pass_seconds = 0.0
    for part, (_, part_fingerprint) in todo.items():
        announcement = _announcement(part, in_pass)
        if job.progress and shard.main and announcement:
            print(f"{label}: {announcement} ...", flush=True)
        started = time.perf_counter()
        _, result = next(results)
        seconds = time.perf_counter() - started
        if in_pass and part == in_pass[0]:
            pass_seconds = seconds
        elif part in in_pass:  # computed by the pass: the pass's time
            seconds = pass_seconds
        if not shard.main:
            continue
        record = {"format": FORMAT, "part": part, "label": label, "model": loaded.model.name,
                  "dataset": loaded.dataset, "weights": str(loaded.path),
                  "eps_text": target.eps_text, "norm": job.norm,
                  "fingerprint": part_fingerprint, "seconds": round(seconds, 2), **result}
        # The figure first: the JSON says the part is done, and a part is done with its figure.
        draw(part, [(label, record)], directory / f"{part}.png")
        storage.write_text(directory / f"{part}.json", json.dumps(record) + "\n")
    if shard.main:
        write_summary(directory)


def _announcement(part: str, in_pass: list[str]) -> str | None:
    """What the progress line names before computing ``part``: the shared pass once, for all
    the parts in it."""
    if part not in in_pass:
        return part
    if part != in_pass[0]:
        return None
    return part if len(in_pass) == 1 else f"{', '.join(in_pass)} (one pass over the test images)"


def _label(loaded, which: str) -> str:
    name = loaded.run_dir.name if loaded.run_dir is not None else loaded.home.stem
    return name if which == "auto" else f"{name} ({which})"


def _finished(path: Path, fingerprint: dict, figure: Path) -> bool:
    if not figure.is_file():  # killed between the two writes of an earlier version
        return False
    try:
        record = read_json(path, "analysis record")
    except (OSError, ValueError, SpecRobustError):
        return False
    return record.get("format") == FORMAT and record.get("fingerprint") == fingerprint


def read_parts(directory: Path, root: Path | None = None) -> dict[str, dict]:
    """The finished parts in an analysis directory, by name. Only regular files reached
    without a symbolic link below ``root`` (default: the directory itself) are read: what is
    read here ends up in shared reports."""
    root = directory if root is None else root
    found = {}
    for part in PARTS:
        path = outputs.regular_file_inside(root, str(directory.relative_to(root) / f"{part}.json"))
        if path is None:
            continue
        try:
            record = read_json(path, "analysis record")
        except (OSError, ValueError, SpecRobustError):
            continue
        if isinstance(record, dict) and record.get("format") == FORMAT and \
                record.get("part") == part:
            found[part] = record
    return found


def headline_numbers(parts: dict[str, dict]) -> dict[str, float]:
    """A few numbers per part, for tables across models and seeds (fractions in [0, 1])."""
    numbers: dict[str, float] = {}
    for name, part in PARTS.items():
        if name in parts:
            numbers |= part.headline(parts[name])
    return numbers


def write_summary(directory: Path) -> None:
    parts = read_parts(directory)
    summary = {"format": layout.ANALYSIS_SUMMARY_FORMAT, "parts": sorted(parts),
               "numbers": headline_numbers(parts)}
    storage.write_text(directory / "summary.json", json.dumps(summary, indent=1) + "\n")
