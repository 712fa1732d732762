"""The arithmetic of the model's passes in attacks and training steps: fp32, or bf16 autocast.

CPUs with AMX or AVX-512 BF16 units and GPUs run bf16 convolutions about twice as fast
(benchmarks/RESULTS.md), and bf16 attacks and updates slightly differently. So evaluation and
analysis take it only when asked (`--precision bf16`), as results of their own, and judge every
outcome in fp32; AutoAttack and the evaluation's self-checks always run in fp32. Training takes
it by default on CUDA only (``run.precision: auto``).
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from typing import TYPE_CHECKING

from specrobust.defaults import PRECISIONS
from specrobust.errors import SpecRobustError

if TYPE_CHECKING:
    import torch
# torch is imported where it is used: a study plan's reader checks a precision without it.


def check_precision(precision: str) -> str:
    if precision not in PRECISIONS:
        raise SpecRobustError(f"precision must be one of {', '.join(PRECISIONS)}, got "
                              f"{precision!r}")
    return precision


def autocast(precision: str, device: torch.device | str) -> AbstractContextManager:
    """Run the model's passes inside this (what is judged stays outside it)."""
    if check_precision(precision) == "fp32":
        return nullcontext()
    import torch

    return torch.autocast(torch.device(device).type, dtype=torch.bfloat16)


def training_precision(setting: str, device: torch.device | str) -> str:
    """``run.precision`` on a device: ``auto`` is bf16 on CUDA and fp32 elsewhere."""
    if setting == "auto":
        import torch

        return "bf16" if torch.device(device).type == "cuda" else "fp32"
    return check_precision(setting)


def precision_fingerprint(precision: str) -> dict:
    """Its part of a result's fingerprint: none for fp32, so that results written before bf16
    existed stay current."""
    return {"precision": precision} if precision != "fp32" else {}
