"""The machine side of a job: its device, its processes, and the arithmetic of its passes.

Device: ``auto`` is CUDA when present, else the CPU (:func:`resolve_device`).

Processes. ``torchrun --nproc_per_node=K -m specrobust.cli train|eval ...`` sets WORLD_SIZE,
RANK and LOCAL_RANK; without them everything runs in one process. The group uses NCCL on GPUs
(one per process, by LOCAL_RANK) and gloo on CPUs; multi-node runs take torchrun's usual
arguments. Training splits each batch across processes; evaluation splits the batches of each
attack (``evaluation.batched.attack_batches``). Only the main process writes files.

Arithmetic. The model's passes in attacks and training steps run in fp32, or under bf16
autocast. Whether bf16 pays depends on the hardware (benchmarks/RESULTS.md): GPUs and CPUs with
AMX or AVX-512 BF16 units run bf16 convolutions in hardware; a CPU without them emulates them,
many times slower than fp32. And bf16 attacks and updates slightly differently. So evaluation
and analysis take it only when asked (`--precision bf16`), as results of their own, and judge
every outcome in fp32; AutoAttack and the evaluation's self-checks always run in fp32. Training
takes it by default on CUDA only (``run.precision: auto``). Asked for on a CPU without bf16
units, it runs, after one line that says what it costs there (:func:`warn_if_slow`)."""

from __future__ import annotations

import os
import re
import sys
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass

import torch

from specrobust.errors import SpecRobustError, quoted
from specrobust.settings import check_precision

# ---- the device and the processes ---------------------------------------------------------------


def resolve_device(name: str) -> torch.device:
    """``auto`` (CUDA when present, else CPU), ``cpu``, ``cuda`` or ``cuda:N``."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if re.fullmatch(r"cpu|cuda(:[0-9]{1,3})?", name) is None:
        raise SpecRobustError(f"unknown device {quoted(name)}; use auto, cpu, cuda or cuda:N")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise SpecRobustError(f"device {name} asked for, but this machine has no CUDA GPU")
    try:
        return torch.device(name)
    except RuntimeError:
        raise SpecRobustError(f"unknown device {quoted(name)}; use auto, cpu or cuda") from None


@dataclass(frozen=True)
class Distributed:
    rank: int = 0
    world_size: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0

    def gather(self, item: object) -> list[object]:
        """Every process's ``item``, in rank order (just ``[item]`` in one process)."""
        if self.world_size == 1:
            return [item]
        gathered: list[object] = [None] * self.world_size
        torch.distributed.all_gather_object(gathered, item)
        return gathered


SINGLE = Distributed()


def init_distributed(device_name: str) -> tuple[Distributed, torch.device]:
    """The process group torchrun's environment describes (created once), and this process's
    device."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    device = resolve_device(device_name)
    if world_size == 1:
        return SINGLE, device
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    if not torch.distributed.is_initialized():
        torch.distributed.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return Distributed(torch.distributed.get_rank(), world_size), device


# ---- the arithmetic: fp32, or bf16 autocast ------------------------------------------------------


def autocast(precision: str, device: torch.device | str) -> AbstractContextManager:
    """Run the model's passes inside this (what is judged stays outside it)."""
    if precision == "fp32":  # checked where it was given (Settings, the training config)
        return nullcontext()
    return torch.autocast(torch.device(device).type, dtype=torch.bfloat16)


def training_precision(setting: str, device: torch.device | str) -> str:
    """``run.precision`` on a device: ``auto`` is bf16 on CUDA and fp32 elsewhere."""
    if setting == "auto":
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


M_ARENA_MAX = -8  # glibc's mallopt parameter (malloc.h)


def one_malloc_arena() -> None:
    """On glibc, let every thread allocate from one malloc arena. The thread that decodes the
    next batch (``data.streamed.prefetched``) would otherwise get an arena of its own, whose
    blocks the main thread uses and frees; such an arena reuses freed space badly, and the
    process grows with the number of batches (``benchmarks/memory_vs_n.py``). Without glibc,
    nothing."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes
    from contextlib import suppress

    with suppress(OSError, AttributeError):  # another C library (musl has no mallopt)
        ctypes.CDLL("libc.so.6").mallopt(M_ARENA_MAX, 1)


def warn_if_slow(precision: str, device: torch.device | str, what: str) -> None:
    """One line on stderr before the work starts, where bf16 runs on a CPU that emulates it."""
    if precision != "bf16" or torch.device(device).type != "cpu":
        return
    if os.environ.get("ONEDNN_MAX_CPU_ISA", "").upper().startswith(("AVX2", "AVX", "SSE")) or \
            cpu_has_bf16_units() is False:
        print(f"specrobust: warning: {what} in bf16 on a CPU without bf16 units (no AVX-512 "
              f"BF16 or AMX): bf16 is emulated here, {_EMULATED_BF16_SLOWDOWN} slower than fp32 "
              "for a ResNet-18 attack step; fp32 is faster on this machine", file=sys.stderr)
