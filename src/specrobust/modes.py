"""Running a model in a given mode and handing it back exactly as it was found."""

from __future__ import annotations

from contextlib import contextmanager

from torch import nn


@contextmanager
def model_mode(model: nn.Module, *, training: bool = False, frozen: bool = False):
    """Every module in training or eval mode (eval: batch norm uses its running statistics and
    does not update them) and, with ``frozen``, no gradient accumulated into any parameter's
    ``.grad``; each module's mode and each parameter's flag restored on exit."""
    was_training = {module: module.training for module in model.modules()}
    requires_grad = {param: param.requires_grad for param in model.parameters()} if frozen \
        else {}
    model.train(training)
    for param in requires_grad:
        param.requires_grad_(False)
    try:
        yield model
    finally:
        # Parents first (``modules()`` order), and only where the mode changed: ``train()``
        # recurses, and some modules (an exported program's graph) refuse being set at all.
        for module, mode in was_training.items():
            if module.training != mode:
                module.train(mode)
        for param, flag in requires_grad.items():
            param.requires_grad_(flag)


def attack_mode(model: nn.Module, *, training: bool = False):
    """How attacks run a model: eval mode (unless ``training``: the training attack may use
    batch statistics) and frozen parameters."""
    return model_mode(model, training=training, frozen=True)
