"""RobustBench's ImageNet evaluation subset: the 5,000 validation images its leaderboard is
measured on (``imagenet:subset=robustbench``), in its order, so that the first n images are the
ones RobustBench evaluates with ``n_examples=n``.

The list is RobustBench's own file, ``robustbench/helper_files/imagenet_test_image_ids.txt``
(Croce et al., "RobustBench: a standardized adversarial robustness benchmark", NeurIPS 2021
Datasets and Benchmarks; https://github.com/RobustBench/robustbench), one ``WNID/FILE`` line
per image. It is read from the installed ``robustbench`` distribution's files, without importing
the package (which needs torchvision), or from the copy ``specrobust data fetch
imagenet:subset=robustbench`` places in the data root, taken from RobustBench's wheel on the
package index (that package alone, no dependencies). Either way it must be the file of
RobustBench 1.1.1, checked by its SHA-256: another list would be another benchmark.
"""

from __future__ import annotations

import hashlib
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from specrobust.errors import SpecRobustError

VERSION = "1.1.1"
MEMBER = "robustbench/helper_files/imagenet_test_image_ids.txt"
SHA256 = "d4121626d07722a0126c35b1563042e46a546f1a05ce705f2cdc635896d58574"
IMAGES = 5000
COPY = Path("imagenet") / "robustbench_imagenet_test_image_ids.txt"  # under the data root
_LINE = re.compile(r"(n\d{8})/(ILSVRC2012_val_\d{8}\.JPEG)")


def image_ids(data_root: Path) -> list[tuple[str, str]]:
    """RobustBench's subset as (WordNet id, file name) pairs, in its order."""
    for text in (_installed(), _copy(data_root)):
        if text is not None:
            return _parse(text)
    raise SpecRobustError(
        "imagenet:subset=robustbench needs RobustBench's list of its 5,000 images: install "
        f"robustbench (pip install --no-deps robustbench=={VERSION}), or run `specrobust data "
        f"fetch imagenet:subset=robustbench` to copy it into {data_root / COPY}")


def _installed() -> bytes | None:
    from importlib import metadata

    try:
        distribution = metadata.distribution("robustbench")
    except metadata.PackageNotFoundError:
        return None
    path = Path(str(distribution.locate_file(MEMBER)))
    return path.read_bytes() if path.is_file() else None


def _copy(data_root: Path) -> bytes | None:
    from specrobust.files.storage import read_regular

    path = data_root / COPY
    return read_regular(path, "RobustBench's image list", 1 << 20) if path.is_file() else None


def _parse(text: bytes) -> list[tuple[str, str]]:
    digest = hashlib.sha256(text).hexdigest()
    if digest != SHA256:
        raise SpecRobustError(
            f"RobustBench's image list found here (SHA-256 {digest[:12]}...) is not the one of "
            f"RobustBench {VERSION} that specrobust knows; install that version, or fetch it "
            "again with `specrobust data fetch imagenet:subset=robustbench`")
    pairs = [_LINE.fullmatch(line) for line in text.decode("ascii").split()]
    return [(match[1], match[2]) for match in pairs if match]


def fetch(data_root: Path) -> Path:
    """RobustBench's list in the data root: from the installed distribution, else from its
    wheel (downloaded alone by pip), checked by its SHA-256."""
    from specrobust.files import storage
    from specrobust.files.ziparchive import DEFLATED, STORED, Archive

    target = data_root / COPY
    text = _installed()
    if text is None:
        with tempfile.TemporaryDirectory() as scratch:
            done = subprocess.run(
                [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:",
                 "--dest", scratch, f"robustbench=={VERSION}"], capture_output=True, text=True)
            wheels = list(Path(scratch).glob("robustbench-*.whl"))
            if done.returncode != 0 or not wheels:
                reason = (done.stderr.strip().splitlines() or ["no wheel"])[-1]
                raise SpecRobustError(f"could not download robustbench=={VERSION} ({reason}); "
                                      f"put {MEMBER} from its wheel at {target}") from None
            wheel = Archive.of_bytes(wheels[0].read_bytes(), str(wheels[0]),
                                     methods=(STORED, DEFLATED), max_size=64 << 20)
            if MEMBER not in wheel.by_name:
                raise SpecRobustError(f"{wheels[0].name} holds no {MEMBER}")
            text = wheel.read(MEMBER)
    _parse(text)  # the right list, before it is written
    storage.make_directories(target.parent)
    storage.write_bytes(target, text)
    return target
