"""The one rule for what a command may write, and where.

A command writes only

- into a directory it creates, or one that is empty, or one that is already of its own kind
  (a run directory for ``train``, an analysis directory for ``analyze``), and
- files of its own layout: a file that exists is replaced only when it is of the kind the
  command writes (an evaluation record, a specrobust report), or with ``--force`` where a
  command offers it.

Links: the directories of a path the user typed are resolved once, when the command starts
(:func:`typed`), as a shell would follow them; an output that is itself a link is refused (a
link could point anywhere, and replacing the file it names is how data outside the run gets
destroyed); below, nothing follows a link (``storage``'s descriptors), not even one swapped in
during the run.
Every refusal is one line that says what exists and how to proceed. The kinds are recognised
by their content (a format tag, a marker), never by their names alone.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from specrobust.errors import SpecRobustError
from specrobust.files import layout, storage
from specrobust.files.layout import EVAL_MD_MARKER, REPORT_MARKER
from specrobust.files.storage import make_directories, read_json, read_yaml

__all__ = ["EVAL_MD_MARKER", "REPORT_MARKER"]  # re-exported for the writers


@dataclass(frozen=True)
class Kind:
    """A kind of output: a name for messages ("a run directory") and a test of whether a path
    already is one."""

    name: str
    recognise: Callable[[Path], bool]


def _json_format(path: Path) -> str | None:
    try:
        data = read_json(path)
    except (OSError, ValueError, SpecRobustError):  # unreadable, not JSON, too large or deep
        return None
    return data.get("format") if isinstance(data, dict) else None


def _starts_with(path: Path, marker: str, span: int = 4096) -> bool:
    try:
        with open(path, "rb") as handle:
            return marker.encode() in handle.read(span)
    except OSError:
        return False


def _is_run(path: Path) -> bool:
    """A run has its resume state, or at least the full config training writes first (a
    config.yaml of someone else's project does not have all these sections)."""
    if layout.checkpoint_file(path, "last").is_file():
        return True
    try:
        import yaml

        config = read_yaml(path / layout.CONFIG, "config file")
    except (OSError, ValueError, yaml.YAMLError, SpecRobustError):
        return False
    return isinstance(config, dict) and set(config) >= _RUN_SECTIONS


_RUN_SECTIONS = {"seed", "data", "model", "optim", "attack", "objective", "sar", "averaging",
                 "validation", "run"}


def _is_analysis(path: Path) -> bool:
    return any((_json_format(p) or "").startswith(layout.ANALYSIS_FORMAT)
               for p in path.glob("*.json") if p.is_file())


def _is_study(path: Path) -> bool:
    """Everything in it is what a study writes: its tables (RESULTS.md only beside the
    summary.json it is written with), its report, ``runs/`` holding run directories (or, as the
    demo laid them out before studies, the run directories themselves), ``slurm/`` holding the
    scripts, logs and job ids of ``study --slurm``."""
    entries = {entry.name: entry for entry in path.iterdir() if not layout.is_leftover(entry)}
    if any(entry.is_symlink() for entry in entries.values()):
        return False
    if "summary.json" in entries:
        try:
            summary = read_json(entries["summary.json"], "study summary")
        except (OSError, ValueError, SpecRobustError):
            return False
        if not (isinstance(summary, dict) and {"plan", "methods"} <= set(summary)):
            return False
    elif "RESULTS.md" in entries:
        return False
    for name, entry in entries.items():
        if name in ("summary.json", "RESULTS.md") or (name.startswith(".") and
                                                      name.endswith(".lock")):
            continue
        if name == "report.html":
            if not REPORT.recognise(entry):
                return False
        elif name == "slurm" and entry.is_dir():  # `study --slurm`'s scripts, logs and ids
            if not all(job.is_file() and not job.is_symlink() and
                       job.suffix in (".sh", ".log", ".exit", ".json")
                       for job in entry.iterdir() if not layout.is_leftover(job)):
                return False
        elif name == "runs" and entry.is_dir():
            if not all(run.is_dir() and not run.is_symlink() and
                       (_is_run(run) or _holds_nothing(run)) for run in entry.iterdir()):
                return False
        elif not (entry.is_dir() and _is_run(entry)):
            return False
    return True


def _holds_nothing(path: Path) -> bool:
    """Empty but for what killed writes left (the next command that owns it removes them)."""
    return all(layout.is_leftover(entry) for entry in path.iterdir())


RUN = Kind("a run directory", _is_run)
ANALYSIS = Kind("an analysis directory", _is_analysis)
EVAL = Kind("an evaluation record (eval.json)",
            lambda p: _json_format(p) == layout.EVAL_FORMAT)
EVAL_MD = Kind("an evaluation table (eval.md)", lambda p: _starts_with(p, EVAL_MD_MARKER, 64))
REPORT = Kind("a specrobust report", lambda p: _starts_with(p, REPORT_MARKER))
STUDY = Kind("a study's directory (runs/, slurm/, RESULTS.md, summary.json, report.html)",
             _is_study)


def typed(path: str | os.PathLike) -> Path:
    """A path as the user typed it, resolved once: the directories in it lead where they lead
    now (as a shell would follow them), and everything written below it later is reached from
    there without following any link (``storage.anchor``). Returns the path unchanged, so
    records and messages show it as the user wrote it."""
    parent = Path(os.path.abspath(path)).parent
    storage.anchor(parent, Path(os.path.realpath(parent)))
    return Path(path)


def _refuse_link(path: Path, role: str) -> None:
    if path.is_symlink():
        raise SpecRobustError(f"{role} {path} is a symbolic link; specrobust does not write "
                              "through links: name the real path, or another one")


def output_file(path: str | os.PathLike, kind: Kind, *, force: bool | None = None,
                how: str = "choose another --out") -> Path:
    """``path`` checked as an output file of ``kind``: absent, or already of that kind, or any
    regular file when ``force`` is true. ``force`` None: the command has no --force to offer.
    Creates nothing; returns the path resolved once (:func:`typed`), the one to write to."""
    path = typed(path)
    _refuse_link(path, "output")
    if path.parent.exists() and not path.parent.is_dir():
        raise SpecRobustError(f"cannot write {path}: {path.parent} is a file, not a directory")
    if path.is_dir():
        raise SpecRobustError(f"output {path} is a directory; name a file inside it instead")
    if not path.exists():
        return path
    if not stat.S_ISREG(path.lstat().st_mode):
        raise SpecRobustError(f"output {path} exists and is not a regular file; {how}")
    if not force and not kind.recognise(path):
        hint = how if force is None else f"{how}, or add --force to replace it"
        raise SpecRobustError(f"{path} exists and is not {kind.name}; {hint}")
    return path


def check_directory(path: str | os.PathLike, kind: Kind, *,
                    how: str = "choose another --out") -> Path:
    """``path`` checked as an output directory of ``kind``: absent, empty or of that kind;
    refused when it is a file, a link, or a non-empty directory of another kind. Creates
    nothing; returns the path resolved once (:func:`typed`), the one to write in."""
    path = typed(path)
    _refuse_link(path, "output directory")
    if path.exists() and not path.is_dir():
        raise SpecRobustError(f"output directory {path} is a file; {how}")
    if path.is_dir() and not _holds_nothing(path) and not kind.recognise(path):
        raise SpecRobustError(f"{path} holds files that are not {kind.name}; {how} (or empty "
                              "that directory)")
    return path


@contextlib.contextmanager
def output_directory(path: str | os.PathLike, kind: Kind, *,
                     how: str = "choose another --out") -> Iterator[Path]:
    """:func:`check_directory`, then create the directory if it is absent, for the length of a
    ``with`` block; a directory created here and still empty when the block fails is removed
    again, so a failed command leaves nothing behind."""
    path = check_directory(path, kind, how=how)
    created = not path.exists()
    make_directories(path)
    try:
        yield path
    except BaseException:
        if created and not any(path.iterdir()):
            path.rmdir()
        raise


def regular_file_inside(root: Path, relative: str) -> Path | None:
    """``root/relative`` if it is a regular file reached without any symbolic link below
    ``root``: what a report may embed. None otherwise."""
    path = root
    for part in Path(relative).parts:
        path = path / part
        try:
            mode = path.lstat().st_mode
        except OSError:
            return None
        if stat.S_ISLNK(mode):
            return None
    return path if stat.S_ISREG(mode) else None
