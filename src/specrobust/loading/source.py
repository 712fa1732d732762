"""What names a model (`ModelSource`, the model-source options declared once) and what
resolving it gives (`LoadedModel`); the resolving itself is :mod:`specrobust.loading.resolver`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from specrobust.models import Classifier


@dataclass(frozen=True)
class ModelSource:
    """Where a model comes from: what `specrobust eval SOURCE --model ...` takes.

    Attributes:
        path: a run directory, checkpoint, safetensors, TorchScript, ``torch.export`` or
            weights file; None when ``model`` is a pretrained name or user code that returns
            its own weights.
        model: a zoo architecture (``specrobust models``), a pretrained name, or user code as
            ``file.py:function``, for files that hold only weights.
        model_args: keyword arguments for ``model`` (a dict, or its JSON text).
        dataset: the dataset the model was trained on, where the file does not say.
        mean: per-channel normalisation the model expects, where the file does not carry it.
        std: as ``mean``.
        which: which checkpoint of a run directory: ``auto`` (the averaged model's best if
            the run averages weights, else the best), ``best``, ``best_averaged``,
            ``averaged`` or ``last``.
        data_root: where datasets are found (for the image shape of ``dataset``).
    """

    path: str | None = None
    model: str | None = None
    model_args: dict | str | None = None
    dataset: str | None = None
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    which: str = "auto"
    data_root: str | None = None

    def __post_init__(self):
        if isinstance(self.model_args, str):
            from specrobust.loading.usercode import parse_model_args

            object.__setattr__(self, "model_args", parse_model_args(self.model_args))

    def describe(self) -> str:
        """The source in a few words, for messages."""
        return self.path or self.model or "?"


@dataclass(frozen=True)
class LoadedModel:
    """A model that `resolve` loaded, with what its source says about it.

    Attributes:
        model: the module, in eval mode, taking images in [0, 1].
        dataset: the dataset it was trained on, when the source says so.
        eps: the training budget as text, when the source says so.
        path: the file the weights came from.
        run_dir: the run directory, when there is one.
        sha256: of the weights file: identifies the model for resumable evaluations.
        home: where default outputs outside a run go (beside the weights file).
        norm: the threat model it was trained in, when the source says so.
    """

    model: Classifier
    dataset: str | None
    eps: str | None
    path: Path
    run_dir: Path | None
    sha256: str
    home: Path | None = None  # default: ``path`` (./NAME for a model without a file)
    norm: str | None = None

    def __post_init__(self):
        if self.home is None:
            object.__setattr__(self, "home", self.path)


def as_source(source: ModelSource | str) -> ModelSource:
    """A plain string names a path (or a pretrained model)."""
    return source if isinstance(source, ModelSource) else ModelSource(path=str(source))
