"""Typed run configuration: plain data, YAML in and out, validated with one-line errors that
name the key.

Epochs are counted from 0 here, as PyTorch's schedulers count them: with ``milestones: [75, 90]``
epoch 75 (the 76th) is the first at the decayed rate, and SAR and weight averaging start with
it by default. ``metrics.jsonl`` numbers epochs from 1.

    config = load_config("fmnist_cnn_at_sar_wa", overrides=["optim.epochs=2"])  # or a path

Budgets are kept as written (``eps: 8/255``) and turned into numbers where they are used.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import yaml

from specrobust.errors import SpecRobustError, quoted
from specrobust.files.storage import check_depth, loads_yaml, read_mapping
from specrobust.numbers import parse_fraction
from specrobust.settings import MAX_SEED, MOST_STEPS
from specrobust.typed import build, rename_keys

# Closed choices: a value outside them is refused while the config is read, naming them.
AveragingKind = Literal["none", "swa", "ema"]
TrainingPrecision = Literal["auto", "fp32", "bf16"]
Schedule = Literal["multistep", "cosine"]
ModelMode = Literal["eval", "train"]
Norm = Literal["linf", "l2"]

# YAML keys that are not valid Python names.
_ALIASES = {"lambda": "lam"}
_REVERSE_ALIASES = {v: k for k, v in _ALIASES.items()}


@dataclass
class DataConfig:
    dataset: str = "fashion-mnist"
    data_root: str | None = None
    val_fraction: float = 0.1  # the paper's 9:1 train/validation split (seeded)
    train_subset: int | None = None  # class-balanced subset of the training part (CPU runs)
    augment: bool = True  # crop with padding (1/8 of the side) and, where valid, flips


@dataclass
class ModelConfig:
    name: str = "cnn_small"
    mean: list[float] | None = None  # normalisation inside the model; none by default, as the
    std: list[float] | None = None  # authors train


@dataclass
class OptimConfig:
    epochs: int = 100
    batch_size: int = 128
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    schedule: Schedule = "multistep"
    milestones: list[int] = field(default_factory=lambda: [75, 90])
    gamma: float = 0.1


@dataclass
class AttackConfig:
    """The training attack."""

    eps: str = "8/255"
    alpha: str = "2/255"
    steps: int = 10
    norm: Norm = "linf"  # the threat model (l2: eps is an L2 radius, e.g. 0.5)
    random_start: bool = True
    generation_mode: ModelMode = "eval"  # the model's mode while attacking (the authors': eval)


@dataclass
class ObjectiveConfig:
    name: str = "pgd_at"  # one of training.objectives.OBJECTIVES
    beta: float = 6.0  # TRADES' and MART's weight of the robustness term


@dataclass
class AWPConfig:
    enabled: bool = False
    gamma: float = 0.01  # size of the weight perturbation relative to each layer's weights
    warmup: int = 0  # epochs before AWP starts


@dataclass
class SARConfig:
    enabled: bool = False
    lam: float = 0.1  # written `lambda` in YAML
    start_epoch: int | None = None  # None: the first learning-rate decay
    axes: str = "batch_class"
    distance: str = "l1"
    # The extra clean pass (objectives without clean logits of their own) in training mode:
    # "update" moves batch norm's running statistics, as the authors do; "frozen" leaves them
    # to the adversarial batches (specrobust/training/regularizers.py says why).
    clean_bn: Literal["update", "frozen"] = "update"


@dataclass
class AveragingConfig:
    kind: AveragingKind = "none"
    start_epoch: int | None = None  # None: the first learning-rate decay
    ema_decay: float = 0.999
    # What SWA recomputes the averaged model's batch-norm statistics on: "clean" training images
    # (swa_utils' way, the paper's description) or "adversarial" ones made by the training attack
    # against the averaged model, the inputs an AT model's statistics came from. On
    # Fashion-MNIST clean statistics undo an AT model's robustness (benchmarks/swa_batchnorm.py,
    # figures in benchmarks/RESULTS.md).
    bn_inputs: Literal["clean", "adversarial"] = "clean"


@dataclass
class ValidationConfig:
    n: int = 1000  # validation images attacked each epoch (PGD) to pick the best checkpoint
    pgd_steps: int = 20
    test_each_epoch: bool = False
    test_n: int = 1000


@dataclass
class RunConfig:
    device: str = "auto"
    # The step's arithmetic (specrobust.machine): bf16 autocast or fp32; auto is bf16 on CUDA
    # and fp32 on a CPU, where bf16 is faster only on some processors and is asked for.
    precision: TrainingPrecision = "auto"
    channels_last: bool = True  # CUDA only
    compile: bool = False
    tensorboard: bool = False
    progress: bool = True
    # Epochs (finished-epoch counts) whose whole state is kept in checkpoints/epoch<K>/, so that
    # a run differing only from epoch K on (SAR from the first decay) can branch from it.
    snapshot_epochs: list[int] = field(default_factory=list)


@dataclass
class Config:
    seed: int = 0
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    attack: AttackConfig = field(default_factory=AttackConfig)
    objective: ObjectiveConfig = field(default_factory=ObjectiveConfig)
    awp: AWPConfig = field(default_factory=AWPConfig)
    sar: SARConfig = field(default_factory=SARConfig)
    averaging: AveragingConfig = field(default_factory=AveragingConfig)
    validation: ValidationConfig = field(default_factory=ValidationConfig)
    run: RunConfig = field(default_factory=RunConfig)

    @property
    def first_decay(self) -> int:
        """The epoch of the first learning-rate decay (SAR and averaging start there)."""
        if self.optim.schedule == "multistep" and self.optim.milestones:
            return self.optim.milestones[0]
        return int(0.75 * self.optim.epochs)  # cosine: where the paper's schedule decays

    @property
    def sar_start(self) -> int:
        return self.first_decay if self.sar.start_epoch is None else self.sar.start_epoch

    @property
    def averaging_start(self) -> int:
        start = self.averaging.start_epoch
        return self.first_decay if start is None else start

    @property
    def eps(self) -> float:
        return parse_fraction(self.attack.eps, "attack.eps")

    @property
    def alpha(self) -> float:
        return parse_fraction(self.attack.alpha, "attack.alpha")

    def as_dict(self) -> dict:
        return rename_keys(dataclasses.asdict(self), _REVERSE_ALIASES)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.as_dict(), sort_keys=False)


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> Config:
    """A Config from a YAML file or a shipped recipe's name (or the defaults) with
    ``key=value`` overrides applied."""
    from specrobust.recipes import RECIPE, find

    data = _read_yaml(find(str(path), RECIPE)) if path is not None else {}
    for override in overrides or []:
        _apply_override(data, override)
    config = build(Config, data, aliases=_ALIASES)
    validate(config)
    return config


# Far more than a recipe needs (the shipped ones have at most two): a chain longer is a mistake.
MAX_BASES = 16


def read_recipe(path: Path) -> dict:
    """A recipe file's mapping with its bases merged (what ``specrobust recipes show`` prints)."""
    return _read_yaml(path)


