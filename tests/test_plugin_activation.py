"""Plugin discovery and target selection."""

import os
import subprocess
import sys

import pytest

from vllm_npu_graph import PLATFORM_QUALNAME, register
from vllm_npu_graph.targets import ENV_VAR, TargetError, resolve_target_name


def run_python(code: str, target: str | None) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env.pop(ENV_VAR, None)
    if target is not None:
        env[ENV_VAR] = target
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)


PRINT_PLATFORM = (
    "import logging; logging.basicConfig(level=logging.INFO)\n"
    "from vllm.platforms import current_platform; print(type(current_platform).__name__)"
)


def test_host_target_activates_our_platform_through_the_entry_point():
    proc = run_python(PRINT_PLATFORM, "host")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().endswith("NPUGraphPlatform")
    assert "Platform plugin npu_graph is activated" in proc.stderr


def test_auto_without_npu_leaves_vllm_alone():
    proc = run_python(PRINT_PLATFORM, None)
    assert proc.returncode == 0, proc.stderr
    assert "NPUGraphPlatform" not in proc.stdout
    assert "npu_graph is activated" not in proc.stderr


@pytest.mark.parametrize(
    "target, message",
    [
        ("tpu9", "VLLM_NPU_GRAPH_TARGET='tpu9' is not valid: expected one of auto, npu, host."),
        ("npu", "no Ascend NPU is usable here: the torch_npu package is not installed"),
    ],
)
def test_bad_target_is_one_clear_error(target, message):
    proc = run_python(PRINT_PLATFORM, target)
    assert proc.returncode != 0
    last_line = proc.stderr.strip().splitlines()[-1]
    assert last_line.startswith("vllm_npu_graph.targets.base.TargetError")
    assert message in last_line


def test_register_is_idempotent_and_cheap(monkeypatch):
    monkeypatch.setenv(ENV_VAR, "host")
    assert register() == register() == PLATFORM_QUALNAME
    monkeypatch.setenv(ENV_VAR, "auto")
    assert register() is None
    assert "torch_npu" not in sys.modules


def test_unknown_target_raises_from_resolution(monkeypatch):
    monkeypatch.setenv(ENV_VAR, "gpu")
    with pytest.raises(TargetError, match="is not valid: expected one of auto, npu, host"):
        resolve_target_name()
