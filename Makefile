# Two commands do all set-up on a fresh Debian/Ubuntu machine:
#   make demo   build ResNet-8 for cortex-m4 and run it on the emulated board
#   make test   run the test suite
# Both create .venv, install edgekit and its Python dependencies, and the Debian packages.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.edgekit-installed
DEMO_MODEL ?= examples/models/mlperf-tiny/ic_resnet8.onnx
DEMO_TARGET ?= cortex-m4
PYTEST_ARGS ?=

.PHONY: setup debian demo test bench clean

setup: debian $(STAMP)

debian:
	bash scripts/install-debian-packages.sh

$(STAMP): pyproject.toml setup.py constraints/tested.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q -c constraints/tested.txt -e '.[dev,torch,tvm,tune,tflite]'
	touch $(STAMP)

demo: setup
	$(BIN)/edgekit build $(DEMO_MODEL) --target $(DEMO_TARGET) -o build/demo --run

test: setup
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

bench: setup
	$(BIN)/python benchmarks/run_all.py

clean:
	rm -rf build .pytest_cache