def _read_yaml(path: Path, seen: tuple[Path, ...] = ()) -> dict:
    """A config file; ``base: other.yaml`` (relative to the file, else a shipped recipe's name)
    is read first and overlaid, so a recipe states only how it differs from its base."""
    from specrobust.recipes import RECIPE, find

    data = read_mapping(path, kind="config file", what="a recipe", holds="config sections")
    if path.resolve() in seen:
        raise SpecRobustError(f"config {path} includes itself through base:")
    if len(seen) >= MAX_BASES:
        raise SpecRobustError(f"config {seen[0]} has a chain of more than {MAX_BASES} bases "
                              "(base: naming base: ...); shorten it")
    base = data.pop("base", None)
    if base is None:
        return data
    if not isinstance(base, str) or not base.strip():
        raise SpecRobustError(f"{path}: base must name another recipe file, got {quoted(base)}")
    return _merge(_read_yaml(find(base, RECIPE, relative_to=path.parent),
                             (*seen, path.resolve())), data)


def _merge(base: dict, changes: dict) -> dict:
    merged = dict(base)
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def config_from_dict(data: dict) -> Config:
    config = build(Config, data, aliases=_ALIASES)
    validate(config)
    return config


def _apply_override(data: dict, override: str) -> None:
    key, sep, text = override.partition("=")
    if not sep or not key.strip():
        raise SpecRobustError(f"--set takes key=value (e.g. optim.epochs=2), "
                              f"got {quoted(override)}")
    *sections, leaf = key.strip().split(".")
    target = data
    for section in sections:
        target = target.setdefault(section, {})
        if not isinstance(target, dict):
            raise SpecRobustError(f"--set {key}: {section} is not a section")
    try:
        target[leaf] = loads_yaml(text) if text.strip() else None
    except yaml.YAMLError:
        target[leaf] = text
    except RecursionError:
        raise SpecRobustError(f"--set {key}: the value is nested too deeply") from None
    check_depth(target[leaf], f"--set {key}")


