"""The examples run as a user runs them (`make examples`; CI runs it after `make test`): each
script in a fresh interpreter, the notebook headless through nbclient. They are what the
README's "Python API" section shows."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
pytestmark = pytest.mark.examples


@pytest.mark.parametrize("script", ["sar_training_loop.py", "analyze_my_model.py"])
def test_example_script_runs(script):
    done = subprocess.run([sys.executable, str(EXAMPLES / script)], capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "pgd20" in done.stdout or "PGD-20" in done.stdout


def test_example_notebook_runs_headless():
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    notebook = nbformat.read(EXAMPLES / "analyze_my_model.ipynb", as_version=4)
    nbclient.NotebookClient(notebook, timeout=600, kernel_name="python3",
                            resources={"metadata": {"path": str(EXAMPLES)}}).execute()
    outputs = "".join(output.get("text", "") for cell in notebook.cells
                      for output in cell.get("outputs", []))
    assert "PGD-20" in outputs and "pgd20" in outputs
