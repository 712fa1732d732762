"""The training loop. It knows no particular objective, regularizer or averaging scheme: it calls
them. One epoch:

    for each batch: x_adv = objective.adversarial(...)     (model in eval mode, the default)
                    [AWP: shift the weights]
                    terms = objective.loss(...); SAR(terms)  (training mode)
                    backward, SGD step, [AWP: shift back], [EMA update]
    scheduler step; [SWA snapshot + batch-norm recomputation]
    validation: clean and PGD-20 accuracy on the validation subset, raw and averaged model
    checkpoints: last (full resume state), best and best_averaged (by validation robust accuracy)

Every random draw comes from a generator seeded by (seed, epoch, step) or by the loader's
(seed, epoch), so a run resumed from its last checkpoint on CPU ends with exactly the weights
of an uninterrupted one.
"""

from __future__ import annotations

import functools
import math
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from specrobust import seeds
from specrobust.attacks import pgd
from specrobust.attacks.pgd import default_step
from specrobust.config import Config
from specrobust.data import (
    DeviceLoader,
    class_balanced_subset,
    default_augment,
    load_dataset,
    train_val_split,
)
from specrobust.errors import SpecRobustError
from specrobust.evaluation.batched import clean_correct
from specrobust.files import outputs
from specrobust.machine import autocast as precision_autocast
from specrobust.machine import init_distributed, training_precision, warn_if_slow
from specrobust.models import create_model
from specrobust.training.averaging import WeightAveraging
from specrobust.training.objectives import LossTerms, StepContext, build_objective
from specrobust.training.regularizers import AWP, SAR
from specrobust.training.resume import RunWriter


def _step_generator(device, seed: int, epoch: int, step: int) -> torch.Generator:
    return seeds.generator(seeds.training_step(seed, epoch, step), device)


def _accuracy(model, x, y, batch_size=500) -> float:
    return clean_correct(model, x, y, batch_size).float().mean().item() if len(x) else 0.0


def _robust_accuracy(model, x, y, eps, steps, seed, epoch, norm="linf",
                     batch_size=500) -> float:
    hits = 0
    for i in range(0, len(x), batch_size):
        generator = seeds.generator(seeds.validation(seed, epoch, i), x.device)
        x_adv = pgd(model, x[i:i + batch_size], y[i:i + batch_size], eps, default_step(eps), steps,
                    norm=norm, generator=generator)
        hits += int(clean_correct(model, x_adv, y[i:i + batch_size], batch_size).sum())
    return hits / max(1, len(x))


def train(config: Config, run_dir: str | Path, *, resume: bool = False,
          force: bool = False, branch: tuple[str | Path, int] | None = None) -> dict:
    """Train per ``config`` into ``run_dir``; returns the last epoch's metrics. ``branch`` =
    (run, epoch): a new run starts from that run's snapshot after that epoch
    (``RunWriter._branch_state``)."""
    dist, device = init_distributed(config.run.device)
    run = RunWriter(outputs.typed(run_dir))  # resolved once: nothing below follows a link
    try:
        state = run.prepare(config, resume=resume, force=force, write=dist.main,
                            branch=None if branch is None else (Path(branch[0]), branch[1]))
        return _train(config, run, state, dist, device)
    finally:
        run.release()


@dataclass
class _Data:
    """The training images (as a loader), and the validation and test images on the device."""

    loader: DeviceLoader
    val: tuple[torch.Tensor, torch.Tensor]
    test: tuple[torch.Tensor, torch.Tensor]
    classes: int
    channels: int


@dataclass
class _Learner:
    """The model and everything that changes it: optimiser, schedule, objective, SAR, AWP,
    weight averaging."""

    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    objective: object
    sar: SAR | None
    awp: AWP | None
    averaging: WeightAveraging | None


