"""The NPU target's wiring, driven through a fake torch_npu whose every call is checked
against the real torch-npu 2.13.0 contract (schemas and graph API from the wheel,
fetched by tests/fakes/fetch_contract.py). Nothing here runs on an NPU."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

FAKES = Path(__file__).parent / "fakes"


def test_auto_activates_the_npu_target_when_torch_npu_sees_a_device():
    env = {k: v for k, v in os.environ.items() if k != "VLLM_NPU_GRAPH_TARGET"}
    env["PYTHONPATH"] = str(FAKES)
    code = (
        "import logging; logging.basicConfig(level=logging.INFO)\n"
        "from vllm.platforms import current_platform as p\n"
        "print(type(p).__name__, p.device_type, p.dist_backend, p.device_control_env_var)"
    )
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.split() == ["NPUGraphPlatform", "npu", "hccl", "ASCEND_RT_VISIBLE_DEVICES"]
    assert "Platform plugin npu_graph is activated" in proc.stderr


def test_device_libraries_are_named_only_in_the_npu_target():
    package = Path(__file__).parents[1] / "vllm_npu_graph"
    for path in package.rglob("*.py"):
        if path.name == "npu.py" and path.parent.name == "targets":
            continue
        text = path.read_text()
        for word in ("import torch_npu", "torch.npu.", "torchair", "hccl"):
            assert word not in text or (word == "hccl" and "targets" in path.parts), f"{path} names {word}"


def test_capture_sizes_are_capped():
    from types import SimpleNamespace

    from vllm_npu_graph.platform import limit_capture_sizes

    compilation = SimpleNamespace(cudagraph_capture_sizes=[1, 2, 4, 8, 16, 24, 32, 40, 48, 56, 64, 128])
    limit_capture_sizes(compilation, 4, max_num_seqs=64)  # decode graphs never exceed max_num_seqs
    assert compilation.cudagraph_capture_sizes == [1, 6, 21, 64]  # worst padding 2.05x (22 -> 64)
    assert compilation.max_cudagraph_capture_size == 64
    limit_capture_sizes(compilation, 0, max_num_seqs=64)
    assert compilation.cudagraph_capture_sizes == [1, 6, 21, 64]


@pytest.mark.engine
def test_npu_target_through_the_fake_torch_npu():
    """tests/fakes/npu_target_checks.py in a fresh interpreter (the fake is process-wide)."""
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(FAKES / "npu_target_checks.py")],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=FAKES.parents[1],
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "12 passed" in proc.stdout
