# One-command setup: `make demo` and `make test` create .venv and install into it.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
PIP     = $(BIN)/pip install --quiet -c constraints.txt
STAMP   = $(VENV)/.installed
FMNIST_DEBIAN = /usr/share/datasets/fashion-mnist

.PHONY: install demo demo-quick test test-slow test-scale examples lint typecheck docs wheel bench \
	bench-deps data-fashion-mnist clean

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) --upgrade pip
	$(PIP) torch==2.13.0
	$(PIP) -e ".[dev,docs,release]"
	touch $(STAMP)

# Debian's package where apt is usable, else the official download (checksum-verified).
data-fashion-mnist: install
	@if [ ! -d $(FMNIST_DEBIAN) ] && command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
		apt-get install -y -qq dataset-fashion-mnist >/dev/null 2>&1 || \
		{ apt-get update -qq >/dev/null && apt-get install -y -qq dataset-fashion-mnist >/dev/null; } || true; \
	fi
	$(BIN)/specrobust data fetch fashion-mnist

# The main job, the shipped study `demo`: natural / AT / AT+SAR / AT+SAR+WA on Fashion-MNIST,
# evaluated and analysed, one HTML report (runs/demo/report.html). Resumable: run it again
# after an interruption.
demo: data-fashion-mnist
	$(BIN)/specrobust study demo

demo-quick: data-fashion-mnist
	$(BIN)/specrobust study demo --quick

# The default suite, with the share of specrobust's lines it runs (in this process; the command
# lines it starts in subprocesses are not counted).
test: install
	$(BIN)/pytest -q --cov=specrobust --cov-report=
	@echo "coverage: $$($(BIN)/coverage report --format=total)% of src/specrobust's lines run by the default suite"

test-slow: install
	$(BIN)/pytest -q -m slow

test-scale: install
	$(BIN)/pytest -q -m scale

# The scripts and the notebook in examples/ (the notebook headless, through nbclient).
examples: install
	$(BIN)/pytest -q -m examples

lint: install
	$(BIN)/ruff check src tests benchmarks examples docs

# mypy over every module (pyproject.toml lists those not yet clean).
typecheck: install
	$(BIN)/mypy

# The documentation site, built strictly (a broken reference or a page missing from the
# navigation fails); the CLI and recipe pages are generated (python docs/generate.py).
docs: install
	$(BIN)/python docs/generate.py --check
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet

# The sdist and the wheel, as users get them, checked.
wheel: install
	rm -rf dist
	$(BIN)/python -m build --outdir dist . >/dev/null
	$(BIN)/twine check --strict dist/*

# torchattacks is only a yardstick for the evaluation benchmark; it imports without torchvision.
bench-deps: install
	$(BIN)/pip install --quiet --no-deps torchattacks==3.5.1

bench: bench-deps
	$(BIN)/python benchmarks/loader_overhead.py
	$(BIN)/python benchmarks/eval_throughput.py --n 512
	$(BIN)/python benchmarks/training_cost.py
	$(BIN)/python benchmarks/training_loop.py

clean:
	rm -rf $(VENV) build dist site src/*.egg-info .pytest_cache