def _train(config: Config, run: RunWriter, state: dict | None, dist, device) -> dict:
    # The order matters: the data's draws come from their own streams, the model's initial
    # weights from the global one, seeded after the data are read.
    data = _data(config, dist, device)
    learner = _learner(config, data, device)
    start_epoch, best = _restore(learner, state)
    trained = learner.model
    if dist.world_size > 1:
        trained = torch.nn.parallel.DistributedDataParallel(learner.model)
    # Compiled, the attack's passes too: ten of a PGD-10 step's eleven
    # (benchmarks/training_cost.py --variants).
    forward = torch.compile(trained) if config.run.compile else trained
    attacked = torch.compile(learner.model) if config.run.compile else learner.model
    precision = training_precision(config.run.precision, device)
    if dist.main:
        warn_if_slow(precision, device, "training runs")
    autocast = functools.partial(precision_autocast, precision, device)  # a fresh one per step
    writer = run.tensorboard() if config.run.tensorboard and dist.main else None

    metrics: dict = {}
    for epoch in range(start_epoch, config.optim.epochs):
        started, lr = time.perf_counter(), learner.optimizer.param_groups[0]["lr"]
        sums = _train_epoch(config, learner, data.loader, attacked, forward, autocast, epoch,
                            run, dist, device)
        metrics = _epoch_metrics(config, epoch, sums, len(data.loader), lr, started)
        if dist.main:
            _finish_epoch(config, learner, data, run, epoch, best, metrics, writer, started)
        if dist.world_size > 1:
            torch.distributed.barrier()

    if dist.main:
        run.finish(config, learner.model, learner.averaging)
    if writer is not None:
        writer.close()
    return metrics


def _data(config: Config, dist, device) -> _Data:
    dataset = load_dataset(config.data.dataset, config.data.data_root)
    if len(dataset.train) == 0:
        raise SpecRobustError(f"{config.data.dataset} has no training split (a train/ folder "
                              "beside test/, or x_train and y_train); it can be evaluated and "
                              "analysed, not trained on")
    classes, channels = len(dataset.class_names), dataset.train.images.shape[1]
    train_split, val_split = train_val_split(dataset.train, config.data.val_fraction, config.seed)
    if config.data.train_subset:
        train_split = class_balanced_subset(train_split, config.data.train_subset, classes,
                                            config.seed)
    augment = default_augment(dataset.info) if config.data.augment else None
    if config.optim.batch_size > len(train_split):
        raise SpecRobustError(f"optim.batch_size is {config.optim.batch_size} but the training "
                              f"split holds {len(train_split)} images, so no full batch would "
                              "ever be drawn; lower optim.batch_size")
    per_process_batch = max(1, config.optim.batch_size // dist.world_size)
    loader = DeviceLoader(train_split, per_process_batch, shuffle=True, augment=augment,
                          drop_last=True, seed=config.seed, device=device, rank=dist.rank,
                          world_size=dist.world_size)
    val = val_split.take(torch.arange(min(config.validation.n, len(val_split))))
    test = dataset.test.take(torch.arange(min(config.validation.test_n, len(dataset.test))))
    return _Data(loader, (val.as_float(device), val.labels.to(device)),
                 (test.as_float(device), test.labels.to(device)), classes, channels)


def _learner(config: Config, data: _Data, device) -> _Learner:
    torch.manual_seed(config.seed)
    model = create_model(config.model.name, data.classes, data.channels, config.model.mean,
                         config.model.std).to(device)
    if device.type == "cuda" and config.run.channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(model.parameters(), lr=config.optim.lr,
                                momentum=config.optim.momentum,
                                weight_decay=config.optim.weight_decay)
    if config.optim.schedule == "multistep":
        scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, config.optim.milestones,
                                                         config.optim.gamma)
    else:
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, config.optim.epochs)
    objective = build_objective(config.objective.name)
    sar = SAR(config.sar.lam, config.sar_start, config.sar.axes, config.sar.distance,
              config.sar.clean_bn) if config.sar.enabled else None
    awp = AWP(model, config.awp.gamma) if config.awp.enabled else None
    averaging = WeightAveraging(model, config.averaging.kind, config.averaging_start,
                                config.averaging.ema_decay, config.averaging.bn_inputs) \
        if config.averaging.kind != "none" else None
    return _Learner(model, optimizer, scheduler, objective, sar, awp, averaging)


