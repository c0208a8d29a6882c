"""Starting and stopping `vllm serve` processes: shared by the CLI's demo, the benches and
the tests, so each waits for health and stops a server the same way."""

import json
import subprocess
import time
import urllib.error
import urllib.request


def post_json(url: str, body: dict) -> dict:
    req = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=300) as resp:
        return json.load(resp)


def wait_until_healthy(base: str, proc: subprocess.Popen, timeout_s: float = 600) -> None:
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited with code {proc.returncode} before becoming healthy")
        try:
            with urllib.request.urlopen(f"{base}/health", timeout=5):
                return
        except OSError:  # URLError, refused or reset connections, timeouts
            time.sleep(0.5)
    raise TimeoutError(f"the server did not become healthy within {timeout_s:.0f} s")


def stop_process(proc: subprocess.Popen, grace_s: float = 60) -> None:
    """SIGTERM (vLLM shuts its engine down cleanly), SIGKILL after the grace period."""
    proc.terminate()
    try:
        proc.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        proc.kill()
