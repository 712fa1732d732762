"""specrobust: understand adversarial robustness through the frequency spectrum, and improve it
with Spectral Alignment Regularization (SAR) and weight averaging (Huang et al., 2023).

The Python API (``specrobust.api``; README "Python API"), loaded on first use so that
``import specrobust`` stays cheap:

- ``evaluate(model, images, labels, attacks=..., eps=...)`` and ``analyze(model, images,
  labels, parts=...)`` on any ``nn.Module`` taking images in [0, 1];
- ``SARLoss`` for your own training loop; the attacks ``pgd``, ``fgsm`` and ``autoattack``;
- ``resolve(source)`` / ``ModelSource``: any model source (a run, a checkpoint, a pretrained
  name, TorchScript, torch.export, weights with user code) as a module.
"""

from specrobust.errors import SpecRobustError

__version__ = "0.2.0"

_LAZY = {
    "evaluate": "specrobust.api", "analyze": "specrobust.api", "SARLoss": "specrobust.api",
    "pgd": "specrobust.attacks.pgd", "fgsm": "specrobust.attacks.pgd",
    "autoattack": "specrobust.attacks.autoattack",
    "resolve": "specrobust.loading", "ModelSource": "specrobust.loading",
    "create_model": "specrobust.models",
}
__all__ = ["SpecRobustError", "__version__", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'specrobust' has no attribute {name!r}")
