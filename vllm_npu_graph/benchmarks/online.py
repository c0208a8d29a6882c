"""Serving load: one `vllm serve` per mode and repeat, driven by vLLM's own
`vllm bench serve` (random dataset, seeded) at each concurrency. The numbers are
vLLM's, read back from the result file it saves."""

import json
import subprocess
import sys
import time
from pathlib import Path

from vllm_npu_graph.benchmarks import procs
from vllm_npu_graph.processes import wait_until_healthy

METRICS = ("ttft", "tpot", "itl", "e2el")
SERVED_NAME = "bench-model"


def vllm_command() -> list[str]:
    """The `vllm` console script of this interpreter's environment."""
    exe = Path(sys.executable).parent / "vllm"
    return [str(exe)] if exe.exists() else ["vllm"]


def serve_command(engine_args: dict, port: int) -> list[str]:
    from vllm_npu_graph.benchmarks.modes import server_flags

    return [
        *vllm_command(),
        "serve",
        engine_args["model"],
        "--port",
        str(port),
        "--host",
        "127.0.0.1",
        "--served-model-name",
        SERVED_NAME,
        *server_flags(engine_args),
    ]


def bench_serve_command(
    port: int, tokenizer: str, concurrency: int, num_prompts: int, sizes, seed: int, result_dir: Path, filename: str
) -> list[str]:
    return [
        *vllm_command(),
        "bench",
        "serve",
        "--backend",
        "vllm",
        "--base-url",
        f"http://127.0.0.1:{port}",
        "--model",
        SERVED_NAME,
        "--tokenizer",
        tokenizer,
        "--dataset-name",
        "random",
        "--random-input-len",
        str(sizes.online_input_len),
        "--random-output-len",
        str(sizes.online_output_len),
        "--num-prompts",
        str(num_prompts),
        "--max-concurrency",
        str(concurrency),
        "--seed",
        str(seed),
        "--ignore-eos",
        "--num-warmups",
        str(min(concurrency, 4)),
        "--ready-check-timeout-sec",
        "0",
        "--percentile-metrics",
        ",".join(METRICS),
        "--metric-percentiles",
        "50,99",
        "--save-result",
        "--result-dir",
        str(result_dir),
        "--result-filename",
        filename,
        "--disable-tqdm",
    ]


def pick(result: dict) -> dict:
    """The fields of vLLM's result file the report uses."""
    out = {
        k: result.get(k)
        for k in (
            "completed",
            "failed",
            "duration",
            "request_throughput",
            "output_throughput",
            "total_token_throughput",
        )
    }
    for metric in METRICS:
        for stat in ("median", "p50", "p99", "mean"):
            out[f"{stat}_{metric}_ms"] = result.get(f"{stat}_{metric}_ms")
    return out


def run(mode, engine_args: dict, env: dict, settings, port: int, logs: Path, tag: str, timeout_s: float = 900) -> dict:
    """Start the server, time it to healthy, drive each concurrency, stop it."""
    sizes = settings.sizes
    launched = time.time()
    proc, rss = procs.launch(serve_command(engine_args, port), env, logs / f"{tag}-serve.log")
    record = {"levels": []}
    try:
        wait_until_healthy(f"http://127.0.0.1:{port}", proc, timeout_s)
        record["start_s"] = time.time() - launched
        for concurrency in sizes.concurrencies:
            num_prompts = max(concurrency * sizes.prompts_per_client, sizes.min_prompts)
            name = f"{tag}-c{concurrency}.json"
            cmd = bench_serve_command(
                port, engine_args["model"], concurrency, num_prompts, sizes, settings.seed, logs, name
            )
            with open(logs / f"{tag}-c{concurrency}.log", "w") as log:
                done = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, timeout=timeout_s)
            if done.returncode != 0:
                raise RuntimeError(
                    f"`vllm bench serve` failed (exit {done.returncode}); see {logs / (tag + f'-c{concurrency}.log')}"
                )
            result = json.loads((logs / name).read_text())
            record["levels"].append({"concurrency": concurrency, "num_prompts": num_prompts, **pick(result)})
    finally:
        procs.stop(proc)
        record["peak_rss_bytes"] = rss.stop()
    record["log"] = procs.scan_engine_log(logs / f"{tag}-serve.log")
    return record
