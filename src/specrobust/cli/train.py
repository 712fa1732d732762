"""`specrobust train RECIPE`: a recipe trained into a run directory (resumable)."""

from __future__ import annotations

from specrobust.cli.options import whole
from specrobust.errors import SpecRobustError


def add(commands) -> None:
    command = commands.add_parser(
        "train", help="train a recipe (natural, PGD-AT, TRADES, MART; SAR, AWP, SWA/EMA)",
        description="Train from a recipe: a shipped one's name (`specrobust recipes`) or a YAML "
        "file (whose `base:` may name a shipped recipe). The run directory receives "
        "config.yaml, metrics.jsonl, checkpoints/, weights/*.safetensors and curves.png.")
    command.add_argument("config", help="a recipe: a shipped name, e.g. fmnist_cnn_at_sar_wa, or "
                         "a YAML file")
    command.add_argument("--set", dest="overrides", action="append", default=[],
                         metavar="KEY=VALUE", help="override a setting, e.g. optim.epochs=2 "
                         "(repeatable)")
    command.add_argument("--out", help="run directory (default runs/<recipe name>)")
    command.add_argument("--resume", action="store_true",
                         help="continue the run in --out from its last checkpoint")
    command.add_argument("--force", action="store_true",
                         help="resume even though the config differs from the run's")
    command.add_argument("--branch-from", metavar="RUN",
                         help="start from RUN's state after the epoch SAR starts at (or "
                         "--branch-epoch): RUN must have trained the same recipe without SAR "
                         "that far, with run.snapshot_epochs naming that epoch")
    command.add_argument("--branch-epoch", type=whole("--branch-epoch", 1), metavar="K",
                         help="with --branch-from: the epoch to branch after")
    command.set_defaults(handler=run)


def run(args) -> int:
    from pathlib import Path

    from specrobust.config import load_config
    from specrobust.training.loop import train

    config = load_config(args.config, args.overrides)
    out = Path(args.out) if args.out else Path("runs") / Path(args.config).stem
    branch = None
    if args.branch_from:
        epoch = args.branch_epoch if args.branch_epoch is not None else \
            config.sar_start if config.sar.enabled else None
        if epoch is None:
            raise SpecRobustError("--branch-from needs --branch-epoch when SAR is off")
        branch = (args.branch_from, epoch)
    metrics = train(config, out, resume=args.resume, force=args.force, branch=branch)
    print(f"finished {config.optim.epochs} epochs in {out}; last epoch: "
          + ", ".join(f"{k} {v:.4f}" for k, v in metrics.items()
                      if isinstance(v, float) and k.startswith("val_")))
    print(f"evaluate it with: specrobust eval {out}")
    return 0
