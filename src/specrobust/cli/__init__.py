"""The ``specrobust`` command: one module per subcommand, each holding its parser (``add``) and
its handler; the options several share are declared once (``cli.options``).

Every user mistake, and every fault of the environment (a full or read-only disk, a path of the
wrong kind, a closed pipe, exhausted memory), ends as one line on stderr and exit status 2;
``--debug`` shows the traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from specrobust.cli import analyze, data, models, recipes, report, study, train
from specrobust.cli import eval as evaluate
from specrobust.cli.options import OneLineParser
from specrobust.errors import SpecRobustError

# In the order `specrobust --help` lists them.
SUBCOMMANDS = (data, recipes, models, train, evaluate, analyze, report, study)


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="specrobust",
        description="Understand adversarial robustness through the frequency spectrum; improve "
        "it with Spectral Alignment Regularization and weight averaging.",
    )
    from specrobust import __version__

    parser.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    parser.add_argument("--version", action="version", version=f"specrobust {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=OneLineParser)
    for subcommand in SUBCOMMANDS:
        subcommand.add(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    try:
        if any("\x00" in arg for arg in argv):  # no shell passes one; paths cannot hold one
            raise SpecRobustError("an argument contains a NUL character")
        args = build_parser().parse_args(argv)
        code = args.handler(args)
        sys.stdout.flush()  # here, so that a closed pipe is reported like any other fault
        return code
    except KeyboardInterrupt:
        print("specrobust: interrupted", file=sys.stderr)
        return 130
    except Exception as error:  # noqa: BLE001 - sorted below: user errors, faults, bugs
        from specrobust.errors import environment_error

        user_error = error if isinstance(error, SpecRobustError) else environment_error(error)
        if user_error is None or debug:
            raise
        if isinstance(error, BrokenPipeError):
            _silence_stdout()
        print(f"specrobust: error: {' '.join(str(user_error).split())}", file=sys.stderr)
        return SpecRobustError.exit_code
    finally:
        _leave_process_group()


def _leave_process_group() -> None:
    """Under torchrun: leave the process group before exiting. Left to the interpreter's exit,
    gloo's threads are torn down while still running, and a process that finished first can
    abort ("terminate called without an active exception")."""
    distributed = sys.modules.get("torch.distributed")
    if distributed is not None and distributed.is_available() and distributed.is_initialized():
        distributed.destroy_process_group()


def _silence_stdout() -> None:
    """After a closed pipe, point stdout at /dev/null so the interpreter's final flush does not
    fail a second time."""
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
