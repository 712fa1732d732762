"""Every model source becomes a module here, and nowhere else: run directories, specrobust's
checkpoints, other people's weights, safetensors, TorchScript and ``torch.export`` programs,
user code and pretrained names (:mod:`specrobust.loading.resolver`). This layer sits above the
architectures (``specrobust.models``) and specrobust's own checkpoint format
(``specrobust.checkpoint``); neither imports it."""

from specrobust.loading.resolver import fetch_pretrained, load_model, resolve
from specrobust.loading.source import LoadedModel, ModelSource, as_source
from specrobust.loading.usercode import parse_model_args

__all__ = ["LoadedModel", "ModelSource", "as_source", "fetch_pretrained", "load_model",
           "parse_model_args", "resolve"]
