"""specrobust: understand adversarial robustness through the frequency spectrum, and improve it
with Spectral Alignment Regularization (SAR) and weight averaging (Huang et al., 2023)."""

from specrobust.errors import SpecRobustError

__version__ = "0.1.0"
__all__ = ["SpecRobustError", "__version__"]
