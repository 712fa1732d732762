"""Public checkpoints that specrobust can name: ``specrobust models --pretrained``.

Each entry says what the model is (architecture in the zoo, dataset, threat model, the
accuracies its authors published) and where its weights come from: a file that ships inside an
installed package, or a download checked against its SHA-256. Loading goes through the
resolver (``specrobust.models.sources``), so a pretrained name works wherever a model source
does: ``specrobust analyze autoattack-natural-resnet18``.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

from specrobust.errors import SpecRobustError


@dataclass(frozen=True)
class Pretrained:
    name: str
    architecture: str  # a zoo name (specrobust models)
    dataset: str
    threat_model: str  # "Linf", "L2", or "none" for a naturally trained model
    eps: str | None  # the budget it was trained for, as papers write it
    published: str  # the accuracies its authors published, as they state them
    sha256: str
    source: str  # where the file comes from, in words
    package_file: tuple[str, str] | None = None  # (package, path inside it)
    urls: tuple[str, ...] = ()
    mean: tuple[float, ...] | None = None  # normalisation the weights expect, if any
    std: tuple[float, ...] | None = None


PRETRAINED: dict[str, Pretrained] = {p.name: p for p in [
    Pretrained(
        name="autoattack-natural-resnet18",
        architecture="resnet18", dataset="cifar10", threat_model="none", eps=None,
        published="natural training, about 94% clean accuracy on CIFAR-10 (no robust accuracy "
                  "claimed; AutoAttack's example model)",
        sha256="399f52da9f914c323fa5a6096d60f460a3449a59b64a6405200c1e629f8425a7",
        source="ships with pyautoattack (examples/model_test.pt)",
        package_file=("pyautoattack", "examples/model_test.pt")),
]}


def models_root() -> Path:
    """Where downloaded checkpoints live: ``$SPECROBUST_MODELS``, else
    ``~/.cache/specrobust/models``."""
    return Path(os.environ.get("SPECROBUST_MODELS") or Path.home() / ".cache/specrobust/models")


def get(name: str) -> Pretrained:
    if name not in PRETRAINED:
        raise SpecRobustError(f"unknown pretrained model {name!r}; known: "
                              f"{', '.join(PRETRAINED)}")
    return PRETRAINED[name]


def local_file(entry: Pretrained) -> Path:
    """The entry's weights file on this machine, or one line saying how to get it."""
    if entry.package_file is not None:
        package, inner = entry.package_file
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            raise SpecRobustError(f"{entry.name} ships with the {package} package, which is not "
                                  f"installed: pip install {package}")
        path = Path(next(iter(spec.submodule_search_locations))) / inner
        if not path.is_file():
            raise SpecRobustError(f"{entry.name}: {path} is missing from the installed {package}")
        return path
    path = models_root() / f"{entry.name}.pt"
    if not path.is_file():
        raise SpecRobustError(f"{entry.name} is not on this machine; `specrobust fetch-model "
                              f"{entry.name}` downloads it, or put the file at {path}")
    return path


def fetch(name: str) -> Path:
    """Make the entry's file present: found, or downloaded and checked against its SHA-256."""
    from specrobust import atomic
    from specrobust.checkpoint import sha256_of

    entry = get(name)
    if entry.package_file is not None or (models_root() / f"{entry.name}.pt").is_file():
        path = local_file(entry)
    else:
        import urllib.request

        path = models_root() / f"{entry.name}.pt"
        failures = []
        for url in entry.urls:
            try:
                with urllib.request.urlopen(url, timeout=60) as response:
                    atomic.write_with(path, lambda out, r=response: _copy(r, out))
                break
            except OSError as error:
                failures.append(f"{url}: {getattr(error, 'reason', error)}")
        else:
            raise SpecRobustError(f"could not download {entry.name} "
                                  f"({'; '.join(failures) or 'no address known'}); put the file "
                                  f"at {path}")
    actual = sha256_of(path)
    if actual != entry.sha256:
        raise SpecRobustError(f"{path} has SHA-256 {actual[:16]}..., not the published "
                              f"{entry.sha256[:16]}...; it is not {entry.name} (delete it and "
                              "fetch again)")
    return path


def _copy(response, out) -> None:
    import shutil

    shutil.copyfileobj(response, out)
