# fasttcm developer targets. `make setup` is idempotent: it only reinstalls what changed.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
# torch/torchvision pair. x86_64 + Python 3.11: these lie on the lab machines' disk (CUDA builds that run on CPU).
# Override for other platforms, e.g. `make setup TORCH_SPEC="torch==2.9.1 torchvision==0.24.1"` on aarch64.
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1
PYTEST_ARGS ?= -q

.PHONY: setup test demo bench clean-venv

setup: $(VENV)/.fasttcm-installed

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade "pip>=23" wheel

$(VENV)/.torch-installed: $(VENV)/bin/python Makefile
	$(PIP) install $(TORCH_SPEC)
	touch $@

$(VENV)/.fasttcm-installed: $(VENV)/.torch-installed setup.py tools/install_detectron2.py
	$(PIP) install -e ".[dev]"
	$(PY) tools/install_detectron2.py
	$(PY) -c "import fasttcm, detectron2; print('fasttcm', fasttcm.__version__, '| detectron2', detectron2.__version__, '|', fasttcm.detectron2_ops_source())"
	touch $@

test: setup
	$(PY) -m pytest $(PYTEST_ARGS) tests

demo: setup
	$(PY) tools/quickstart.py

bench: setup
	$(PY) tools/benchmark_ops.py

clean-venv:
	rm -rf $(VENV)
