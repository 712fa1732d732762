"""A training run's directory: what it holds, read back (its writing and resuming:
``specrobust.training.resume``).

    RUN/config.yaml                 the full configuration (defaults filled in)
    RUN/metrics.jsonl               one JSON line per epoch (rewritten whole, atomically)
    RUN/checkpoints/last.pt         full resume state: weights, optimiser, scheduler, averaged
                                    model, epoch, best scores, RNG state, config, metrics
    RUN/checkpoints/best.pt         raw model with the best validation robust accuracy
    RUN/checkpoints/best_averaged.pt  averaged model with the best validation robust accuracy
    RUN/checkpoints/averaged.pt     the averaged model at the end
    RUN/checkpoints/epoch<K>/       last.pt and best*.pt as they were after epoch K, for each K
                                    of run.snapshot_epochs (see ``RunWriter._branch_state``)
    RUN/branched_from.json          where a branched run took its first epochs from
    RUN/eval.json, eval-<which>.json        evaluation records (``specrobust.evaluation.record``)
                                    of the default checkpoint, or of the one named <which>
    RUN/analysis/, analysis-<which>/        analysis directories, named the same way
    RUN/weights/*.safetensors       the same weights, code-free, written at the end
    RUN/curves.png                  training curves (updated every epoch)

Each line of metrics.jsonl carries ``best_epoch`` (and, once an averaged model has been
validated, ``best_epoch_averaged``): the epoch whose weights best.pt (best_averaged.pt) holds
so far.
"""

from __future__ import annotations

from pathlib import Path

from specrobust.config import Config
from specrobust.errors import SpecRobustError
from specrobust.files import layout
from specrobust.files.storage import MAX_JSON_BYTES, loads_json, read_regular


class RunDir:
    def __init__(self, path: str | Path):
        self.path = path = Path(path)
        self.checkpoints = path / layout.CHECKPOINT_DIR
        self.last = layout.checkpoint_file(path, "last")
        self.metrics_file = path / layout.METRICS
        self.config_file = path / layout.CONFIG
        self.metrics: list[dict] = []

    # ---- layout (specrobust.files.layout names every file) ------------------------------------
    # "auto" is the run's default checkpoint (``layout.find_checkpoint``); its results have
    # unsuffixed names.

    def checkpoint(self, which: str) -> Path:
        return layout.checkpoint_file(self.path, which)

    def eval_path(self, which: str = "auto") -> Path:
        return layout.eval_record(self.path, which)

    def analysis_dir(self, which: str = "auto") -> Path:
        return layout.analysis_dir(self.path, which)

    def snapshot_dir(self, epoch: int) -> Path:
        return self.checkpoints / f"epoch{epoch}"

    def has_snapshot(self, epoch: int) -> bool:
        """Whether the whole state after ``epoch`` was kept, for another run to branch from."""
        return (self.snapshot_dir(epoch) / "last.pt").is_file()

    def results(self) -> list[tuple[str, str]]:
        """(which, label suffix) of every checkpoint with an evaluation or analysis here, in
        name order: ``("auto", "")``, ``("best", " (best)")`` ..."""
        found = {layout.which_of(path.stem, "eval") for path in self.path.glob("eval*.json")}
        found |= {layout.which_of(path.name, "analysis") for path in self.path.glob("analysis*")
                  if path.is_dir() and not path.is_symlink()}
        named = {w for w in found if w is not None}
        return [(w, "" if w == "auto" else f" ({w})") for w in sorted(named, key=_result_order)]

    def is_complete(self, config: Config) -> bool:
        """Trained to the end and finished: a run that averages weights is finished once
        ``finish`` wrote the averaged model, its last write; a run killed before that is not
        (resuming it only finishes it). A run without averaging is taken as finished with its
        last epoch: its safetensors exports are copies, and the committed replication runs
        keep none."""
        return self.finished_epochs() >= config.optim.epochs and (
            config.averaging.kind == "none" or self.checkpoint("averaged").is_file())

    def finished_epochs(self) -> int:
        return len(self.read_metrics())

    def read_metrics(self) -> list[dict]:
        if not self.metrics_file.is_file():
            return []
        text = read_regular(self.metrics_file, "metrics file", MAX_JSON_BYTES)
        try:
            epochs = [loads_json(line, f"{self.metrics_file}")
                      for line in text.decode("utf-8").splitlines() if line.strip()]
        except ValueError:
            raise SpecRobustError(f"{self.metrics_file} is damaged (a line is not JSON); it is "
                                  "rewritten whole by training, so delete the run or restore "
                                  "the file") from None
        if not all(isinstance(m, dict) and isinstance(m.get("epoch"), int) for m in epochs):
            raise SpecRobustError(f"{self.metrics_file} is damaged (a line is not an epoch's "
                                  "metrics)")
        return epochs

    def checkpoint_epoch(self, which: str) -> int | None:
        """The epoch (1-based, as in metrics.jsonl) whose weights checkpoint ``which`` holds:
        best checkpoints are chosen by validation robust accuracy, so this may be an early one
        (for an AT+SAR run even one from before SAR started)."""
        epochs = self.read_metrics()
        if not epochs:
            return None
        if which in ("last", "averaged"):
            return epochs[-1]["epoch"]
        return epochs[-1].get({"best": "best_epoch",
                               "best_averaged": "best_epoch_averaged"}[which])

    def sar_first_epoch(self) -> int | None:
        """The first epoch (1-based) trained with SAR, or None for a run without it."""
        if not self.config_file.is_file():
            return None
        from specrobust.config import load_config

        config = load_config(self.config_file)  # sar_start knows that none means the first decay
        return config.sar_start + 1 if config.sar.enabled else None

def _result_order(which: str) -> tuple[int, str]:
    return (0 if which == "auto" else 1, which)


def method_name(config: Config) -> str:
    name = config.objective.name
    parts = [{"pgd_at": "PGD-AT", "natural": "natural"}.get(name, name.upper())]
    if config.awp.enabled:
        parts.append("AWP")
    if config.sar.enabled:
        parts.append("SAR" if config.sar.clean_bn == "update" else "SAR (clean pass, BN frozen)")
    if config.averaging.kind != "none":
        parts.append(config.averaging.kind.upper())
    return "+".join(parts)


