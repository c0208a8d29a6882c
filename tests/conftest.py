"""Shared fixtures: models (built once into the plugin's cache) and engine helpers.

Every engine test runs the plugin's host target; one engine is shared per module
because an engine start costs ~30 s here.
"""

import os

# Triton kernels run in the CPU interpreter here; it must be on before Triton is first
# imported (vLLM imports it), or nested @triton.jit calls fail. vLLM still sees no
# active Triton driver, so its own paths are unchanged.
os.environ.setdefault("TRITON_INTERPRET", "1")
os.environ.setdefault("VLLM_NPU_GRAPH_TARGET", "host")
# The host graph behaves as a device graph, and in strict mode every host value that a
# device graph would freeze but a step changes, and every host sync in a capture, is an
# error (frozen_values.py).
os.environ.setdefault("VLLM_NPU_GRAPH_STRICT_GRAPHS", "1")
# `make test` runs two modules at a time: an engine of each computing on every core
# would put twice as many OpenMP threads as cores on the machine.
# The same holds for the references computed in the test process itself (Hugging Face,
# W8A8): measured here with the other core busy, SmolLM2's greedy reference took 7.0 s on
# two torch threads and 3.6 s on one (2.1 s on two with the machine idle).
TWO_MODULES_AT_A_TIME = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")) > 1
if TWO_MODULES_AT_A_TIME:
    os.environ.setdefault("VLLM_NPU_GRAPH_HOST_THREADS", "1")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402

if TWO_MODULES_AT_A_TIME:
    torch.set_num_threads(1)

from vllm_npu_graph.models import build_default_model, build_tiny_model, cache_dir  # noqa: E402


@pytest.fixture(scope="session")
def default_model() -> Path:
    return build_default_model()


@pytest.fixture(scope="session")
def tiny_model(default_model):
    """tiny_model(arch) -> folder of a seeded random model, built once per cache."""

    def build(arch: str) -> Path:
        return build_tiny_model(
            arch, cache_dir() / "models" / f"tiny-{arch}-seed0", seed=0, tokenizer_from=default_model
        )

    return build


# The longest modules first, by their seconds in a `make test` on 2026-12-08 (cold compile
# caches; the slowest 30 setups and calls of --durations, so a lower bound each; modules
# below test_multi_node_mp by the 2026-12-04 run): two workers take whole modules in
# collection order (--dist loadfile, with --no-loadscope-reorder: xdist would otherwise
# order modules by their number of tests), and a long module started last leaves the
# other core idle until it ends.
SLOW_MODULES_FIRST = (
    "test_spec_decode",  # 392 s
    "test_openai_features",  # 379
    "test_hf_parity_smollm2",  # 351
    "test_w8a8",  # 318
    "test_ray_executor",  # 316
    "test_moe_engine",  # 285
    "test_half_precision",  # 244
    "test_host_isa",  # 203 (2026-12-04; 84 in the slowest 30)
    "test_bench",  # 175
    "test_passes_engine",  # 151 (2026-12-04)
    "test_w8a8_qwen3",  # 146
    "test_triton_engine",  # 137
    "test_warmup",  # 127
    "test_tensor_parallel",  # 123 (2026-12-04)
    "test_faults",  # 101 (2026-12-04)
    "test_server",  # 90
    "test_data_parallel",  # 78
    "test_hf_parity_tiny_dense",  # 74
    "test_graph_mode",  # 72
    "test_multi_node_mp",  # 70
    "test_hf_parity_tiny_qwen3",  # 36
    "test_bad_input",  # 36
    "test_ascend_ir",  # 27
)


def pytest_collection_modifyitems(items):
    rank = {name: i for i, name in enumerate(SLOW_MODULES_FIRST)}
    items.sort(
        key=lambda item: rank.get(Path(item.nodeid.split("::")[0]).stem, len(rank))
    )  # stable: modules stay whole
