"""Several processes on one job: torchrun's environment in, one process group out.

``torchrun --nproc_per_node=K -m specrobust.cli train|eval ...`` sets WORLD_SIZE, RANK and
LOCAL_RANK; without them everything runs in one process. The group uses NCCL on GPUs (one per
process, by LOCAL_RANK) and gloo on CPUs; multi-node runs take torchrun's usual arguments.
Training splits each batch across processes; evaluation splits the batches of each attack
(``evaluation.batched.attack_batches``). Only the main process writes files.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch

from specrobust.devices import resolve_device


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
