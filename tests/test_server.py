"""`vllm serve` as a user types it, on the host target: the OpenAI endpoints answer
(streaming included), a too-long request gets a 400 while the server keeps serving, the
start-up log says which graphs were kept and what memory they and the KV cache take, and
a Ctrl-C stops it with no error or traceback in its output."""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from vllm_npu_graph.processes import stop_process, wait_until_healthy

pytestmark = pytest.mark.engine  # starts engines: not in `make test-fast`

PORT = 8791
BASE = f"http://127.0.0.1:{PORT}"
MAX_MODEL_LEN = 512
LOG = Path(os.environ.get("TMPDIR", "/tmp")) / "vllm_npu_graph_server_test.log"


@pytest.fixture(scope="module")
def server(default_model):
    vllm = Path(sys.executable).parent / "vllm"
    assert vllm.exists() or shutil.which("vllm"), "the `vllm` command is not installed"
    env = dict(os.environ, VLLM_NPU_GRAPH_TARGET="host")
    cmd = [
        str(vllm),
        "serve",
        str(default_model),
        "--port",
        str(PORT),
        "--dtype",
        "float32",
        "--max-model-len",
        str(MAX_MODEL_LEN),
        "--served-model-name",
        "smollm2",
        "--additional-config",
        json.dumps({"npu_graph": {"host_kv_cache_gib": 0.25}}),
    ]
    log = open(LOG, "w")
    # its own process group, so the last test can press Ctrl-C as a terminal would
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_until_healthy(BASE, proc, timeout_s=300)
        yield proc
    finally:
        stop_process(proc)
        log.close()


def test_start_up_log_shows_capture_sizes_graph_memory_and_kv_cache(server):
    log = LOG.read_text()
    sizes = re.search(
        r"capture sizes on the host target: (\d+) of (\d+) kept \(limit 16\): \[([\d, ]+)\]; "
        r"worst-case padding (\d+)%",
        log,
    )
    assert sizes, log[-3000:]
    assert int(sizes.group(1)) == 16 and int(sizes.group(4)) <= 40
    assert re.search(
        r"KV cache: [\d.]+ GiB on the host target \(host_kv_cache_gib cap; graphs estimated at "
        r"[\d.]+ MiB\)",
        log,
    )
    assert re.search(r"captured 16 graph\(s\) .* graph memory [\d.]+ MiB", log)


def test_completion(server):
    r = requests.post(
        f"{BASE}/v1/completions",
        json={"model": "smollm2", "prompt": "The capital of France is", "max_tokens": 8, "temperature": 0},
        timeout=120,
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert "Paris" in body["choices"][0]["text"]
    assert body["usage"]["completion_tokens"] == 8


def test_chat_completion(server):
    r = requests.post(
        f"{BASE}/v1/chat/completions",
        json={
            "model": "smollm2",
            "messages": [{"role": "user", "content": "What is the capital of France?"}],
            "max_tokens": 16,
            "temperature": 0,
        },
        timeout=120,
    )
    assert r.status_code == 200, r.text
    assert "Paris" in r.json()["choices"][0]["message"]["content"]


def stream_text(path: str, body: dict, field) -> str:
    with requests.post(f"{BASE}{path}", json={**body, "stream": True}, stream=True, timeout=120) as r:
        assert r.status_code == 200, r.text
        chunks, done = [], False
        for line in r.iter_lines(decode_unicode=True):
            if not line:
                continue
            assert line.startswith("data: ")
            data = line[len("data: ") :]
            if data == "[DONE]":
                done = True
                break
            for choice in json.loads(data)["choices"]:
                chunks.append(field(choice) or "")
        assert done
        return "".join(chunks)


def test_streaming_equals_non_streaming(server):
    body = {"model": "smollm2", "prompt": "def fibonacci(n):", "max_tokens": 16, "temperature": 0}
    whole = requests.post(f"{BASE}/v1/completions", json=body, timeout=120).json()["choices"][0]["text"]
    assert stream_text("/v1/completions", body, lambda c: c.get("text")) == whole
    chat = {
        "model": "smollm2",
        "messages": [{"role": "user", "content": "Name three colors."}],
        "max_tokens": 16,
        "temperature": 0,
    }
    whole_chat = requests.post(f"{BASE}/v1/chat/completions", json=chat, timeout=120).json()
    streamed = stream_text("/v1/chat/completions", chat, lambda c: c.get("delta", {}).get("content"))
    assert streamed == whole_chat["choices"][0]["message"]["content"]


def test_too_long_request_is_400_and_server_keeps_serving(server):
    r = requests.post(
        f"{BASE}/v1/completions",
        json={"model": "smollm2", "prompt": "hello " * (MAX_MODEL_LEN + 50), "max_tokens": 4},
        timeout=120,
    )
    assert r.status_code == 400, r.text
    assert "context length" in r.text or "maximum" in r.text
    assert server.poll() is None
    test_completion(server)


def test_ctrl_c_stops_cleanly(server):
    """Runs last (it stops the module's server). A terminal's Ctrl-C: SIGINT to the whole
    process group. vLLM's own spurious EngineDeadError traceback on a stop is demoted by
    shutdown_log.py; anything else logged at ERROR would be a real fault. No exit noise
    either (exit_gc.py)."""
    os.killpg(server.pid, signal.SIGINT)
    assert server.wait(timeout=60) == 0
    log = LOG.read_text()
    assert "shutdown triggered" in log, log[-3000:]
    stop = log[log.index("shutdown triggered") :]
    for bad in ("ERROR", "Traceback", "EngineDeadError", "nanobind: leaked"):
        assert bad not in log, stop[-3000:]
