"""Where specrobust puts things, and how it tags what it writes: the one owner of file names.

A run directory::

    RUN/config.yaml, metrics.jsonl, curves.png, branched_from.json
    RUN/checkpoints/{best_averaged,best,averaged,last}.pt, checkpoints/epoch<K>/
    RUN/weights/*.safetensors
    RUN/eval.json (eval.md), RUN/eval-<which>.json      evaluation records
    RUN/analysis/, RUN/analysis-<which>/               analysis directories
    RUN/report.html

Outside a run, results go beside the model they describe: ``NAME-eval.json`` and
``NAME-analysis/`` next to ``NAME.pt`` (:func:`beside`).

Every record carries a ``format`` tag from here, so a later command recognises its own files by
their content. A temporary file of an atomic write is named with :data:`TEMPORARY_MARK`, so the
next command can tell a leftover of a killed process from a user's file and remove it.

Imports nothing heavy: the command line's ``--help`` reads the checkpoint names from here.
"""

from __future__ import annotations

from pathlib import Path

# ---- format tags -------------------------------------------------------------------------------
CHECKPOINT_FORMAT = "specrobust-checkpoint"
EVAL_FORMAT = "specrobust-eval"
ANALYSIS_FORMAT = "specrobust-analysis"
ANALYSIS_SUMMARY_FORMAT = ANALYSIS_FORMAT + "-summary"
# The first bytes of every HTML report, so a later report may replace it and nothing else.
REPORT_MARKER = '<meta name="generator" content="specrobust report">'
# The first line of every eval.md, for the same reason.
EVAL_MD_MARKER = "<!-- specrobust eval -->"

# ---- a run directory ---------------------------------------------------------------------------
CONFIG = "config.yaml"
METRICS = "metrics.jsonl"
CURVES = "curves.png"
BRANCHED_FROM = "branched_from.json"
CHECKPOINT_DIR = "checkpoints"
WEIGHTS_DIR = "weights"
REPORT = "report.html"
# A run directory's checkpoints, in the order ``auto`` tries them: the averaged model's best
# checkpoint when the run averages weights, else the raw best, else the averaged, else the last.
CHECKPOINTS = ("best_averaged", "best", "averaged", "last")
# The order tables list them in (training order).
CHECKPOINTS_IN_TRAINING_ORDER = ("last", "best", "best_averaged", "averaged")

# ---- temporary files of atomic writes ----------------------------------------------------------
TEMPORARY_MARK = ".specrobust-partial-"


def temporary_prefix(target: Path) -> str:
    """The name a temporary file for ``target`` starts with (``storage`` adds random letters)."""
    return f".{target.name}{TEMPORARY_MARK}"


def is_leftover(path: Path) -> bool:
    """Whether ``path`` is the temporary file of an atomic write that never finished."""
    return path.name.startswith(".") and TEMPORARY_MARK in path.name


def has_leftovers(directory: Path, targets: tuple[str, ...]) -> bool:
    """Whether a killed write of one of ``targets`` left its temporary file in ``directory``."""
    return bool(_leftovers(directory, targets))


def remove_leftovers(directory: Path, targets: tuple[str, ...] | None = None) -> None:
    """Remove what killed writes left in ``directory``: the temporary files of ``targets``
    (file names; None: of any target). Regular files only, never links. Call it holding the
    lock of whatever writes those targets, so no live write loses its temporary file."""
    for entry in _leftovers(directory, targets):
        if not entry.is_symlink() and entry.is_file():
            entry.unlink(missing_ok=True)


def _leftovers(directory: Path, targets: tuple[str, ...] | None) -> list[Path]:
    """The temporary files in ``directory`` of killed writes of ``targets`` (None: any)."""
    try:
        entries = list(directory.iterdir())
    except OSError:
        return []
    return [entry for entry in entries if is_leftover(entry) and (
        targets is None or entry.name[1:entry.name.index(TEMPORARY_MARK)] in targets)]


# ---- names of results --------------------------------------------------------------------------


def checkpoint_file(run: Path, which: str) -> Path:
    return run / CHECKPOINT_DIR / f"{which}.pt"


def eval_record(run: Path, which: str = "auto") -> Path:
    """The evaluation record of a run's checkpoint ``which`` (``auto``: the default one)."""
    return run / ("eval.json" if which == "auto" else f"eval-{which}.json")


def analysis_dir(run: Path, which: str = "auto") -> Path:
    return run / ("analysis" if which == "auto" else f"analysis-{which}")


def table_beside(record: Path) -> Path:
    """The Markdown table written beside an evaluation record."""
    return record.with_suffix(".md")


def record_beside(table: Path) -> Path:
    """The evaluation record a table was written beside."""
    return table.with_suffix(".json")


def beside(home: Path, what: str) -> Path:
    """A result about the model at ``home`` outside any run: ``NAME-eval.json`` or
    ``NAME-analysis`` next to ``NAME.pt``."""
    return home.with_name(f"{home.stem}-{what}")


def which_of(name: str, kind: str) -> str | None:
    """The checkpoint a result file or directory of a run is named after (``eval-best`` ->
    ``best``), or None where ``name`` is not such a result."""
    if name == kind:
        return "auto"
    return name[len(kind) + 1:] if name.startswith(kind + "-") else None


def find_checkpoint(run: Path, which: str = "auto") -> Path:
    """The checkpoint file of a run directory: ``which`` is one of CHECKPOINTS or ``auto``
    (the first of CHECKPOINTS that exists)."""
    from specrobust.errors import SpecRobustError

    if which != "auto" and which not in CHECKPOINTS:
        raise SpecRobustError(f"unknown checkpoint {which!r}; choose auto or one of "
                              f"{', '.join(CHECKPOINTS)}")
    directory = run / CHECKPOINT_DIR
    if not directory.is_dir():
        raise SpecRobustError(f"{run} is a directory but not a run directory (it has no "
                              f"{CHECKPOINT_DIR}/)")
    for name in CHECKPOINTS if which == "auto" else (which,):
        candidate = checkpoint_file(run, name)
        if candidate.is_file():
            return candidate
    present = ", ".join(sorted(p.stem for p in directory.glob("*.pt"))) or "none"
    raise SpecRobustError(f"{run} has no {which} checkpoint (present: {present})")
