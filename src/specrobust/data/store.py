"""Where dataset files live, how they are checked, and how they are fetched.

Search order for the data root: ``--data-root``, else ``$SPECROBUST_DATA``, else
``~/.cache/specrobust``. Inside it each dataset sits in torchvision's layout (see the registry);
Fashion-MNIST is also found in Debian's ``/usr/share/datasets/fashion-mnist``.
"""

from __future__ import annotations

import hashlib
import os
import tarfile
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from specrobust.data import formats
from specrobust.data.registry import DatasetInfo, Download, Layout
from specrobust.errors import SpecRobustError
from specrobust.files import storage

ENV_DATA_ROOT = "SPECROBUST_DATA"


def resolve_data_root(data_root: str | os.PathLike | None = None) -> Path:
    """The data root: ``data_root``, else ``$SPECROBUST_DATA``, else ``~/.cache/specrobust``;
    a place the user names, so links on the way to it are followed (downloads below it then
    follow none: ``storage.anchored``)."""
    if data_root:
        return storage.anchored(Path(data_root).expanduser())
    if os.environ.get(ENV_DATA_ROOT):
        return storage.anchored(Path(os.environ[ENV_DATA_ROOT]).expanduser())
    return storage.anchored(Path.home() / ".cache" / "specrobust")


def _file_path(directory: Path, layout: Layout, name: str) -> Path | None:
    path = directory / name
    return formats.existing_variant(path) if layout.gzip_ok else (path if path.is_file() else None)


def locate(info: DatasetInfo, data_root: str | Path | None) -> tuple[Layout, Path]:
    """The layout of ``info``'s files under the data root, with its directory; a one-line
    error saying where they were looked for and how to get them when they are not there."""
    root = resolve_data_root(data_root)
    found = find_layout(info, root)
    if found is None:
        raise SpecRobustError(missing_data_message(info, root))
    return found


def find_layout(info: DatasetInfo, root: Path) -> tuple[Layout, Path] | None:
    """The first layout whose files are all present, with its directory; None if none is."""
    for layout in info.layouts:
        directory = root / layout.directory  # an absolute layout directory ignores the root
        if all(_file_path(directory, layout, spec.name) for spec in layout.files):
            return layout, directory
    return None


def missing_data_message(info: DatasetInfo, root: Path) -> str:
    """One line: what is missing, where to put it, how to get it."""
    layout = info.layouts[0]
    expected = ", ".join(spec.name for spec in layout.files)
    how = f"`specrobust data fetch {info.name}` downloads them when the network allows"
    notes = f"; {info.notes}" if info.notes else ""
    return (
        f"{info.title} not found: expected {expected} in {root / layout.directory} "
        f"(set --data-root or ${ENV_DATA_ROOT}); {how}{notes}"
    )


def md5_of(path: Path) -> str:
    """MD5 of the file's content; for ``.gz`` files, of the decompressed content."""
    digest = hashlib.md5(usedforsecurity=False)
    digest.update(formats.read_bytes(path))
    return digest.hexdigest()


def _md5_raw(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass
class FileCheck:
    name: str
    path: Path
    status: str  # "ok", "mismatch" or "no checksum"
    md5: str | None = None


@dataclass
class VerifyReport:
    dataset: str
    directory: Path
    layout: str
    files: list[FileCheck] = field(default_factory=list)
    train: int = 0
    test: int = 0
    expected_train: int = 0
    expected_test: int = 0

    @property
    def ok(self) -> bool:
        return (
            all(check.status != "mismatch" for check in self.files)
            and self.train == self.expected_train
            and self.test == self.expected_test
        )


def check_files(layout: Layout, directory: Path) -> list[FileCheck]:
    checks = []
    for spec in layout.files:
        path = _file_path(directory, layout, spec.name)
        if spec.md5 is None:
            checks.append(FileCheck(spec.name, path, "no checksum"))
            continue
        actual = md5_of(path)
        status = "ok" if actual == spec.md5 else "mismatch"
        checks.append(FileCheck(spec.name, path, status, actual))
    return checks


# ---------------------------------------------------------------------------------------------
# Fetching
# ---------------------------------------------------------------------------------------------


class _ChecksumMismatch(Exception):
    """A downloaded file is not the official one (its temporary copy is removed)."""


def _download(download: Download, target: Path) -> None:
    """Fetch one file to ``target`` (atomically), trying each URL, checking the MD5."""
    failures = []
    for url in download.urls:
        try:
            with storage.replacing(target) as out:
                with urllib.request.urlopen(url, timeout=30) as response:
                    digest = hashlib.md5(usedforsecurity=False)
                    for block in iter(lambda r=response: r.read(1 << 20), b""):
                        digest.update(block)
                        out.write(block)
                if digest.hexdigest() != download.md5:
                    raise _ChecksumMismatch(f"{url}: MD5 {digest.hexdigest()}, expected "
                                            f"{download.md5}")
            return
        except _ChecksumMismatch as mismatch:
            failures.append(str(mismatch))
        except (urllib.error.URLError, OSError, ValueError) as error:
            failures.append(f"{url}: {getattr(error, 'reason', error)}")
    raise SpecRobustError(f"could not download {download.filename} ({'; '.join(failures)})")


def _safe_member(root: Path, name: str) -> Path:
    destination = (root / name).resolve()
    if not destination.is_relative_to(root.resolve()):
        raise SpecRobustError(f"archive member {name!r} would be written outside {root}; refused")
    return destination


def _unpack(archive: Path, kind: str, root: Path) -> None:
    try:
        if kind == "tar":
            with tarfile.open(archive) as tar:
                for member in tar.getmembers():
                    _safe_member(root, member.name)
                    if not (member.isfile() or member.isdir()):
                        raise SpecRobustError(f"{archive} holds a link or device {member.name!r}")
                # Members were checked above; the "data" filter (Python >= 3.10.12) checks again.
                extra = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
                tar.extractall(root, **extra)
        elif kind == "zip":
            with zipfile.ZipFile(archive) as bundle:
                for name in bundle.namelist():
                    _safe_member(root, name)
                bundle.extractall(root)
    except (tarfile.TarError, zipfile.BadZipFile, OSError, EOFError) as error:
        raise SpecRobustError(f"cannot unpack {archive}: truncated or corrupt ({error})") from None


def fetch(info: DatasetInfo, root: Path) -> tuple[Layout, Path]:
    """Make ``info``'s files present under ``root``: already there, or downloaded and checked.

    Offline, raises one error listing the files expected and where to put them.
    """
    if info.generated:
        raise SpecRobustError(f"{info.name} is generated on the fly; there is nothing to fetch")
    found = find_layout(info, root)
    if found:
        return found
    try:
        for download in info.downloads:
            target = root / download.directory / download.filename
            _download(download, target)
            if download.unpack:
                _unpack(target, download.unpack, root)
                target.unlink()
    except SpecRobustError as error:
        # Not the usual hint (which says to run this very command): where to get the files.
        urls = " and ".join(d.urls[0] for d in info.downloads)
        layout = info.layouts[0]
        raise SpecRobustError(
            f"{info.title} could not be downloaded ({error}); fetch {urls} on a machine with "
            f"network access and unpack into {root} (expected: "
            f"{', '.join(spec.name for spec in layout.files)} in {root / layout.directory}), "
            f"or set --data-root or ${ENV_DATA_ROOT} to where the files are") from None
    found = find_layout(info, root)
    if not found:
        raise SpecRobustError(f"downloaded {info.title}, but {missing_data_message(info, root)}")
    return found
