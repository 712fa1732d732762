"""What the `eval` and `analyze` jobs share: their settings checked, the process group joined,
the model resolved and its first n test images loaded (a :class:`TestTarget`)."""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from specrobust.data.streamed import Images
from specrobust.errors import SpecRobustError
from specrobust.loading import LoadedModel, ModelSource, as_source, resolve
from specrobust.machine import Distributed, init_distributed, one_malloc_arena, warn_if_slow
from specrobust.settings import NORMS, Settings


@dataclass
class TestTarget:
    """A model ready to be attacked: its weights, the budget, and the first n test images."""

    loaded: LoadedModel
    model: torch.nn.Module  # on the device, eval mode
    images: Images  # floats in [0, 1], on the device
    labels: torch.Tensor
    eps: float
    eps_text: str
    device: torch.device


def start_test_job(settings: Settings, source: ModelSource | str, work: str, *,
                   streamed: bool = False) -> tuple[Distributed, TestTarget]:
    """What `eval` and `analyze` do first (their settings were checked when they were made):
    the process group joined under torchrun, a word where the machine runs the arithmetic asked
    for badly (``work`` says what runs), the model and its test images loaded (``streamed``:
    decoded a batch at a time when used)."""
    one_malloc_arena()  # before the decoding thread starts: memory flat in n
    shard, device = init_distributed(settings.device)
    if shard.main:
        warn_if_slow(settings.precision, device, work)
    return shard, load_test_target(source, settings, device, streamed=streamed)


def load_test_target(source: ModelSource | str, settings: Settings,
                     device: torch.device, *, streamed: bool = False) -> TestTarget:
    """Resolve a model source (``specrobust.loading``) and load the first ``settings.n`` test
    images of its dataset (as RobustBench does: comparable across tools and papers), whole or
    (``streamed``) as :class:`StreamedImages`. The budget defaults to the training budget (when
    the model was trained in the same norm), else the dataset's usual one in that norm."""
    from specrobust.data import load_dataset, streamed_test

    norm = settings.norm
    loaded = resolve(replace(as_source(source), data_root=settings.data_root))
    if loaded.dataset is None:
        raise SpecRobustError(f"{loaded.path} does not say which data it was trained on; name "
                              "it with --dataset")
    if streamed:
        info, images, labels = streamed_test(loaded.dataset, settings.data_root, settings.n,
                                             device)
    else:
        data = load_dataset(loaded.dataset, settings.data_root, first_test=settings.n)
        test = data.test.take(torch.arange(min(settings.n, len(data.test))))
        info, images, labels = data.info, test.as_float().to(device), test.labels
    trained = loaded.eps if (loaded.norm or "linf") == norm else None
    eps_text = settings.eps or trained or info.budget_text(norm)
    if eps_text is None:
        raise SpecRobustError(f"{info.title} has no usual {NORMS[norm]} budget; give one "
                              "with --eps")
    eps_text = str(eps_text)
    eps = settings.budget(eps_text, tuple(images.shape[1:]))
    channels = images.shape[1]
    if channels != loaded.model.spec.in_channels:
        raise SpecRobustError(f"{loaded.path} takes {loaded.model.spec.in_channels}-channel "
                              f"images but {loaded.dataset} has {channels}")
    return TestTarget(loaded, loaded.model.to(device).eval(), images, labels.to(device), eps,
                      eps_text, device)
