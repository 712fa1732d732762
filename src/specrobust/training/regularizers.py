"""SAR attached to any objective, and AWP (adversarial weight perturbation, Wu et al. 2020)."""

from __future__ import annotations

import contextlib
import copy
from dataclasses import dataclass

import torch
from torch import nn

from specrobust.sar import sar_loss
from specrobust.training.objectives import LossTerms


@dataclass
class SAR:
    """``loss += lam * sar_loss(clean, adversarial)`` from ``start_epoch`` on. The clean logits
    come from the objective when it computed them (TRADES, MART); otherwise one extra forward
    pass in training mode, after the adversarial one, as the authors do.

    That pass also moves batch norm's running statistics towards clean images, so the model is
    tested with a blend of clean and adversarial statistics (plain AT: adversarial only). With
    ``clean_bn="frozen"`` the pass still normalises by its own batch, but leaves the running
    statistics alone. On Fashion-MNIST the blend costs robustness (benchmarks/sar_batchnorm.py).
    """

    lam: float = 0.1
    start_epoch: int = 0
    axes: str = "batch_class"
    distance: str = "l1"
    clean_bn: str = "update"  # update (the authors') | frozen

    def active(self, epoch: int) -> bool:
        return self.lam > 0 and epoch >= self.start_epoch

    def __call__(self, terms: LossTerms, model: nn.Module, x: torch.Tensor,
                 epoch: int) -> LossTerms:
        if not self.active(epoch) or terms.adv_logits is None:
            return terms
        if terms.clean_logits is None:
            frozen = self.clean_bn == "frozen"
            with _running_statistics_frozen(model) if frozen else contextlib.nullcontext():
                terms.clean_logits = model(x)
        value = sar_loss(terms.clean_logits, terms.adv_logits, axes=self.axes,
                         distance=self.distance)
        terms.loss = terms.loss + self.lam * value
        terms.parts["sar"] = value.detach()
        return terms


@contextlib.contextmanager
def _running_statistics_frozen(model: nn.Module):
    """Batch norm in training mode that normalises by the batch but updates nothing: with
    momentum 0 the running estimate is kept exactly ((1 - 0) * old + 0 * new). The batch count
    is put back too: a cumulative-average norm (momentum None) weighs later batches by it."""
    norms = [m for m in model.modules()
             if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
    saved = [(m.momentum, m.num_batches_tracked.clone()) for m in norms]
    for m in norms:
        m.momentum = 0.0
    try:
        yield
    finally:
        for m, (momentum, count) in zip(norms, saved, strict=True):
            m.momentum = momentum
            m.num_batches_tracked.copy_(count)


class AWP:
    """Adversarial weight perturbation: before the update, move each weight tensor (not biases
    or norm parameters) by ``gamma * ||w||`` in the direction that increases the loss, found
    with one step of a proxy copy; take the gradient there; move back after the update.

        diff = awp.perturbation(model, lambda m: objective.loss(m, x, x_adv, y, ctx).loss)
        awp.shift(model, diff, +1); loss.backward(); optimizer.step(); awp.shift(model, diff, -1)
    """

    def __init__(self, model: nn.Module, gamma: float, proxy_lr: float = 0.01):
        self.gamma = gamma
        self.proxy = copy.deepcopy(model)
        self.proxy_optimizer = torch.optim.SGD(self.proxy.parameters(), lr=proxy_lr)

    @torch.no_grad()
    def shift(self, model: nn.Module, diff: dict[str, torch.Tensor], sign: float) -> None:
        for name, parameter in model.named_parameters():
            if name in diff:
                parameter.add_(diff[name], alpha=sign)

    def perturbation(self, model: nn.Module, loss_of_model) -> dict[str, torch.Tensor]:
        self.proxy.load_state_dict(model.state_dict())
        self.proxy.train()
        self.proxy_optimizer.zero_grad(set_to_none=True)
        (-loss_of_model(self.proxy)).backward()  # ascend the loss
        if torch.distributed.is_initialized():  # every process must shift the same way
            for parameter in self.proxy.parameters():
                if parameter.grad is not None:
                    torch.distributed.all_reduce(parameter.grad)
                    parameter.grad /= torch.distributed.get_world_size()
        self.proxy_optimizer.step()
        diff = {}
        proxy_parameters = dict(self.proxy.named_parameters())
        for name, parameter in model.named_parameters():
            if parameter.dim() <= 1:
                continue
            step = proxy_parameters[name].detach() - parameter.detach()
            diff[name] = self.gamma * parameter.detach().norm() / (step.norm() + 1e-20) * step
        return diff
