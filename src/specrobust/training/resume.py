"""Writing a training run and resuming it: the directory checked and claimed, each epoch's
checkpoints, metrics and curves written so that a kill at any point resumes to the same
numbers, a run branched from another's snapshot, and the exports at the end.

While a process trains a run it holds an advisory lock on the directory (``RunWriter._lock``).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from specrobust.checkpoint import export_safetensors, read_checkpoint, read_own, save_checkpoint
from specrobust.config import Config, config_from_dict
from specrobust.errors import SpecRobustError
from specrobust.files import layout, locks, outputs, storage
from specrobust.training.rundir import RunDir, method_name

# Settings that are not the recipe: a resume may differ in them. Where the data lie does not
# change a number (files are checksummed); another device changes floating-point rounding only,
# and continuing a CPU run on a GPU (benchmarks/device_replicate.sh) is a move, not a new recipe.
_COSMETIC = {("run", "progress"), ("run", "tensorboard"), ("run", "device"),
             ("data", "data_root"), ("run", "snapshot_epochs")}
_BEST = ("best.pt", "best_averaged.pt")
# What last.pt's training state holds (RunDir.save_epoch); a resume needs all of it.
_RESUME_KEYS = {"epoch", "best", "config", "optimizer", "scheduler", "rng"}


class RunInUseError(locks.InUseError):
    """The run directory is being trained by another process (``RunDir._lock``)."""


def _comparable(config_dict: dict) -> dict:
    # Through the dataclasses, so a setting added since the run started counts at its default.
    config_dict = config_from_dict(config_dict).as_dict()
    return {section: ({k: v for k, v in values.items() if (section, k) not in _COSMETIC}
                      if isinstance(values, dict) else values)
            for section, values in config_dict.items()}


class RunWriter(RunDir):
    """A run directory being trained: :class:`RunDir` and the writes of training."""

    def __init__(self, path: str | Path):
        super().__init__(path)
        self._claim: int | None = None  # descriptor holding the directory's lock while training

    def prepare(self, config: Config, *, resume: bool, force: bool, write: bool,
                branch: tuple[Path, int] | None = None) -> dict | None:
        """Check the directory, write config.yaml; return the resume state (or, for a new run
        with ``branch`` = (run, epoch), the state it branches from: ``_branch_state``) or None."""
        # The checks are the writer's: the other processes of a DDP run write nothing, and
        # would find the directory as the first is writing it.
        if write:
            outputs.check_directory(self.path, outputs.RUN)
        if write and self.path.is_dir():
            self._lock()  # before reading its state: another process may be writing it
            self._remove_leftovers()
        has_run = self.last.is_file() or self.config_file.is_file()
        if has_run and not resume and write:
            raise SpecRobustError(f"{self.path} already holds a run; continue it with --resume "
                                  "or choose another --out")
        state, branched = None, False
        if resume and self.last.is_file():
            payload = read_checkpoint(self.last)
            state = payload.get("training")
            if not _is_resume_state(state):
                raise SpecRobustError(f"{self.last} holds no training state to resume from; it "
                                      "is not the last.pt training wrote, or it is damaged")
            if state["epoch"] > config.optim.epochs and not force:
                raise SpecRobustError(f"{self.last} claims epoch {state['epoch']:,} of a run of "
                                      f"{config.optim.epochs} epochs; it is damaged")
            if _comparable(state["config"]) != _comparable(config.as_dict()) and not force:
                differing = _differences(state["config"], config.as_dict())
                raise SpecRobustError(f"{self.path} was trained with a different config "
                                      f"({', '.join(differing[:3])}); resume with the same one, "
                                      "or add --force")
            state["model"] = payload["state_dict"]
            self.metrics = list(state.get("metrics", []))
        elif branch is not None:
            state, branched = self._branch_state(config, *branch), True
        if write:
            storage.make_directories(self.path)
            self._lock()
            storage.write_text(self.config_file, config.to_yaml())
            if branched:
                self._record_branch(*branch)
            if state is not None and not branched and not self._records_follow_state():
                # Killed between last.pt and the records written after it: last.pt is the
                # truth, and the records follow it.
                self._write_records(config, config.data.dataset)
        return state

    def _remove_leftovers(self) -> None:
        """What a killed training left half-written (it holds the run's lock, so no live write
        of this run is among them)."""
        for directory in (self.path, self.checkpoints, self.path / layout.WEIGHTS_DIR,
                          *self.checkpoints.glob("epoch*")):
            layout.remove_leftovers(directory, None if directory != self.path else (
                layout.CONFIG, layout.METRICS, layout.CURVES, layout.BRANCHED_FROM))

    def _lock(self) -> None:
        """Refuse a second process training the same run: both would write its checkpoints in
        turn, each resuming from the other's. The lock is on the directory itself (nothing to
        clean up)."""
        if self._claim is None:
            self._claim = locks.claim(self.path, RunInUseError(
                f"{self.path} is being trained by another process; wait for it to finish or "
                "stop it first"))

    def release(self) -> None:
        locks.release(self._claim)
        self._claim = None

    def save_epoch(self, config: Config, model, averaging, optimizer, scheduler, epoch: int,
                   best: dict, metrics: dict, *, dataset_name: str) -> None:
        """Best checkpoints first, then the resume state, then metrics and curves: a kill at any
        point leaves a state from which the epoch is simply run again."""
        eps, norm = config.attack.eps, config.attack.norm
        if metrics.get("val_robust", -1) > best["val_robust"]:
            best["val_robust"], best["epoch"] = metrics["val_robust"], epoch + 1
            save_checkpoint(self.checkpoint("best"), model, dataset=dataset_name, eps=eps,
                            norm=norm)
        if averaging is not None and metrics.get("val_robust_avg", -1) > best["val_robust_avg"]:
            best["val_robust_avg"], best["epoch_avg"] = metrics["val_robust_avg"], epoch + 1
            save_checkpoint(self.checkpoint("best_averaged"), averaging.model,
                            dataset=dataset_name, eps=eps, norm=norm)
        metrics["best_epoch"] = best.get("epoch")
        if best.get("epoch_avg") is not None:  # once the averaged model has been validated
            metrics["best_epoch_averaged"] = best["epoch_avg"]
        self.metrics.append(metrics)
        training = {
            "epoch": epoch + 1, "best": best, "config": config.as_dict(),
            "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
            "averaged": None if averaging is None else averaging.state_dict(),
            "rng": {"torch": torch.get_rng_state()}, "metrics": self.metrics,
        }
        if epoch + 1 in config.run.snapshot_epochs:
            # Before last.pt: a kill in between re-runs the epoch, which writes it again.
            snapshot = self.snapshot_dir(epoch + 1)
            save_checkpoint(snapshot / "last.pt", model, dataset=dataset_name, eps=eps, norm=norm,
                            training=training)
            _copy_best(self.checkpoints, snapshot)
        save_checkpoint(self.last, model, dataset=dataset_name, eps=eps, norm=norm,
                        training=training)
        self._write_records(config, dataset_name)

    def _records_follow_state(self) -> bool:
        try:
            return self.read_metrics() == self.metrics
        except SpecRobustError:  # damaged: rewritten from the resume state
            return False

    def _write_records(self, config: Config, dataset_name: str) -> None:
        """metrics.jsonl and curves.png, from the epochs' metrics."""
        storage.write_text(self.metrics_file,
                           "".join(json.dumps(m) + "\n" for m in self.metrics))
        from specrobust.training.curves import plot_training_curves

        plot_training_curves(self.metrics, self.path / layout.CURVES,
                             title=f"{config.model.name} on {dataset_name}, "
                                   f"{method_name(config)}")

    def _branch_state(self, config: Config, source: Path, epoch: int) -> dict:
        """``source``'s state after ``epoch`` epochs, to start this new run from as if it had
        trained them itself. Sound only where the two recipes cannot have differed before that
        epoch: they must agree on everything but SAR and weight averaging, and each of those must
        be off or start at ``epoch`` or later in both (before it starts, the averaged model is
        only a copy to be overwritten). The typical use: AT+SAR with SAR from the first decay
        branches from the AT run, saving the shared epochs (tests/test_training.py checks that
        the weights come out identical).
        """
        snapshot = RunDir(source).snapshot_dir(epoch)
        if not source.is_dir() or not (source / layout.CONFIG).is_file():
            raise SpecRobustError(f"cannot branch from {source}: it is not a run directory "
                                  "(no such directory, or no config.yaml in it)")
        if not RunDir(source).has_snapshot(epoch):
            raise SpecRobustError(f"{source} has no snapshot after epoch {epoch} (it needs "
                                  f"run.snapshot_epochs=[{epoch}] while training)")
        payload = read_checkpoint(snapshot / "last.pt")
        state = payload["training"]
        theirs = config_from_dict(state["config"])
        for name, recipe in (("this run", config), (str(source), theirs)):
            if recipe.sar.enabled and recipe.sar_start < epoch:
                raise SpecRobustError(f"cannot branch after epoch {epoch}: SAR starts at epoch "
                                      f"{recipe.sar_start} in {name}")
            if recipe.averaging.kind != "none" and recipe.averaging_start < epoch:
                raise SpecRobustError(f"cannot branch after epoch {epoch}: weight averaging "
                                      f"starts at epoch {recipe.averaging_start} in {name}")
        mine, other = _comparable(config.as_dict()), _comparable(theirs.as_dict())
        for free in ("sar", "averaging"):
            mine.pop(free), other.pop(free)
        if mine != other:
            differing = [key for key in _differences(theirs.as_dict(), config.as_dict())
                         if not key.startswith(("sar.", "averaging."))]
            raise SpecRobustError(f"cannot branch from {source}: its recipe differs in more "
                                  f"than SAR and weight averaging ({', '.join(differing[:3])})")
        state["model"] = payload["state_dict"]
        state["config"] = config.as_dict()
        state["averaged"] = None  # not started yet in either run: this run's fresh copy will do
        self.metrics = list(state.get("metrics", []))
        return state

    def _record_branch(self, source: Path, epoch: int) -> None:
        """The best checkpoints as they were at the branch, and where it came from."""
        _copy_best(RunDir(source).snapshot_dir(epoch), self.checkpoints)
        storage.write_text(self.path / layout.BRANCHED_FROM,
                           json.dumps({"run": str(source), "epoch": epoch}) + "\n")

    def finish(self, config: Config, model, averaging) -> None:
        """Safetensors exports of every checkpoint, then the final averaged checkpoint: written
        last, it marks an averaging run finished (``is_complete``), so a kill in between is
        finished again by the next resume."""
        dataset, eps, norm = config.data.dataset, config.attack.eps, config.attack.norm

        def export(network, name: str) -> None:
            export_safetensors(self.path / layout.WEIGHTS_DIR / f"{name}.safetensors", network,
                               dataset=dataset, eps=eps, norm=norm)

        for checkpoint in sorted(self.checkpoints.glob("*.pt")):
            if checkpoint.stem != "averaged":  # written anew below
                export(read_own(checkpoint).build(checkpoint), checkpoint.stem)
        if averaging is not None and averaging.snapshots > 0:
            export(averaging.model, "averaged")
            save_checkpoint(self.checkpoint("averaged"), averaging.model, dataset=dataset,
                            eps=eps, norm=norm)

    def tensorboard(self):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise SpecRobustError("run.tensorboard needs the tensorboard package: pip install "
                                  "tensorboard") from None
        return SummaryWriter(str(self.path / "tensorboard"))


