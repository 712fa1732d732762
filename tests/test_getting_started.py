"""The getting-started page, run as written in an empty directory: every command succeeds, and
the evaluation the page prints is what runs (``benchmarks/getting_started.py`` does the work and
times it). Slow: the quick demo and a ResNet-18 evaluation, about four minutes on 2 cores."""

import io
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests_support import script

ROOT = Path(__file__).resolve().parents[1]
GET_CIFAR10 = ROOT.parent / "shared" / "tools" / "get-cifar10"
CACHE = Path(os.environ.get("SPECROBUST_TEST_CACHE", Path.home() / ".cache" / "specrobust-tests"))

pytestmark = pytest.mark.slow


def _script():
    return script("benchmarks/getting_started.py")


def _rows(text: str) -> dict[str, str]:
    """attack -> correct / n, from a printed evaluation table."""
    return {cells[1].strip(" *"): cells[4].strip()
            for line in text.splitlines() if line.startswith("| ")
            and len(cells := line.split("|")) > 5 and "/" in cells[4]}


def test_every_command_on_the_page_runs_as_written(tmp_path):
    if not Path("/usr/share/datasets/fashion-mnist").is_dir() or not GET_CIFAR10.is_file():
        pytest.skip("needs Debian's dataset-fashion-mnist and the shared get-cifar10 tool "
                    "(the page's `data fetch` downloads them where there is network)")
    fetched = subprocess.run(["bash", str(GET_CIFAR10), str(CACHE)], capture_output=True,
                             text=True, timeout=600)
    assert fetched.returncode == 0, fetched.stderr[-500:]
    script = _script()
    assert [kind for kind, _ in script.steps()].count("shell") >= 8
    env = {**os.environ, "SPECROBUST_DATA": str(CACHE),
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    log = io.StringIO()
    timings = script.run(tmp_path, env, out=log)
    assert len(timings) == len(script.steps()) and all(rc == 0 for _, _, rc in timings), \
        log.getvalue()
    # What the page shows of the evaluation is what ran (clean exactly; an attack may move by
    # an image or two between CPUs).
    page = script.PAGE.read_text()
    shown = _rows(page[page.index("resnet18 from autoattack-natural-resnet18"):])
    ran = _rows((tmp_path / "autoattack-natural-resnet18-eval.md").read_text())
    assert shown["clean"] == ran["clean"]
    for attack in ("fgsm", "pgd20"):
        assert abs(int(shown[attack].split("/")[0]) - int(ran[attack].split("/")[0])) <= 2
    assert re.search(r"Quick smoke run", (tmp_path / "runs/demo-quick/RESULTS.md").read_text())
    assert (tmp_path / "report.html").is_file() and (tmp_path / "runs/mine/eval.json").is_file()
    assert not list(tmp_path.glob(".*.lock"))  # nothing hidden left in the user's directory
