"""Faults in graph mode on the host target, each injected through our own code
(vllm_npu_graph/envs.py lists the fault-injection variables), and what a user gets:

- compiling the decoder raises: the engine serves the uncompiled decoder, the reason is
  logged, tokens equal eager mode's;
- capture runs out of memory from one size up: those sizes run eagerly, the smaller
  ones keep their graphs, the KV cache keeps its size, tokens equal eager mode's for
  batches of every kind of size, and the log names each size and why;
- a compile-cache artifact truncated or its manifest corrupt: a warning and a miss;
- a writer killed mid-write (SIGKILL): no entry is visible without a manifest listing
  it, the next writer succeeds and removes the dead writer's temp file;
- the engine core dies mid-request: the requests in flight get an error, /health goes
  bad (or the server exits), nothing hangs.

Covered elsewhere: one size's capture failing (tests/test_graph_mode.py, size 4), a
flipped byte in a cached artifact and an unwritable cache folder (tests/test_warmup.py
end to end, tests/test_compile_cache_key.py for the store).
"""

import json
import logging
import multiprocessing
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from helpers import graph_runs
from helpers.replays import PREFILL, assert_graph_mode

from vllm_npu_graph import envs
from vllm_npu_graph.compilation.cache_store import MANIFEST, CompileCache, file_sha256
from vllm_npu_graph.processes import stop_process, wait_until_healthy

# Capture sizes are 1,2,4,8,16 (graph_mode_driver's graph mode). Batches of 1 and 2 hit
# captured sizes, 3, 5 and 13 pad to the sizes that ran out of memory (4, 8, 16), 24 is
# above the largest, `mid` decodes a 700-token context beside a short one.
BATCHES = "1,2,3,5,13,24,mid"
OOM_FROM = 4


def run_driver(model, mode: str, **env_overrides) -> tuple[dict, str]:
    return graph_runs.run_driver(model, mode, BATCHES, **env_overrides)


def kv_cache_tokens(log: str) -> int:
    found = re.findall(r"KV cache size: ([\d,]+) tokens", log)
    assert found, "no KV cache size in the log"
    return int(found[-1].replace(",", ""))


@pytest.fixture(scope="module")
def model(tiny_model):
    return tiny_model("qwen3")


@pytest.fixture(scope="module")
def eager(model):
    return run_driver(model, "eager")


@pytest.fixture(scope="module")
def out_of_memory(model):
    return run_driver(model, "graph", **{envs.FAIL_CAPTURE_SIZES: f"oom:{OOM_FROM}"})


@pytest.fixture(scope="module")
def compile_failed(model, tmp_path_factory):
    cold = tmp_path_factory.mktemp("cold_caches")  # a cached artifact would skip the compile
    return run_driver(
        model,
        "graph",
        **{
            envs.FAIL_COMPILE: "1",
            "VLLM_CACHE_ROOT": str(cold / "vllm"),
            "TORCHINDUCTOR_CACHE_DIR": str(cold / "inductor"),
        },
    )


@pytest.mark.engine
def test_failed_compile_serves_the_uncompiled_decoder_with_the_reason_logged(compile_failed, eager):
    tokens, log = compile_failed
    assert re.search(
        r"compiling the decoder for token range .* failed \(RuntimeError: failure injected by "
        rf"{envs.FAIL_COMPILE}\); that range runs the uncompiled graph eagerly",
        log,
    ), log[-4000:]
    assert "compiled the whole decoder as one graph" not in log
    assert tokens == eager[0]


@pytest.mark.engine
def test_out_of_memory_at_capture_falls_back_from_that_size_up(out_of_memory, eager):
    tokens, log = out_of_memory
    failed = [s for s in (1, 2, 4, 8, 16) if s >= OOM_FROM]
    for size in failed:
        assert re.search(
            r"capture failed \(out of memory \(OutOfMemoryError: out of memory injected by "
            rf"{envs.FAIL_CAPTURE_SIZES}=oom:{OOM_FROM}\): leave more memory for graphs .*\) for "
            rf"size {size}; this size runs eagerly",
            log,
        ), (size, log[-4000:])
    assert "captured 2 graph(s) [1, 2]" in log
    assert f"failed sizes (eager): {failed}" in log
    (rank,) = assert_graph_mode(log, allowed=(PREFILL, "decode batch of more than 16", *(f"size {s}:" for s in failed)))
    for size in failed:  # batches of 3, 5 and 13 were served by the eager fallback
        assert any(r.startswith(f"size {size}: capture failed (out of memory") for r in rank["eager"]), rank
    assert kv_cache_tokens(log) == kv_cache_tokens(eager[1])  # the KV cache kept its size
    assert tokens == eager[0]  # captured sizes, fallen-back sizes, above the largest, long context