def _is_resume_state(state) -> bool:
    """Whether ``state`` has what a resume reads, of the types it reads them as."""
    return (isinstance(state, dict) and set(state) >= _RESUME_KEYS
            and isinstance(state["config"], dict) and isinstance(state["epoch"], int)
            and not isinstance(state["epoch"], bool) and state["epoch"] >= 0
            and isinstance(state["best"], dict)
            and all(isinstance(v, (int, float, type(None))) for v in state["best"].values())
            and isinstance(state["optimizer"], dict) and isinstance(state["scheduler"], dict)
            and isinstance(state["rng"], dict)
            and isinstance(state["rng"].get("torch"), torch.Tensor)
            and isinstance(state.get("metrics", []), list)
            and all(isinstance(m, dict) for m in state.get("metrics", []))
            and isinstance(state.get("averaged"), (dict, type(None))))


def _copy_best(source: Path, target: Path) -> None:
    """The best checkpoints there are, from one checkpoint folder into another."""
    for name in _BEST:
        if (source / name).is_file():
            storage.write_bytes(target / name, (source / name).read_bytes())


def _differences(before: dict, after: dict) -> list[str]:
    keys = []
    for section in sorted(set(before) | set(after)):
        old, new = before.get(section), after.get(section)
        if isinstance(old, dict) and isinstance(new, dict):
            keys += [f"{section}.{k}" for k in sorted(set(old) | set(new))
                     if old.get(k) != new.get(k) and (section, k) not in _COSMETIC]
        elif old != new:
            keys.append(section)
    return keys
