"""Run the getting-started page's commands as written, in an empty directory, and time each.

    python benchmarks/getting_started.py [--data-root DIR] [--keep DIR]

Every ``$ `` line of the page's ``console`` blocks runs in a shell, in order, and every
``python`` block with the Python in PATH; the page's quoted times come from this script's
output (`benchmarks/RESULTS.md` says on which machine). Datasets are looked for as the page
says (``$SPECROBUST_DATA``, or ``--data-root``); offline, put CIFAR-10 there first
(``../shared/tools/get-cifar10 DIR`` on the project's machines). Exit status 1 when a command
fails. ``tests/test_getting_started.py`` runs it the same way.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PAGE = Path(__file__).parents[1] / "docs" / "getting-started.md"
_BLOCK = re.compile(r"^```(console|python)\n(.*?)^```", re.S | re.M)


def steps(page: Path = PAGE) -> list[tuple[str, str]]:
    """The page's runnable steps in order: ("shell", command) per ``$`` line (with the lines
    it continues with a backslash), ("python", source) per Python block."""
    found = []
    for kind, body in _BLOCK.findall(page.read_text()):
        if kind == "python":
            found.append(("python", body))
            continue
        command = None  # a command continued over lines ending in a backslash
        for line in body.splitlines():
            if command is not None:
                command += "\n" + line
            elif line.startswith("$ "):
                command = line[2:]
            if command is not None and not line.endswith("\\"):
                found.append(("shell", command))
                command = None
    return found


def run(directory: Path, env: dict[str, str], out=sys.stdout) -> list[tuple[str, float, int]]:
    """Each step in ``directory``: (the step's first line, seconds, exit status); stops at the
    first failure."""
    timings = []
    for kind, text in steps():
        argv = ["bash", "-c", text] if kind == "shell" else [sys.executable, "-c", text]
        started = time.perf_counter()
        done = subprocess.run(argv, cwd=directory, env=env, capture_output=True, text=True)
        seconds = time.perf_counter() - started
        first = text.strip().splitlines()[0]
        timings.append((first, seconds, done.returncode))
        print(f"{seconds:7.1f} s  rc {done.returncode}  {first}", file=out, flush=True)
        if done.returncode != 0:
            print(done.stdout[-2000:] + done.stderr[-2000:], file=out)
            break
    return timings


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-root", help="sets $SPECROBUST_DATA for the commands")
    parser.add_argument("--keep", type=Path, help="run in this (empty) directory and keep it")
    args = parser.parse_args()
    env = dict(os.environ)
    if args.data_root:
        env["SPECROBUST_DATA"] = str(Path(args.data_root).resolve())
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    if args.keep:
        args.keep.mkdir(parents=True, exist_ok=True)
        timings = run(args.keep, env)
    else:
        with tempfile.TemporaryDirectory() as scratch:
            timings = run(Path(scratch), env)
    print(f"{sum(t for _, t, _ in timings):7.1f} s  in all")
    return 0 if timings and all(rc == 0 for _, _, rc in timings) else 1


if __name__ == "__main__":
    sys.exit(main())
