# `make test` works on a fresh machine: it creates .venv unless a virtual environment is active,
# installs a CPU build of torch first when no NVIDIA GPU is present (so pip does not pull the
# multi-gigabyte CUDA build), then the project with its test extras, then runs the suite.
#
# Overridable:  make test TORCH_SPEC='torch==2.5.1' TORCH_INDEX=https://download.pytorch.org/whl/cpu
PYTHON      ?= python3
TORCH_SPEC  ?= torch==2.13.0
TORCH_INDEX ?=
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

.PHONY: install test demo device-check clean

$(PY):
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(PY)
	@if ! $(PY) -c "import torch" 2>/dev/null; then \
	  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then \
	    echo "GPU found: installing torch with CUDA"; $(PY) -m pip install torch; \
	  else \
	    echo "No GPU: installing CPU torch ($(TORCH_SPEC))"; \
	    $(PY) -m pip install "$(TORCH_SPEC)" $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX)); \
	  fi; \
	fi
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
