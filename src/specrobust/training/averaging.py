"""Weight averaging: SWA (the paper's WA) or EMA, through ``torch.optim.swa_utils``.

SWA: from ``start_epoch`` on, one snapshot per epoch into a running mean (weight 1/(n+1)); the
averaged model's batch-norm statistics are recomputed over the training set after each
snapshot, so it can be validated every epoch. EMA: updated every step from ``start_epoch`` on,
buffers averaged too (no recomputation needed).
"""

from __future__ import annotations

from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn, update_bn


class WeightAveraging:
    def __init__(self, model: nn.Module, kind: str, start_epoch: int, ema_decay: float = 0.999):
        self.kind = kind
        self.start_epoch = start_epoch
        if kind == "ema":
            self.averaged = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(ema_decay),
                                          use_buffers=True)
        else:
            self.averaged = AveragedModel(model)

    @property
    def model(self) -> nn.Module:
        """The averaged network (a Classifier)."""
        return self.averaged.module

    @property
    def snapshots(self) -> int:
        return int(self.averaged.n_averaged)

    def after_step(self, model: nn.Module, epoch: int) -> None:
        if self.kind == "ema" and epoch >= self.start_epoch:
            self.averaged.update_parameters(model)

    def after_epoch(self, model: nn.Module, epoch: int, loader) -> None:
        if self.kind == "swa" and epoch >= self.start_epoch:
            self.averaged.update_parameters(model)
            update_bn(loader, self.averaged)

    def state_dict(self) -> dict:
        return self.averaged.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.averaged.load_state_dict(state)