# --- the compile-cache store: truncated and corrupt entries, writers killed mid-write ---

KEY, NAME, OTHER = "0123456789abcdef", "range_1_512_aaaa.bin", "range_1_512_bbbb.bin"
PAYLOAD = b"compiled code " * 4096


def writer(path: str, payload: bytes = PAYLOAD) -> bool:
    with open(path, "wb") as f:
        f.write(payload)
    return True


def store(cache: CompileCache, name: str = NAME) -> bool:
    return cache.store(KEY, name, {"model": "m"}, {"file.py": "hash"}, writer, {})


def temps(cache: CompileCache) -> list[Path]:
    return sorted(cache.entry(KEY).glob(".*.tmp"))


def test_truncated_artifact_warns_and_is_a_miss(tmp_path, caplog):
    cache = CompileCache(tmp_path / "cache")
    assert store(cache)
    path = cache.entry(KEY) / NAME
    path.write_bytes(path.read_bytes()[: len(PAYLOAD) // 2])
    with caplog.at_level(logging.WARNING):
        assert cache.lookup(KEY, NAME) is None
    assert "missing, truncated or corrupt" in caplog.text
    assert not path.exists()


def test_corrupt_manifest_warns_and_is_rewritten_by_the_next_store(tmp_path, caplog):
    cache = CompileCache(tmp_path / "cache")
    assert store(cache)
    manifest = cache.entry(KEY) / MANIFEST
    manifest.write_text(manifest.read_text()[:40])  # cut mid-JSON
    with caplog.at_level(logging.WARNING):
        assert cache.lookup(KEY, NAME) is None
    assert "manifest" in caplog.text and "truncated or corrupt" in caplog.text
    assert cache.entries() == []
    assert store(cache)
    assert cache.lookup(KEY, NAME) is not None


def _write_until_killed(root, name, started) -> None:
    """A writer whose artifact write stalls half-way (as a large save in progress)."""

    def stalled(path):
        with open(path, "wb") as f:
            f.write(PAYLOAD[: len(PAYLOAD) // 2])
            f.flush()
            started.set()
            time.sleep(600)
        return True

    CompileCache(root).store(KEY, name, {"model": "m"}, {"file.py": "hash"}, stalled, {})


def _write_fully(root, name) -> None:
    store(CompileCache(root), name)


def kill(proc) -> None:
    os.kill(proc.pid, signal.SIGKILL)
    proc.join(30)
    assert proc.exitcode == -signal.SIGKILL


def test_writer_killed_mid_write_leaves_no_visible_entry_and_the_next_run_rebuilds(tmp_path):
    ctx = multiprocessing.get_context("fork")
    cache = CompileCache(tmp_path / "cache")
    started = ctx.Event()
    proc = ctx.Process(target=_write_until_killed, args=(cache.root, NAME, started))
    proc.start()
    assert started.wait(60)
    kill(proc)
    assert temps(cache), "the killed writer left no temp file: the test did not kill it mid-write"
    assert cache.lookup(KEY, NAME) is None
    assert cache.entries() == []  # no manifest, so no entry
    assert not cache.status({"model": "m"}, {"file.py": "hash"})["warm"]
    assert store(cache)  # the next run
    path = cache.lookup(KEY, NAME)
    assert path is not None and file_sha256(path) == file_sha256(tmp_path / "cache" / KEY / NAME)
    assert path.read_bytes() == PAYLOAD
    assert temps(cache) == []  # the dead writer's temp file is gone


def test_writer_killed_before_its_rename_leaves_the_entry_as_it_was(tmp_path):
    """The writer of a second artifact completes its temp file, then waits for the
    entry's lock (held here) to rename it and update the manifest, and is killed."""
    import fcntl

    ctx = multiprocessing.get_context("fork")
    cache = CompileCache(tmp_path / "cache")
    assert store(cache, NAME)
    before = (cache.entry(KEY) / MANIFEST).read_text()
    with open(cache.entry(KEY) / ".lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        proc = ctx.Process(target=_write_fully, args=(cache.root, OTHER))
        proc.start()
        deadline = time.time() + 60
        while not any(t.stat().st_size == len(PAYLOAD) for t in temps(cache)) and time.time() < deadline:
            time.sleep(0.05)
        assert temps(cache), "the writer never wrote its temp file"
        time.sleep(0.2)  # it is now hashing the temp file or blocked on the lock
        assert proc.is_alive()
        kill(proc)
        fcntl.flock(lock, fcntl.LOCK_UN)
    assert (cache.entry(KEY) / MANIFEST).read_text() == before
    assert not (cache.entry(KEY) / OTHER).exists()
    assert cache.lookup(KEY, OTHER) is None
    assert cache.lookup(KEY, NAME) is not None  # the complete artifact is still served
    assert store(cache, OTHER)
    assert cache.lookup(KEY, OTHER) is not None
    assert temps(cache) == []


# --- an engine-core crash mid-request, as a `vllm serve` user sees it ---

PORT = 8793
BASE = f"http://127.0.0.1:{PORT}"
FAIL_STEP = 40  # both requests below are decoding by then (each asks for 200 tokens)
BOUND_S = 60  # no request, stream or health check may take longer


def post(body: dict) -> urllib.request.Request:
    return urllib.request.Request(
        f"{BASE}/v1/completions", json.dumps({"model": "tiny", **body}).encode(), {"Content-Type": "application/json"}
    )


def health() -> int | str:
    try:
        with urllib.request.urlopen(f"{BASE}/health", timeout=10) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code
    except OSError as e:  # refused: the server has exited
        return type(e).__name__


REQUEST = {"prompt": [11, 12, 13, 14, 15, 16], "max_tokens": 200, "temperature": 0, "ignore_eos": True}


def streaming(result: dict, first_chunk: threading.Event) -> None:
    """Reads the stream to its end: records the events, whether [DONE] came, any error."""
    result.update(events=[], done=False)
    try:
        with urllib.request.urlopen(post({**REQUEST, "stream": True}), timeout=BOUND_S) as r:
            result["status"] = r.status
            for raw in r:
                line = raw.decode().strip()
                if not line.startswith("data: "):
                    continue
                data = line[len("data: ") :]
                if data == "[DONE]":
                    result["done"] = True
                    continue
                result["events"].append(json.loads(data))
                first_chunk.set()
    except urllib.error.HTTPError as e:
        result["status"] = e.code
    except Exception as e:  # a broken stream: the connection closed mid-response
        result["broken"] = f"{type(e).__name__}: {e}"
    finally:
        first_chunk.set()


def non_streaming(result: dict) -> None:
    try:
        with urllib.request.urlopen(post(REQUEST), timeout=BOUND_S) as r:
            result["status"] = r.status
    except urllib.error.HTTPError as e:
        result["status"] = e.code
        result["body"] = e.read().decode(errors="replace")
    except Exception as e:
        result["broken"] = f"{type(e).__name__}: {e}"


@pytest.mark.engine
def test_engine_core_crash_mid_request_is_reported_and_nothing_hangs(model, tmp_path):
    vllm = Path(sys.executable).parent / "vllm"
    env = {k: v for k, v in os.environ.items() if k not in graph_runs.FAULT_VARS}
    env.update(VLLM_NPU_GRAPH_TARGET="host", **{envs.FAIL_STEP: str(FAIL_STEP)})
    cmd = [
        str(vllm),
        "serve",
        str(model),
        "--port",
        str(PORT),
        "--dtype",
        "float32",
        "--enforce-eager",
        "--max-model-len",
        "512",
        "--max-num-seqs",
        "4",
        "--served-model-name",
        "tiny",
        "--kv-cache-memory-bytes",
        str(64 << 20),
    ]
    log_path = tmp_path / "server.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_until_healthy(BASE, proc, timeout_s=300)
            assert health() == 200
            stream, plain, first_chunk = {}, {}, threading.Event()
            threads = [threading.Thread(target=streaming, args=(stream, first_chunk))]
            threads[0].start()
            assert first_chunk.wait(BOUND_S)
            threads.append(threading.Thread(target=non_streaming, args=(plain,)))
            threads[1].start()
            for t in threads:
                t.join(BOUND_S + 10)
                assert not t.is_alive(), "a request hung after the engine core died"
            deadline, state = time.time() + BOUND_S, health()
            while state == 200 and time.time() < deadline:
                time.sleep(1)
                state = health()
            after = {}
            non_streaming(after)  # a request after the crash
            exited = proc.poll()
        finally:
            stop_process(proc, grace_s=30)
    text = log_path.read_text()
    assert f"failure injected by {envs.FAIL_STEP}={FAIL_STEP}" in text, text[-4000:]
    # The streaming request never completes normally: an error event or a broken stream.
    assert not stream["done"] or any("error" in e for e in stream["events"]), stream
    assert stream.get("broken") or any("error" in e for e in stream["events"]) or stream.get("status", 200) >= 500
    # The non-streaming request in flight gets a 5xx (or its connection breaks as the server exits).
    assert plain.get("status", 0) >= 500 or plain.get("broken"), plain
    assert after.get("status", 0) >= 500 or after.get("broken"), after
    assert state != 200, "/health still said 200 after the engine core died"
    print(
        "stream:",
        {k: v for k, v in stream.items() if k != "events"},
        "events:",
        len(stream["events"]),
        "last:",
        stream["events"][-1:],
        "| plain:",
        plain,
        "| after:",
        after,
        "| health:",
        state,
        "| exit code:",
        exited,
    )
