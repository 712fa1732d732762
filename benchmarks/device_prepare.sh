#!/usr/bin/env bash
# Prepare .device/ for benchmarks/device_replicate.sh: what the lent GPU machine lacks and cannot
# fetch (it has no network). Fashion-MNIST's four files, and pyautoattack's code without its
# 44 MB example model, so the whole carried tree stays under the tool's 64 MiB.
set -euo pipefail
cd "$(dirname "$0")/.."
source=${1:-/usr/share/datasets/fashion-mnist}
python=${PYTHON:-.venv/bin/python}

rm -rf .device
mkdir -p .device/data/FashionMNIST/raw .device/site
cp "$source"/*-ubyte.gz .device/data/FashionMNIST/raw/
package=$("$python" -c "import os, pyautoattack; print(os.path.dirname(pyautoattack.__file__))")
cp -r "$package" .device/site/
rm -rf .device/site/pyautoattack/examples .device/site/pyautoattack/__pycache__
du -sh .device
