"""What the Python API accepts, checked once at its edge.

``specrobust.evaluate`` and ``specrobust.analyze`` take a model and tensors from code that
specrobust did not write. Everything they rely on is checked here before any attack runs, and
what is wrong raises :class:`~specrobust.errors.SpecRobustError` (a ``ValueError``) with one
line that says what to pass instead: images float (N, C, H, W) in [0, 1] and finite; labels
integers (N,) in [0, classes); a model on a real device with floating-point weights that
returns one finite logit per class as a tensor.
"""

from __future__ import annotations

import torch
from torch import nn

from specrobust.errors import SpecRobustError

_PROBE = 2  # images the model is tried on before any attack


def check_inputs(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> int:
    """Check the API's arguments; returns the number of classes the model's logits give."""
    if not isinstance(model, nn.Module):
        raise SpecRobustError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    _check_images(images)
    _check_labels(labels, len(images))
    for name, tensor in [*model.named_parameters(), *model.named_buffers()]:
        if tensor.is_meta:
            raise SpecRobustError(f"the model's {name} is on the meta device (it holds no "
                                  "values); load its weights first")
        if tensor.is_floating_point() and tensor.dtype != torch.float32:
            raise SpecRobustError(f"the model's {name} is {tensor.dtype}; specrobust attacks "
                                  "float32 models (call model.float(); bf16 is "
                                  "precision='bf16')")
        if tensor.device != images.device:
            raise SpecRobustError(f"the model's {name} is on {tensor.device} but the images are "
                                  f"on {images.device}; put both on one device")
    classes = _check_logits(model, images[:_PROBE])
    if int(labels.max()) >= classes:
        raise SpecRobustError(f"labels must be integers in [0, {classes}) (the model returns "
                              f"{classes} logits), got {int(labels.max())}")
    return classes


def _check_images(images) -> None:
    if not isinstance(images, torch.Tensor):
        raise SpecRobustError(f"images must be a torch.Tensor, got {type(images).__name__} "
                              "(use torch.as_tensor)")
    if images.dtype != torch.float32:
        hint = " (divide uint8 images by 255)" if images.dtype == torch.uint8 else ""
        raise SpecRobustError(f"images must be float32 in [0, 1], got {images.dtype}{hint}")
    if images.dim() != 4 or len(images) == 0:
        raise SpecRobustError(f"images must be a non-empty batch (N, C, H, W), got shape "
                              f"{tuple(images.shape)}")
    if not bool(torch.isfinite(images).all()):
        raise SpecRobustError("images hold NaN or infinite values")
    low, high = float(images.min()), float(images.max())
    if low < 0 or high > 1:
        raise SpecRobustError(f"images must lie in [0, 1] (normalisation belongs inside the "
                              f"model), got values from {low:.3g} to {high:.3g}")


def _check_labels(labels, count: int) -> None:
    if not isinstance(labels, torch.Tensor):
        raise SpecRobustError(f"labels must be a torch.Tensor, got {type(labels).__name__}")
    if labels.dtype in (torch.bool,) or labels.is_floating_point() or labels.is_complex():
        raise SpecRobustError(f"labels must be integers (torch.int64), got {labels.dtype}")
    if tuple(labels.shape) != (count,):
        raise SpecRobustError(f"labels must have shape ({count},), one per image, got "
                              f"{tuple(labels.shape)}")
    if int(labels.min()) < 0:
        raise SpecRobustError(f"labels must be integers in [0, classes), got {int(labels.min())}")


def _check_logits(model: nn.Module, images: torch.Tensor) -> int:
    from specrobust.models import model_mode

    try:
        with torch.no_grad(), model_mode(model):
            logits = model(images)
    except Exception as error:  # noqa: BLE001 - the user's model: whatever it raises
        raise SpecRobustError(f"the model cannot take the images ({type(error).__name__}: "
                              f"{str(error).splitlines()[0][:160] if str(error) else '?'})"
                              ) from None
    if not isinstance(logits, torch.Tensor):
        raise SpecRobustError(f"the model returns a {type(logits).__name__}; specrobust needs a "
                              "tensor of logits (N, classes): wrap the model to return it")
    if logits.dim() != 2 or len(logits) != len(images) or not logits.is_floating_point():
        raise SpecRobustError(f"the model returns {logits.dtype} of shape "
                              f"{tuple(logits.shape)} for {len(images)} images; expected "
                              f"floating-point logits ({len(images)}, classes)")
    check_finite_logits(logits, "the first images")
    return logits.shape[1]


def check_finite_logits(logits: torch.Tensor, which: str) -> None:
    """Refuse NaN or infinite logits: every accuracy computed from them would be meaningless."""
    if not bool(torch.isfinite(logits).all()):
        raise SpecRobustError(f"the model returns NaN or infinite logits for {which}; it cannot "
                              "be evaluated (check its weights, or whether it diverged)")
