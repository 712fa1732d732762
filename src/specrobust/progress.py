"""Progress bars for long work: one tqdm bar per label, closed when its work is done."""

from __future__ import annotations

from collections.abc import Callable

from tqdm import tqdm

Progress = Callable[[str, int, int], None]  # (label, done, total)


def progress_bars(shown: bool, *, unit: str, indent: str = "") -> Progress | None:
    """A ``progress(label, done, total)`` callback drawing a bar per label; None when not
    ``shown`` (not asked for, or not the main process under torchrun)."""
    if not shown:
        return None
    bars: dict[str, tqdm] = {}

    def progress(label: str, done: int, total: int) -> None:
        bar = bars.get(label)
        if bar is None:
            bar = bars[label] = tqdm(total=total, desc=indent + label, unit=unit, leave=False)
        bar.update(done - bar.n)
        if done >= total:
            bar.close()

    return progress
