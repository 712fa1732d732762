"""Public checkpoints that specrobust can name: ``specrobust models --pretrained``.

Each entry says what the model is (architecture in the zoo, dataset, threat model, the
accuracies its authors published) and where its weights come from: a file that ships inside an
installed package, or a download checked against its SHA-256. Loading goes through the
resolver (``specrobust.loading``), so a pretrained name works wherever a model source
does: ``specrobust analyze autoattack-natural-resnet18``.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

from specrobust.errors import SpecRobustError
from specrobust.files import storage
from specrobust.registry import Registry


@dataclass(frozen=True)
class Pretrained:
    name: str
    architecture: str  # a zoo name (specrobust models)
    dataset: str
    threat_model: str  # "Linf", "L2", or "none" for a naturally trained model
    eps: str | None  # the budget it was trained for, as papers write it
    clean: float | None  # published clean accuracy (%), where one was published
    autoattack: float | None  # published AutoAttack accuracy (%) at ``eps``
    source: str  # where the accuracies and the file come from, in words
    sha256: str | None  # of the file; None where none was published (see ``fetch``)
    package_file: tuple[str, str] | None = None  # (package, path inside it)
    urls: tuple[str, ...] = ()
    mean: tuple[float, ...] | None = None  # normalisation the weights expect, if any
    std: tuple[float, ...] | None = None


def _gdrive(file_id: str) -> str:
    """A Google Drive file by id, past the page that asks to confirm large downloads (the
    address RobustBench downloads its checkpoints from)."""
    return f"https://docs.google.com/uc?export=download&confirm=t&id={file_id}"


_ROBUSTBENCH = "RobustBench CIFAR-10 Linf leaderboard (model_info/cifar10/Linf/{}.json)"
_ROBUSTBENCH_IMAGENET = ("RobustBench ImageNet Linf leaderboard "
                         "(model_info/imagenet/Linf/{}.json; the address from its "
                         "model_zoo/imagenet.py); torchvision's layout, ImageNet normalisation "
                         "inside")

# Pretrained models by name (`specrobust models --pretrained`).
PRETRAINED: Registry[Pretrained] = Registry(
    "pretrained model", hint="; `specrobust models --pretrained` lists them")
for _entry in [
    Pretrained(
        name="autoattack-natural-resnet18", architecture="resnet18", dataset="cifar10",
        threat_model="none", eps=None, clean=None, autoattack=None,
        source="AutoAttack's example model, naturally trained (no accuracy published with it); "
               "ships with pyautoattack as examples/model_test.pt",
        sha256="399f52da9f914c323fa5a6096d60f460a3449a59b64a6405200c1e629f8425a7",
        package_file=("pyautoattack", "examples/model_test.pt")),
    Pretrained(
        name="Carmon2019Unlabeled", architecture="rb_wrn28_10", dataset="cifar10",
        threat_model="Linf", eps="8/255", clean=89.69, autoattack=59.53,
        source=_ROBUSTBENCH.format("Carmon2019Unlabeled"), sha256=None,
        urls=(_gdrive("15tUx-gkZMYx7BfEOw1GY5OKC-jECIsPQ"),)),
    Pretrained(
        name="Rebuffi2021Fixing_R18_ddpm", architecture="dm_preact_resnet18", dataset="cifar10",
        threat_model="Linf", eps="8/255", clean=83.53, autoattack=56.66,
        source=_ROBUSTBENCH.format("Rebuffi2021Fixing_R18_ddpm"), sha256=None,
        urls=(_gdrive("1--dxE66AsgBSUsuK2sXCTrsYUV9B5f95"),)),
    Pretrained(
        name="Gowal2020Uncovering_70_16_extra", architecture="dm_wrn70_16", dataset="cifar10",
        threat_model="Linf", eps="8/255", clean=91.10, autoattack=65.87,
        source=_ROBUSTBENCH.format("Gowal2020Uncovering_70_16_extra"), sha256=None,
        urls=(_gdrive("1GxryYj_Or-VCDca0wgiFLz4ssXSZXQoJ"),)),
    Pretrained(
        name="Salman2020Do_R50", architecture="imagenet_resnet50", dataset="imagenet",
        threat_model="Linf", eps="4/255", clean=64.02, autoattack=34.96,
        source=_ROBUSTBENCH_IMAGENET.format("Salman2020Do_R50"), sha256=None,
        urls=(_gdrive("1TmT5oGa1UvVjM3d-XeSj_XmKqBNRUg8r"),)),
    Pretrained(
        name="Engstrom2019Robustness", architecture="imagenet_resnet50", dataset="imagenet",
        threat_model="Linf", eps="4/255", clean=62.56, autoattack=29.22,
        source=_ROBUSTBENCH_IMAGENET.format("Engstrom2019Robustness"), sha256=None,
        urls=(_gdrive("1T2Fvi1eCJTeAOEzrH_4TAIwO8HTOYVyn"),)),
    Pretrained(
        name="Salman2020Do_50_2", architecture="imagenet_wrn50_2", dataset="imagenet",
        threat_model="Linf", eps="4/255", clean=68.46, autoattack=38.14,
        source=_ROBUSTBENCH_IMAGENET.format("Salman2020Do_50_2"), sha256=None,
        urls=(_gdrive("1OT7xaQYljrTr3vGbM37xK9SPoPJvbSKB"),)),
]:
    PRETRAINED.add(_entry.name, _entry)


def models_root() -> Path:
    """Where downloaded checkpoints live: ``$SPECROBUST_MODELS``, else
    ``~/.cache/specrobust/models``."""
    return storage.anchored(Path(os.environ.get("SPECROBUST_MODELS")
                                 or Path.home() / ".cache/specrobust/models"))


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
    """Make the entry's file present: found, or downloaded; then checked against its SHA-256
    where one was published (where none was, ``specrobust.loading.fetch_pretrained`` checks it
    by loading it into its architecture)."""
    from specrobust.loading.files import sha256_of

    entry = PRETRAINED[name]
    if entry.package_file is not None or (models_root() / f"{entry.name}.pt").is_file():
        path = local_file(entry)
    else:
        import urllib.request

        path = models_root() / f"{entry.name}.pt"
        failures = []
        for url in entry.urls:
            try:
                with urllib.request.urlopen(url, timeout=60) as response:
                    storage.write_with(path, lambda out, r=response: _copy(r, out))
                break
            except OSError as error:
                failures.append(f"{url}: {getattr(error, 'reason', error)}")
        else:
            raise SpecRobustError(f"could not download {entry.name} "
                                  f"({'; '.join(failures) or 'no address known'}); put the file "
                                  f"at {path}")
    actual = sha256_of(path)
    if entry.sha256 is not None and actual != entry.sha256:
        raise SpecRobustError(f"{path} has SHA-256 {actual[:16]}..., not the published "
                              f"{entry.sha256[:16]}...; it is not {entry.name} (delete it and "
                              "fetch again)")
    return path


def _copy(response, out) -> None:
    import shutil

    shutil.copyfileobj(response, out)
