"""The arithmetic of the model's passes in attacks and training steps: fp32, or bf16 autocast.

Whether bf16 pays depends on the hardware (benchmarks/RESULTS.md): GPUs and CPUs with AMX or
AVX-512 BF16 units run bf16 convolutions in hardware; a CPU without them emulates them, many
times slower than fp32. And bf16 attacks and updates slightly differently. So evaluation and
analysis take it only when asked (`--precision bf16`), as results of their own, and judge every
outcome in fp32; AutoAttack and the evaluation's self-checks always run in fp32. Training takes
it by default on CUDA only (``run.precision: auto``). Asked for on a CPU without bf16 units, it
runs, after one line that says what it costs there (:func:`warn_if_slow`).
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from typing import TYPE_CHECKING

from specrobust.errors import SpecRobustError
from specrobust.settings import PRECISIONS

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


# bf16 autocast's speed over fp32 for a ResNet-18 PGD step on a CPU without bf16 units
# (benchmarks/bf16_without_units.py; its measurement is in benchmarks/RESULTS.md).
_EMULATED_BF16_SLOWDOWN = "about 20x"


def cpu_has_bf16_units() -> bool | None:
    """Whether this CPU computes bf16 in hardware (AVX-512 BF16 or AMX); None where that
    cannot be told (not Linux on x86)."""
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return bool(flags & {"avx512_bf16", "amx_bf16"})
    except OSError:
        return None
    return None


def warn_if_slow(precision: str, device: torch.device | str, what: str) -> None:
    """One line on stderr before the work starts, where bf16 runs on a CPU that emulates it."""
    import os
    import sys

    import torch

    if precision != "bf16" or torch.device(device).type != "cpu":
        return
    if os.environ.get("ONEDNN_MAX_CPU_ISA", "").upper().startswith(("AVX2", "AVX", "SSE")) or \
            cpu_has_bf16_units() is False:
        print(f"specrobust: warning: {what} in bf16 on a CPU without bf16 units (no AVX-512 "
              f"BF16 or AMX): bf16 is emulated here, {_EMULATED_BF16_SLOWDOWN} slower than fp32 "
              "for a ResNet-18 attack step; fp32 is faster on this machine", file=sys.stderr)


def precision_fingerprint(precision: str) -> dict:
    """Its part of a result's fingerprint: none for fp32, so that results written before bf16
    existed stay current."""
    return {"precision": precision} if precision != "fp32" else {}
