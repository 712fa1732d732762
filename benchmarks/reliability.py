"""How many bad inputs and environmental faults the robustness suite tries, by class.

    python benchmarks/reliability.py   # runs tests/test_robustness.py and test_construction.py

Every case of test_robustness.py asserts one line on stderr and exit status 2 (or, for a reader
called directly, the project's one-line error), and the cases counted "files checked intact"
also compare every pre-existing file byte for byte before and after; test_construction.py's
properties assert, for each generated input, a one-line refusal or a read identical to the
original. The counts come from the runs themselves (each module tallies what it tried), so they
include every generated example.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DESCRIPTIONS = {
    "options": "generated strings for every option of every command; garbage source names",
    "config": "generated values for every config key; generated YAML recipes",
    "numbers": "budget grammar, ranges of numeric options, float syntax",
    "formats": "crafted IDX, CIFAR, SVHN, Tiny ImageNet, checkpoint, safetensors, "
               "evaluation and analysis files; labels out of range; a damaged cache header",
    "model files": "torch.export archives carrying code (weights, constants, sample inputs, "
                   "opaque objects, guard code, graph targets, shape expressions, compiled "
                   "code) under every way a model is named; programs and plain pickles as "
                   "weights; non-finite and complex weights; misbehaving user code",
    "plans": "run names climbing out of their directory, duplicate names and labels, fields "
             "of the wrong type, seeds beyond 64 bits, budgets that do not parse, "
             "directories as plans or recipes, branching from nothing",
    "bounded input": "JSON and YAML nested thousands deep, a YAML alias bomb, a 2 GB file "
                     "posing as a figure",
    "outputs": "writing into foreign files and directories, through links, planted caches, "
               "dangling lock links; a user's Markdown beside a record",
    "kills": "leftovers of killed writes in runs, evaluations and analyses",
    "report": "HTML injection from every field; links and non-PNG files in a run",
    "filesystem": "full disk (training, evaluation, analysis), read-only filesystem, paths "
                  "of the wrong kind, closed pipe, memory exhaustion",
    "concurrency": "a second analysis of one directory; an evaluation lock reached via a link",
    # tests/test_construction.py: properties over generated inputs (each generated example
    # counts once)
    "parse once": "checkpoints and .npz files mutated at random (repeated, case-folded, "
                  "reordered, recompressed members; disagreeing headers; declared sizes; "
                  "flipped bytes; data before the archive) and PNG and JPEG files with flipped "
                  "bytes: refused in one line or read exactly, and read alike by every ZIP "
                  "reader",
    "allow by list": "GIF, BMP, TIFF, EPS, PPM and WebP named .png; PostScript never reaching "
                     "Ghostscript; 16-bit images keeping their values",
    "bound by declaration": ".npy headers declaring more than they hold; labels out of range; "
                            "image headers declaring too many pixels; gigabyte declarations "
                            "under a hard memory limit",
    "special files and links": "FIFOs as model, recipe and image; a link swapped in below an "
                               "output",
    "python api": "bad images, labels and models for evaluate and analyze; outputs that are "
                  "not logits",
}


def main() -> int:
    with tempfile.TemporaryDirectory() as scratch:
        tally_file = Path(scratch) / "tally.json"
        done = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
             str(ROOT / "tests" / "test_robustness.py"),
             str(ROOT / "tests" / "test_construction.py")],
            cwd=ROOT, env={**os.environ, "SPECROBUST_RELIABILITY_TALLY": str(tally_file)},
            capture_output=True, text=True)
        summary = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else "?"
        if not tally_file.is_file():
            print(done.stdout[-3000:], done.stderr[-3000:], sep="\n")
            return 1
        tally = json.loads(tally_file.read_text())
    print(f"pytest: {summary}")
    print()
    print("| class | cases tried | of which with every pre-existing file compared | what |")
    print("|---|---:|---:|---|")
    for kind, what in DESCRIPTIONS.items():
        print(f"| {kind} | {tally.get(kind, 0)} | "
              f"{tally.get(kind + ' (files checked intact)', 0)} | {what} |")
    total = sum(v for k, v in tally.items() if "(" not in k)
    intact = sum(v for k, v in tally.items() if "(" in k)
    print(f"| all | {total} | {intact} | |")
    return done.returncode


if __name__ == "__main__":
    sys.exit(main())