def validate(config: Config) -> None:
    """Checks beyond types: ranges, names and choices, each naming its key."""
    from specrobust.data import DATASETS, parse_dataset_name, user_data
    from specrobust.models import MODELS
    from specrobust.sar import AXES, DISTANCES

    def require(ok: bool, key: str, message: str) -> None:
        if not ok:
            raise SpecRobustError(f"config key {key} {message}")

    def choice(value, choices, key):
        require(value in choices, key, f"must be one of {', '.join(choices)}, got {quoted(value)}")

    dataset_name, options = parse_dataset_name(config.data.dataset)
    user = user_data(config.data.dataset)
    require(user is None or user.kind != "imagenet", "data.dataset",
            "imagenet is its validation set only here: it can be evaluated and analysed, not "
            "trained on")
    if user is not None:  # the user's own: read when training starts
        options = {}
    else:
        DATASETS[dataset_name]  # raises with the known names
    if options:
        from specrobust.data import SyntheticSpec

        require(dataset_name == "synthetic", "data.dataset", "takes options only for synthetic")
        SyntheticSpec.from_options(options)
    require(0 <= config.seed <= MAX_SEED, "seed", f"must lie in [0, 2**63 - 1], got "
            f"{quoted(config.seed)}")
    choice(config.model.name, tuple(MODELS), "model.name")
    from specrobust.training.objectives import OBJECTIVES

    choice(config.objective.name, tuple(OBJECTIVES), "objective.name")
    require(0 < config.data.val_fraction < 1, "data.val_fraction", "must lie in (0, 1)")
    require(config.data.train_subset is None or config.data.train_subset >= 1,
            "data.train_subset", "must be >= 1")

    optim = config.optim
    require(optim.epochs >= 1, "optim.epochs", "must be >= 1")
    require(optim.batch_size >= 1, "optim.batch_size", "must be >= 1")
    require(optim.lr > 0, "optim.lr", "must be > 0")
    require(0 <= optim.momentum < 1, "optim.momentum", "must lie in [0, 1)")
    require(optim.weight_decay >= 0, "optim.weight_decay", "must be >= 0")
    require(optim.milestones == sorted(set(optim.milestones)), "optim.milestones",
            "must be increasing")
    # Milestones at or after the last epoch are never reached: a recipe shortened with
    # --set optim.epochs=K keeps them (and SAR and averaging, which start at the first decay,
    # are checked below).
    require(all(m > 0 for m in optim.milestones), "optim.milestones", "must be > 0")
    require(0 < optim.gamma <= 1, "optim.gamma", "must lie in (0, 1]")

    eps = parse_fraction(config.attack.eps, "attack.eps")
    require(eps >= 0, "attack.eps", f"must be >= 0, got {config.attack.eps}")
    require(parse_fraction(config.attack.alpha, "attack.alpha") > 0, "attack.alpha", "must be > 0")
    require(1 <= config.attack.steps <= MOST_STEPS, "attack.steps",
            f"must lie in [1, {MOST_STEPS}] (as evaluation's)")

    require(config.objective.beta >= 0, "objective.beta", "must be >= 0")
    require(config.awp.gamma >= 0, "awp.gamma", "must be >= 0")
    require(config.awp.warmup >= 0, "awp.warmup", "must be >= 0")
    require(not (config.awp.enabled and config.objective.name not in ("pgd_at", "trades")),
            "awp.enabled", "works on top of pgd_at or trades")
    require(config.sar.lam >= 0, "sar.lambda", "must be >= 0")
    require(not (config.sar.enabled and config.objective.name == "natural"), "sar.enabled",
            "needs adversarial examples (an objective other than natural)")
    require(config.sar.start_epoch is None or config.sar.start_epoch >= 0, "sar.start_epoch",
            "must be >= 0")
    choice(config.sar.axes, AXES, "sar.axes")
    choice(config.sar.distance, DISTANCES, "sar.distance")
    require(not config.sar.enabled or config.sar_start < optim.epochs, "sar.start_epoch",
            f"is {config.sar_start} (the first decay unless given), at or after the last epoch "
            f"(optim.epochs {optim.epochs}): SAR would never run; give sar.start_epoch, "
            "optim.milestones or more epochs")
    require(config.averaging.kind == "none" or config.averaging_start < optim.epochs,
            "averaging.start_epoch",
            f"is {config.averaging_start} (the first decay unless given), at or after the last "
            f"epoch (optim.epochs {optim.epochs}): nothing would be averaged; give "
            "averaging.start_epoch, optim.milestones or more epochs")
    require(config.averaging.start_epoch is None or
            0 <= config.averaging.start_epoch < optim.epochs, "averaging.start_epoch",
            f"must lie in [0, optim.epochs) = [0, {optim.epochs})")
    require(0 < config.averaging.ema_decay < 1, "averaging.ema_decay", "must lie in (0, 1)")
    require(config.validation.n >= 0 and config.validation.test_n >= 0, "validation.n",
            "and validation.test_n must be >= 0")
    require(1 <= config.validation.pgd_steps <= MOST_STEPS, "validation.pgd_steps",
            f"must lie in [1, {MOST_STEPS}]")
    require(all(1 <= k <= optim.epochs for k in config.run.snapshot_epochs),
            "run.snapshot_epochs", f"must lie in [1, optim.epochs] = [1, {optim.epochs}]")