def _restore(learner: _Learner, state: dict | None) -> tuple[int, dict]:
    """(the first epoch to train, the best validation scores so far), from a resume state."""
    if state is None:
        return 0, {"val_robust": -1.0, "val_robust_avg": -1.0}
    learner.model.load_state_dict(state["model"])
    learner.optimizer.load_state_dict(state["optimizer"])
    learner.scheduler.load_state_dict(state["scheduler"])
    if learner.averaging is not None and state["averaged"] is not None:  # None: a branch
        learner.averaging.load_state_dict(state["averaged"])
    torch.set_rng_state(state["rng"]["torch"])
    return state["epoch"], state["best"]


def _train_epoch(config: Config, learner: _Learner, loader: DeviceLoader, attacked, forward,
                 autocast, epoch: int, run: RunWriter, dist, device) -> dict:
    """One epoch of updates (and the averaged model's end-of-epoch work); its running sums."""
    model = learner.model
    loader.set_epoch(epoch)
    model.train()
    sums = _Sums(device)
    batches = tqdm(loader, desc=f"epoch {epoch + 1}/{config.optim.epochs}", leave=False,
                   disable=not (config.run.progress and dist.main))
    channels_last = device.type == "cuda" and config.run.channels_last
    for step, (x, y) in enumerate(batches):
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        ctx = StepContext(epoch, config.eps, config.alpha, config.attack.steps,
                          config.attack.random_start, config.attack.generation_mode,
                          config.objective.beta, _step_generator(device, config.seed, epoch,
                                                                 step),
                          norm=config.attack.norm)
        terms = _train_step(attacked, forward, learner.objective, learner.sar,
                            learner.awp if epoch >= config.awp.warmup else None,
                            learner.optimizer, x, y, ctx, autocast)
        if terms is None:
            kept = f"{run.last} (after epoch {epoch}) is intact" if epoch else \
                "no epoch had finished, so there is no checkpoint"
            raise SpecRobustError(
                f"training diverged: the loss is not finite at epoch {epoch + 1}, step "
                f"{step + 1}; {kept}; lower optim.lr or check the data")
        if learner.averaging is not None:
            learner.averaging.after_step(model, epoch)
        sums.add(terms, y)
        if step % _SHOW_EVERY == 0:  # the one host sync of the running sums, now and then
            batches.set_postfix(loss=f"{sums.loss() / (step + 1):.3f}")
    learner.scheduler.step()
    if learner.averaging is not None:
        learner.averaging.after_epoch(model, epoch, loader,
                                      _bn_attack(config, learner.objective, device, epoch))
    return sums.as_dict()


def _finish_epoch(config: Config, learner: _Learner, data: _Data, run: RunWriter,
                  epoch: int, best: dict, metrics: dict, writer, started: float) -> None:
    """Validation, the run's checkpoints and records, the epoch's line (the writing process)."""
    metrics.update(_validate(config, learner.model, *data.val, *data.test, epoch, ""))
    averaging = learner.averaging
    if averaging is not None and averaging.snapshots > 0:
        metrics.update(_validate(config, averaging.model, *data.val, *data.test, epoch, "_avg"))
    metrics["seconds"] = round(time.perf_counter() - started, 2)
    run.save_epoch(config, learner.model, averaging, learner.optimizer, learner.scheduler, epoch,
                   best, metrics, dataset_name=config.data.dataset)
    if writer is not None:
        for key, value in metrics.items():
            if isinstance(value, int | float) and key != "epoch":
                writer.add_scalar(key, value, epoch + 1)
    if config.run.progress:
        print(_epoch_line(metrics), flush=True)


def _bn_attack(config, objective, device, epoch):
    """The training attack, in eval mode, for the averaged model's batch-norm inputs; its own
    random stream (steps numbered after the epoch's training steps never collide with them)."""
    def attack(model, x, y, index):
        ctx = StepContext(epoch, config.eps, config.alpha, config.attack.steps,
                          config.attack.random_start, "eval", config.objective.beta,
                          _step_generator(device, config.seed, epoch, 1_000_000 + index),
                          norm=config.attack.norm)
        x_adv = objective.adversarial(model, x, y, ctx)
        return x if x_adv is None else x_adv
    return attack


