"""The zoo's table: each architecture registers itself beside its definition
(``@register_model``), one module per family; ``create_model`` (``specrobust.models``) reads it."""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from specrobust.registry import Registry

MODELS: Registry[Callable[[int, int], nn.Module]] = Registry(
    "model", hint="; `specrobust models` describes them")
register_model = MODELS.register
