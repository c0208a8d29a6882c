"""`vllm serve` subprocesses for tests: ours on the host target, or the peer (vLLM's
own CPU platform, the plugin inactive) on the same model, each logging to a file."""

import os
import socket
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

from vllm_npu_graph.processes import stop_process, wait_until_healthy

LOG_DIR = Path(os.environ.get("TMPDIR", "/tmp"))


def free_port() -> int:
    """A port no other server holds now: a fixed one can answer for another test's server."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def serve(model, target: str, *args: str, name: str = "server"):
    """Yields the base URL once healthy; target "host" (ours) or "auto" (the peer)."""
    port = free_port()
    env = dict(os.environ, VLLM_NPU_GRAPH_TARGET=target)
    vllm = Path(sys.executable).parent / "vllm"
    cmd = [str(vllm), "serve", str(model), "--port", str(port), "--dtype", "float32", "--seed", "0", *args]
    log_path = LOG_DIR / f"vllm_npu_graph_{name}_{target}.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            base = f"http://127.0.0.1:{port}"
            wait_until_healthy(base, proc, timeout_s=600)
            yield base
        finally:
            stop_process(proc)
