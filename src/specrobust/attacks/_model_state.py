"""Attacks run the model in eval mode and hand it back exactly as they found it."""

from __future__ import annotations

from contextlib import contextmanager

from torch import nn


@contextmanager
def attack_mode(model: nn.Module):
    """Eval mode (batch-norm uses its running statistics and does not update them) and frozen
    parameters (no gradient is accumulated into ``.grad``); both restored on exit."""
    was_training = {module: module.training for module in model.modules()}
    requires_grad = {param: param.requires_grad for param in model.parameters()}
    model.eval()
    for param in model.parameters():
        param.requires_grad_(False)
    try:
        yield model
    finally:
        for module, training in was_training.items():
            module.train(training)
        for param, flag in requires_grad.items():
            param.requires_grad_(flag)
