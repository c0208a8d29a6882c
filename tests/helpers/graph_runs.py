"""Runs helpers/graph_mode_driver.py (one engine, several batches) in a subprocess on the
host target and returns its greedy tokens and its whole log, which tests read for the
compile, capture and fallback lines."""

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from vllm_npu_graph import envs

TESTS_DIR = Path(__file__).resolve().parents[1]
DRIVER = Path(__file__).with_name("graph_mode_driver.py")
FAULT_VARS = (envs.FAIL_CAPTURE_SIZES, envs.FAIL_COMPILE, envs.FAIL_STEP)


def run_driver(model, mode: str, batches: str, max_tokens: int = 12, **env_overrides) -> tuple[dict, str]:
    """Each run gets a fresh compile cache of our own (the checks read the compile's log
    lines, which a warm entry from an earlier run would replace by a load) and no fault
    injection unless asked."""
    return run_script(DRIVER.name, model, mode, batches, str(max_tokens), **env_overrides)


def run_script(script: str, model, *args: str, **env_overrides) -> tuple[dict, str]:
    """tests/helpers/<script> MODEL ARGS... on the host target: (its last stdout line as
    JSON, its whole log)."""
    env = {k: v for k, v in os.environ.items() if k not in FAULT_VARS}
    env.update(
        {
            envs.TARGET: "host",
            envs.COMPILE_CACHE_DIR: tempfile.mkdtemp(prefix="driver_compile_cache_"),
            "PYTHONPATH": os.pathsep.join(filter(None, [str(TESTS_DIR), env.get("PYTHONPATH")])),
        }
    )
    env.update(env_overrides)
    cmd = [sys.executable, str(DRIVER.with_name(script)), str(model), *args]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-4000:]
    return json.loads(proc.stdout.strip().splitlines()[-1]), log
