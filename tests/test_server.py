"""`vllm serve` as a user types it, on the host target: the OpenAI endpoints answer
(streaming included) and a too-long request gets a 400 while the server keeps serving."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from vllm_npu_graph.cli import stop_process, wait_until_healthy

PORT = 8791
BASE = f"http://127.0.0.1:{PORT}"
MAX_MODEL_LEN = 512


@pytest.fixture(scope="module")
def server(default_model):
    vllm = Path(sys.executable).parent / "vllm"
    assert vllm.exists() or shutil.which("vllm"), "the `vllm` command is not installed"
    env = dict(os.environ, VLLM_NPU_GRAPH_TARGET="host")
    cmd = [str(vllm), "serve", str(default_model), "--port", str(PORT), "--dtype", "float32",
           "--max-model-len", str(MAX_MODEL_LEN), "--served-model-name", "smollm2",
           "--kv-cache-memory-bytes", str(256 << 20)]
    log = open(Path(os.environ.get("TMPDIR", "/tmp")) / "vllm_npu_graph_server_test.log", "w")
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_until_healthy(BASE, proc, timeout_s=300)
        yield proc
    finally:
        stop_process(proc)
        log.close()


def test_completion(server):
    r = requests.post(f"{BASE}/v1/completions", json={"model": "smollm2", "prompt": "The capital of France is",
                                                      "max_tokens": 8, "temperature": 0}, timeout=120)
    assert r.status_code == 200, r.text
    body = r.json()
    assert "Paris" in body["choices"][0]["text"]
    assert body["usage"]["completion_tokens"] == 8


def test_chat_completion(server):
    r = requests.post(f"{BASE}/v1/chat/completions", json={
        "model": "smollm2", "messages": [{"role": "user", "content": "What is the capital of France?"}],
        "max_tokens": 16, "temperature": 0}, timeout=120)
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
            data = line[len("data: "):]
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
    chat = {"model": "smollm2", "messages": [{"role": "user", "content": "Name three colors."}],
            "max_tokens": 16, "temperature": 0}
    whole_chat = requests.post(f"{BASE}/v1/chat/completions", json=chat, timeout=120).json()
    streamed = stream_text("/v1/chat/completions", chat, lambda c: c.get("delta", {}).get("content"))
    assert streamed == whole_chat["choices"][0]["message"]["content"]


def test_too_long_request_is_400_and_server_keeps_serving(server):
    r = requests.post(f"{BASE}/v1/completions", json={"model": "smollm2", "prompt": "hello " * (MAX_MODEL_LEN + 50),
                                                      "max_tokens": 4}, timeout=120)
    assert r.status_code == 400, r.text
    assert "context length" in r.text or "maximum" in r.text
    assert server.poll() is None
    test_completion(server)
