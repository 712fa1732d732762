"""What several subcommands share: the one-line parser, option types that state their ranges,
and the option groups declared once (the threat model, the model source, the test job)."""

from __future__ import annotations

import argparse
import os

from specrobust.errors import SpecRobustError, quoted


def whole(option: str, low: int | None = None, high: int | None = None):
    """An argparse type: a whole number (in [low, high] where given: options that are not the
    jobs' settings, which the job checks), refused in one line that states the range."""
    def parse(text: str) -> int:
        from specrobust.numbers import check_range, parse_whole

        return int(check_range(parse_whole(text, option), option, low, high))
    return parse


def number(option: str):
    """An argparse type: a finite number (its range is the job's to check)."""
    def parse(text: str) -> float:
        from specrobust.numbers import parse_number

        return parse_number(text, option)
    return parse


def add_threat_model(command, default_text: str) -> None:
    from specrobust.settings import NORMS, Settings

    # Kept as written (8/255); checked by the job (Settings.check), against the data's shape.
    command.add_argument("--eps", help=f"budget such as 8/255 or 0.5 (default: {default_text})")
    command.add_argument("--norm", choices=tuple(NORMS), default=Settings.norm,
                         help=f"threat model: L-inf or L2 ball (default {Settings.norm})")


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one line and exit status 2, like every other error."""

    def error(self, message: str):
        raise SpecRobustError(f"{message} (see `{self.prog} --help`)")

    def _get_value(self, action, arg_string):
        # specrobust's own option types say what is wrong in their error's line; argparse would
        # replace it (the error is a ValueError) with "invalid parse value".
        if not callable(action.type) or isinstance(action.type, type):
            return super()._get_value(action, arg_string)
        try:
            return action.type(arg_string)
        except SpecRobustError:
            raise
        except (TypeError, ValueError):
            name = "/".join(action.option_strings) or action.dest
            self.error(f"argument {name}: invalid value {quoted(arg_string)}")


def seed_list(text: str) -> list[int]:
    from specrobust.numbers import parse_whole
    from specrobust.settings import MAX_SEED

    seeds = [int(parse_whole(part.strip(), "--seeds")) for part in text.split(",")
             if part.strip()]
    if not seeds or any(not 0 <= seed <= MAX_SEED for seed in seeds):
        raise SpecRobustError(f"--seeds must be a comma list of whole numbers in [0, 2**63 - 1], "
                              f"got {text!r}")
    return seeds


def stage_list(known: tuple[str, ...]):
    def parse(text: str) -> tuple[str, ...]:
        if text.strip() == "none":  # the tables only
            return ()
        stages = tuple(part.strip() for part in text.split(",") if part.strip())
        unknown = [s for s in stages if s not in known]
        if unknown or not stages:
            raise SpecRobustError(f"unknown stage {', '.join(unknown) or repr(text)} in "
                                  f"--stages; known: {', '.join(known)}")
        return stages
    return parse


def floats(option: str):
    """An argparse type: comma-separated finite numbers, e.g. 0.4914,0.4822,0.4465."""
    def parse(text: str) -> tuple[float, ...]:
        from specrobust.numbers import parse_number

        return tuple(parse_number(v, option) for v in text.split(","))
    return parse


def add_model_source(command) -> None:
    """The options that say where a model comes from (``specrobust.loading``): declared
    here once for every command that takes a model, read back by :func:`model_source`."""
    from specrobust.files.layout import CHECKPOINTS

    group = command.add_argument_group("model source")
    group.add_argument("--model", help="architecture for a weights file: a zoo name "
                       "(specrobust models), or user code path/to/arch.py:factory or "
                       "package.module:factory (this runs that code)")
    group.add_argument("--model-args", metavar="JSON", help="keyword arguments for a --model "
                       "factory, as a JSON object, e.g. '{\"depth\": 28}'")
    group.add_argument("--dataset", help="the data the model takes (needed unless the source "
                       "says so itself)")
    group.add_argument("--mean", type=floats("--mean"), help="per-channel mean the model "
                       "expects its inputs normalised with, e.g. 0.4914,0.4822,0.4465 "
                       "(default: none, or what the weights file stores)")
    group.add_argument("--std", type=floats("--std"), help="per-channel std, with --mean")
    group.add_argument("--checkpoint", dest="which", default="auto",
                       choices=("auto", *CHECKPOINTS),
                       help="which checkpoint of a run directory (default auto: the averaged "
                       "model's best if the run averages weights, else the best)")


def settings_of(args) -> dict:
    """The shared settings (``specrobust.settings.Settings``) a command's options give."""
    from dataclasses import fields

    from specrobust.settings import Settings

    return {f.name: getattr(args, f.name) for f in fields(Settings) if hasattr(args, f.name)}


def model_source(args, path: str | None):
    from specrobust.loading import ModelSource

    return ModelSource(path=path, model=args.model, model_args=args.model_args,
                       dataset=args.dataset, mean=args.mean, std=args.std, which=args.which)


def add_test_job(command) -> None:
    """What `eval` and `analyze` share (``specrobust.settings``): the model, the test images,
    the threat model, the seed and the machine. Their defaults are the Settings'; their ranges
    are checked once, by the job."""
    from specrobust.settings import PRECISIONS, Settings

    command.add_argument("--n", "--num-images", dest="n", type=whole("--n"),
                         default=Settings.n,
                         help=f"first n test images (default {Settings.n}; spell it "
                         "--num-images under torchrun, whose own options --n would abbreviate)")
    add_threat_model(command, "the training budget, else the dataset's usual one")
    add_model_source(command)
    add_data_root(command)
    command.add_argument("--seed", type=whole("--seed"), default=Settings.seed)
    command.add_argument("--batch-size", type=whole("--batch-size"),
                         default=Settings.batch_size)
    command.add_argument("--device", default=Settings.device,
                         help=f"auto, cpu or cuda (default {Settings.device})")
    command.add_argument("--precision", choices=PRECISIONS, default=Settings.precision,
                         help="arithmetic of the gradient attacks (FGSM, PGD, C&W): bf16 autocast "
                         "is faster where the CPU or GPU has bf16 units and attacks slightly "
                         "differently; outcomes are judged in fp32, and AutoAttack and the "
                         "self-checks always run in fp32 (default fp32)")


def main_process() -> bool:
    """False in the processes of a torchrun job other than the main one (they print nothing)."""
    return os.environ.get("RANK", "0") == "0"




def add_data_root(command) -> None:
    command.add_argument("--data-root", help="directory holding datasets (default: "
                         "$SPECROBUST_DATA, else ~/.cache/specrobust)")
