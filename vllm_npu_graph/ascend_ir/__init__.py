"""Lower every Triton kernel of ours through triton-ascend's compiler front end.

Runs in `.venv-ascend` (triton-ascend is the `triton` package there). Nobody here has an
NPU or CANN, but triton-ascend's TTIR -> Linalg/HIVM lowering (`triton-adapter-opt`) is
self-contained: this package drives it for each launch our wrappers make under the NPU
launch table and reports what it produced. `python -m vllm_npu_graph.ascend_ir --help`.
"""
