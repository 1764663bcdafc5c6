# The two commands of the README: `make demo` and `make test`. Both set up .venv first.
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
PYTHON ?= python3.11
VENV := .venv
STAMP := $(VENV)/.installed-stamp
# pip's find-links warnings about local index folders are noise here.
QUIET_PIP := { grep -v "^WARNING: Location '" || true; }

.PHONY: install demo test gpu-check clean

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON) (set PYTHON=...)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --no-compile -e '.[test]' 2>&1 | $(QUIET_PIP)
	$(VENV)/bin/python -c "import deeplandscape, torch, ray, av"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/deeplandscape demo --out outputs/demo
	@echo "open outputs/demo/index.html"

test: $(STAMP)
	RAY_AUTH_MODE=disabled $(VENV)/bin/python -m pytest -q --durations=10

# Every CUDA path in one run under 8 minutes (docs/BENCHMARKS.md, "The GPU check").
gpu-check: $(STAMP)
	$(VENV)/bin/python bench/gpu_check.py --out gpu-check

clean:
	rm -rf $(VENV) outputs .pytest_cache
