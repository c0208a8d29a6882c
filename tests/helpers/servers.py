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


PORT_TAKEN = "Address already in use"
ATTEMPTS = 3  # a port free when chosen can be taken before the server binds it


@contextmanager
def serve(model, target: str, *args: str, name: str = "server"):
    """Yields the base URL once healthy; target "host" (ours) or "auto" (the peer). A
    server that could not bind its port (another process took it after free_port chose
    it) starts again on another. Dev mode (/collective_rpc) lets a test read our
    workers' reports (replays.server_reports)."""
    env = dict(os.environ, VLLM_NPU_GRAPH_TARGET=target, VLLM_SERVER_DEV_MODE="1")
    vllm = Path(sys.executable).parent / "vllm"
    log_path = LOG_DIR / f"vllm_npu_graph_{name}_{target}.log"
    for attempt in range(ATTEMPTS):
        port = free_port()
        cmd = [str(vllm), "serve", str(model), "--port", str(port), "--dtype", "float32", "--seed", "0", *args]
        with open(log_path, "w") as log:
            proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        base = f"http://127.0.0.1:{port}"
        try:
            wait_until_healthy(base, proc, timeout_s=600)
            break
        except RuntimeError:
            stop_process(proc)
            if attempt + 1 == ATTEMPTS or PORT_TAKEN not in log_path.read_text():
                raise
    try:
        yield base
    finally:
        stop_process(proc)
