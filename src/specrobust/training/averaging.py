"""Weight averaging: SWA (the paper's WA) or EMA, through ``torch.optim.swa_utils``.

SWA: from ``start_epoch`` on, one snapshot per epoch into a running mean (weight 1/(n+1)); the
averaged model's batch-norm statistics are recomputed over the training set after each
snapshot, so it can be validated every epoch; on clean training images by default, or on
adversarial ones (``bn_inputs="adversarial"``: the training attack run against the averaged model
in eval mode, so only update_bn's own forward passes touch the statistics). EMA: updated every
step from ``start_epoch`` on, buffers averaged too (no recomputation needed).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn, update_bn

from specrobust.models import attack_mode

# (model, images, labels, batch index) -> adversarial images
Attack = Callable[[nn.Module, torch.Tensor, torch.Tensor, int], torch.Tensor]


class WeightAveraging:
    def __init__(self, model: nn.Module, kind: str, start_epoch: int, ema_decay: float = 0.999,
                 bn_inputs: str = "clean"):
        self.kind = kind
        self.start_epoch = start_epoch
        self.bn_inputs = bn_inputs
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

    def after_epoch(self, model: nn.Module, epoch: int, loader: Iterable,
                    attack: Attack | None = None) -> None:
        if self.kind == "swa" and epoch >= self.start_epoch:
            self.averaged.update_parameters(model)
            if self.bn_inputs == "adversarial":
                loader = self._adversarial_batches(loader, attack)
            update_bn(loader, self.averaged)

    def _adversarial_batches(self, loader: Iterable, attack: Attack | None):
        if attack is None:
            raise ValueError("bn_inputs='adversarial' needs the training attack")
        for index, (x, y) in enumerate(loader):
            # update_bn has put the model in train mode; the attack must not move the statistics.
            with attack_mode(self.model):
                x_adv = attack(self.model, x, y, index)
            yield x_adv

    def state_dict(self) -> dict:
        return self.averaged.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.averaged.load_state_dict(state)
