# `make test` works on a fresh machine: it creates .venv unless a virtual environment is active,
# installs torch first (see `torch` below), then the project with its test extras, then runs the suite.
#
# Overridable:  make test TORCH_SPEC='torch==2.5.1' TORCH_INDEX=   (empty: torch from the default index)
PYTHON      ?= python3
TORCH_SPEC  ?= torch==2.13.0
TORCH_INDEX ?= https://download.pytorch.org/whl/cpu
PYTEST_ARGS ?=
DEMO_ARGS   ?=
DEVICE_CHECK_ARGS ?=

ifdef VIRTUAL_ENV
VENV := $(VIRTUAL_ENV)
else
VENV := .venv
endif
PY := $(VENV)/bin/python
STAMP := $(VENV)/.zssrgan-installed

# Can TORCH_INDEX be reached within 5 s? (pip's own timeout is minutes, with retries.)
PROBE_INDEX = import sys, threading, urllib.request; ok = []; url = sys.argv[1].rstrip("/") + "/"; probe = threading.Thread(target=lambda: ok.append(urllib.request.urlopen(url, timeout=5).close()), daemon=True); probe.start(); probe.join(5); sys.exit(0 if ok else 1)

.PHONY: install torch test demo device-check clean

$(PY):
	$(PYTHON) -m venv $(VENV)

# torch before the project, so that pip does not pull the multi-gigabyte CUDA build on a machine
# without a GPU: the CPU build from TORCH_INDEX (PyTorch's CPU wheel index) when that index answers,
# else from the default index (pip's configured index or mirror); with a GPU, from the default index.
torch: | $(PY)
	@if $(PY) -c "import torch" 2>/dev/null; then \
	  echo "torch: already installed"; \
	elif command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then \
	  echo "torch: NVIDIA GPU found: installing $(TORCH_SPEC) (CUDA build) from the default index"; \
	  $(PY) -m pip install "$(TORCH_SPEC)"; \
	elif [ -z "$(TORCH_INDEX)" ]; then \
	  echo "torch: no GPU, TORCH_INDEX empty: installing $(TORCH_SPEC) from the default index"; \
	  $(PY) -m pip install "$(TORCH_SPEC)"; \
	elif $(PY) -c '$(PROBE_INDEX)' "$(TORCH_INDEX)" 2>/dev/null; then \
	  echo "torch: no GPU: installing the CPU build of $(TORCH_SPEC) from $(TORCH_INDEX)"; \
	  $(PY) -m pip install "$(TORCH_SPEC)" --index-url "$(TORCH_INDEX)"; \
	else \
	  echo "torch: no GPU, and $(TORCH_INDEX) cannot be reached (5-second probe): installing $(TORCH_SPEC)" \
	       "from the default index instead (pip's configured index or mirror; PyPI's Linux build includes CUDA)"; \
	  $(PY) -m pip install "$(TORCH_SPEC)"; \
	fi

$(STAMP): pyproject.toml | $(PY)
	@$(MAKE) --no-print-directory torch
	$(PY) -m pip install -e ".[test]"
	@touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

demo: $(STAMP)
	$(VENV)/bin/zssrgan demo --out zssrgan-demo $(DEMO_ARGS)

# what a GPU changes, in one command (a reduced CPU version without one): benchmarks/device_check.py
device-check: $(STAMP)
	$(PY) benchmarks/device_check.py $(DEVICE_CHECK_ARGS)

clean:
	rm -rf .venv build *.egg-info .pytest_cache
