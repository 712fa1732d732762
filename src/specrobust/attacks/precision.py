"""The arithmetic gradient attacks (FGSM, PGD, C&W) run in: fp32, or bf16 autocast, which CPUs
with AMX or AVX-512 BF16 units and GPUs run about twice as fast on ResNet-18
(benchmarks/RESULTS.md) and which attacks slightly differently. Whether an attacked image still
fools the model is always judged in fp32, and AutoAttack and the evaluation's self-checks always
run in fp32: bf16 only ever changes how hard an attack searches, never how it is scored."""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext

import torch

from specrobust.defaults import PRECISIONS
from specrobust.errors import SpecRobustError


def check_precision(precision: str) -> str:
    if precision not in PRECISIONS:
        raise SpecRobustError(f"precision must be one of {', '.join(PRECISIONS)}, got "
                              f"{precision!r}")
    return precision


def attack_arithmetic(precision: str, device: torch.device | str) -> AbstractContextManager:
    """Run the attack's passes of the model inside this."""
    if check_precision(precision) == "fp32":
        return nullcontext()
    return torch.autocast(torch.device(device).type, dtype=torch.bfloat16)


def precision_fingerprint(precision: str) -> dict:
    """Its part of a result's fingerprint: none for fp32, so that results written before bf16
    existed stay current."""
    return {"precision": precision} if precision != "fp32" else {}
