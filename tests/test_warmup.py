"""`vllm-npu-graph warmup` end to end on the tiny Qwen3 model, with cold, private
caches: --check is cold before and warm after the warm-up; a warm-up reports every
capture size; a start whose cached artifact was corrupted gives Hugging Face's tokens
and rebuilds the entry; a start with an unwritable cache folder warns and gives the
same tokens."""

import contextlib
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers.engines import hf_greedy_ids

pytestmark = pytest.mark.engine  # starts engines: not in `make test-fast`

HERE = Path(__file__).parent
ARGS = [
    "--dtype",
    "float32",
    "--max-model-len",
    "512",
    "--max-num-seqs",
    "4",
    "--max-num-batched-tokens",
    "512",
    "--seed",
    "0",
    "--kv-cache-memory-bytes",
    str(64 << 20),
]
PROMPTS = [[1, 2, 3, 4, 5], [7, 8, 9]]


def run(cmd, env, timeout=600):
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    return proc.returncode, proc.stdout + proc.stderr, proc.stdout


def check(model, env, *extra, flag="--check") -> tuple[int, str]:
    """`warmup --check` (or --clear) in this process (no engine; saves an interpreter start)."""
    from vllm_npu_graph.compilation import warmup

    out = io.StringIO()
    with pytest.MonkeyPatch.context() as mp, contextlib.redirect_stdout(out):
        for name in ("VLLM_CACHE_ROOT", "VLLM_NPU_GRAPH_TARGET"):
            mp.setenv(name, env[name])
        rc = warmup.main(["--model", model, *ARGS, *extra, flag])
    return rc, out.getvalue()


@pytest.fixture(scope="module")
def flow(tiny_model, tmp_path_factory):
    model = str(tiny_model("qwen3"))
    tmp = tmp_path_factory.mktemp("warmup")
    env = dict(
        os.environ,
        VLLM_NPU_GRAPH_TARGET="host",
        VLLM_CACHE_ROOT=str(tmp / "vllm"),
        TORCHINDUCTOR_CACHE_DIR=str(tmp / "inductor"),
        PYTHONPATH=os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]),
    )
    warmup = [sys.executable, "-m", "vllm_npu_graph.cli", "warmup", "--model", model, *ARGS]
    driver = [sys.executable, str(HERE / "helpers" / "warmup_driver.py"), model]
    out = {"model": model}
    out["check_before"] = check(model, env)
    report = tmp / "report.json"
    out["warmup"] = run([*warmup, "--json", str(report)], env)
    out["report"] = json.loads(report.read_text()) if report.exists() else None
    out["check_after"] = check(model, env)
    out["check_other_kernels"] = check(model, env, "--additional-config", '{"npu_graph": {"kernels": "reference"}}')
    # Corrupt the cached artifact (same size, one byte flipped), then start.
    entry = Path(out["report"]["cache"]["entry"])
    artifact = next(entry.glob("*.bin"))
    data = bytearray(artifact.read_bytes())
    data[len(data) // 2] ^= 0xFF
    artifact.write_bytes(bytes(data))
    out["corrupt_start"] = run(driver, env)
    out["check_rebuilt"] = check(model, env)
    foreign = tmp / "vllm" / "npu_graph_compile_cache" / "not-ours"
    foreign.mkdir()
    out["clear"] = check(model, env, flag="--clear")
    out["check_cleared"] = check(model, env)
    out["kept_after_clear"] = foreign.is_dir() and (tmp / "vllm" / "torch_compile_cache").is_dir()
    blocker = tmp / "a-file"
    blocker.write_text("not a folder")
    out["unwritable_start"] = run(
        driver, dict(env, VLLM_NPU_GRAPH_COMPILE_CACHE_DIR=str(blocker / "cache"), VLLM_CACHE_ROOT=str(tmp / "vllm2"))
    )
    out["hf"] = hf_greedy_ids(model, PROMPTS, max_tokens=8)
    return out


def test_check_is_cold_before_and_warm_after_warmup(flow):
    rc, log = flow["check_before"]
    assert rc == 1, log[-3000:]
    assert "cold" in log
    rc, log, _ = flow["warmup"]
    assert rc == 0, log[-3000:]
    rc, log = flow["check_after"]
    assert rc == 0, log[-3000:]
    assert "warm" in log


def test_check_names_the_changed_component_and_clear_empties_only_ours(flow):
    rc, log = flow["check_other_kernels"]
    assert rc == 1 and "differs from the nearest entry in: kernels" in log, log
    rc, log = flow["clear"]
    assert rc == 0 and "removed 1 compile-cache entry" in log, log
    rc, log = flow["check_cleared"]
    assert rc == 1 and "no cache entries" in log, log
    assert flow["kept_after_clear"]  # a folder not ours, and vLLM's own cache, stay


def test_warmup_reports_every_capture_size(flow):
    _, log, _ = flow["warmup"]
    report = flow["report"]
    sizes = [c["size"] for c in report["capture"]]
    assert sorted(sizes) == [1, 2, 4]
    assert all(c["captured"] and c["capture_s"] > 0 for c in report["capture"])
    assert report["totals"]["compile_source"] == "compiled"
    assert report["cache"]["warm"] and report["cache"]["bytes"] > 0
    assert "capture s" in log and "graph MiB" in log  # the printed table
    assert report["components"]["capture_sizes"] == "1,2,4"


def test_corrupt_artifact_gives_correct_tokens_and_is_rebuilt(flow):
    rc, log, stdout = flow["corrupt_start"]
    assert rc == 0, log[-3000:]
    assert "corrupt" in log
    assert json.loads(stdout.strip().splitlines()[-1]) == flow["hf"]
    assert "compiled decoder cached in" in log
    rc, log = flow["check_rebuilt"]
    assert rc == 0, log[-3000:]


def test_unwritable_cache_folder_warns_and_gives_correct_tokens(flow):
    rc, log, stdout = flow["unwritable_start"]
    assert rc == 0, log[-3000:]
    assert "not writable" in log
    assert json.loads(stdout.strip().splitlines()[-1]) == flow["hf"]