def _train_step(model, forward, objective, sar, awp, optimizer, x, y, ctx,
                autocast) -> LossTerms | None:
    """One update; None (and the weights untouched) when the loss is not finite."""
    with autocast():
        # The attack runs on the model without DDP (compiled or not): DDP's gradient hooks
        # are for the update only.
        x_adv = objective.adversarial(model, x, y, ctx)
        diff = None
        if awp is not None:
            diff = awp.perturbation(model, lambda m: objective.loss(m, x, x_adv, y, ctx).loss)
            awp.shift(model, diff, +1)
        terms = objective.loss(forward, x, x_adv, y, ctx)
        if sar is not None:
            terms = sar(terms, forward, x, ctx.epoch)
    finite = bool(torch.isfinite(terms.loss))
    if finite:
        optimizer.zero_grad(set_to_none=True)
        terms.loss.backward()
        optimizer.step()
    if diff is not None:
        awp.shift(model, diff, -1)
    return terms if finite else None


# Steps between updates of the progress bar's loss: reading the running sums syncs the device.
_SHOW_EVERY = 25


class _Sums:
    """An epoch's running sums, kept on the device (float64 and int64: the same additions, in
    the same order, as Python numbers would make) and read once, at the end: reading them every
    step would wait for the device every step."""

    def __init__(self, device):
        def zero(dtype):
            return torch.zeros((), dtype=dtype, device=device)

        self._loss, self._sar = zero(torch.float64), zero(torch.float64)
        self._adv_correct, self._clean_correct = zero(torch.int64), zero(torch.int64)
        self._counts = {"seen": 0, "clean_seen": 0, "sar_steps": 0}  # known on the host

    def add(self, terms, y) -> None:
        self._loss += terms.loss.detach().double()
        self._counts["seen"] += len(y)
        logits = terms.adv_logits if terms.adv_logits is not None else terms.clean_logits
        self._adv_correct += (logits.argmax(1) == y).sum()
        if terms.clean_logits is not None:
            self._clean_correct += (terms.clean_logits.argmax(1) == y).sum()
            self._counts["clean_seen"] += len(y)
        if "sar" in terms.parts:
            self._sar += terms.parts["sar"].detach().double()
            self._counts["sar_steps"] += 1

    def loss(self) -> float:
        return float(self._loss)

    def as_dict(self) -> dict:
        return {"loss": float(self._loss), "adv_correct": int(self._adv_correct),
                "clean_correct": int(self._clean_correct), "sar": float(self._sar),
                **self._counts}


def _epoch_metrics(config, epoch, sums, steps, lr, started) -> dict:
    natural = config.objective.name == "natural"
    metrics = {
        "epoch": epoch + 1,
        "lr": lr,  # the rate this epoch trained with
        "train_loss": sums["loss"] / max(1, steps),
        # on the training attack's examples, with the weights of the moment (as logged in AT)
        ("train_clean" if natural else "train_robust"): sums["adv_correct"] / max(1, sums["seen"]),
        "train_seconds": round(time.perf_counter() - started, 2),
    }
    if sums["clean_seen"] and not natural:
        metrics["train_clean"] = sums["clean_correct"] / sums["clean_seen"]
    if sums["sar_steps"]:
        metrics["sar"] = sums["sar"] / sums["sar_steps"]  # the regulariser's mean value
    if not math.isfinite(metrics["train_loss"]):
        metrics["train_loss"] = None
    return metrics


def _validate(config, model, val_x, val_y, test_x, test_y, epoch, suffix) -> dict:
    seed, steps = config.seed, config.validation.pgd_steps
    values = {}
    if len(val_x):
        values[f"val_clean{suffix}"] = _accuracy(model, val_x, val_y)
        values[f"val_robust{suffix}"] = _robust_accuracy(model, val_x, val_y, config.eps, steps,
                                                         seed, epoch, config.attack.norm)
    if config.validation.test_each_epoch and len(test_x):
        values[f"test_clean{suffix}"] = _accuracy(model, test_x, test_y)
        values[f"test_robust{suffix}"] = _robust_accuracy(model, test_x, test_y, config.eps,
                                                          steps, seed, epoch, config.attack.norm)
    return values


def _epoch_line(metrics: dict) -> str:
    shown = [f"epoch {metrics['epoch']}"]
    for key, value in metrics.items():
        if key.endswith("seconds"):
            shown.append(f"{key} {value:.1f}")
        elif key not in ("epoch", "lr") and isinstance(value, float):
            shown.append(f"{key} {value:.4f}")
    return "  ".join(shown)

