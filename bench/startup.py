"""Start-up cost, cold vs after `vllm-npu-graph warmup`, measured in one run.

In a fresh cache folder: (1) `vllm-npu-graph warmup` (a cold start: compile + capture
every size), (2) `vllm serve` with the same arguments until /health answers, then
stopped. Prints each one's decoder compile phase (vLLM's own `compilation_time`), its
capture time (ours: vLLM does not report capture) and the total engine start, and the
warm/cold compile ratio. With --vllm-bench it also runs `vllm bench startup` (one cold
start in its own fresh cache, then one warm-up and one warm start on ours: its `LLM`
engine config differs from `vllm serve`'s, so it warms its own entry).

    VLLM_NPU_GRAPH_TARGET=host .venv/bin/python bench/startup.py [--vllm-bench] [MODEL] [engine args]

Defaults: the embedded SmolLM2-135M-Instruct,
`--dtype float32 --max-model-len 2048 --max-num-batched-tokens 2048`.
"""

import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ENGINE_INIT = re.compile(r"init engine .* took ([\d.]+) s \(compilation: ([\d.]+) s\)")
CAPTURED = re.compile(r"npu_graph: captured (\d+) graph\(s\) .* in ([\d.]+) s; graph memory ([\d.]+) MiB")
PORT = int(os.environ.get("VLLM_NPU_GRAPH_DEMO_PORT", "8765")) + 7


def serve_once(args: list[str], env: dict, log_path: Path) -> dict:
    """`vllm serve ARGS` until healthy; the log's engine-init, compile and capture times."""
    from vllm_npu_graph.processes import stop_process, wait_until_healthy

    cmd = [str(Path(sys.executable).with_name("vllm")), "serve", *args, "--port", str(PORT)]
    with log_path.open("w") as log:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_until_healthy(f"http://127.0.0.1:{PORT}", proc, timeout_s=1200)
            healthy_s = time.perf_counter() - start
        finally:
            stop_process(proc)
    text = log_path.read_text()
    init, captured = ENGINE_INIT.search(text), CAPTURED.search(text)
    return {
        "process_to_healthy_s": round(healthy_s, 2),
        "engine_init_s": float(init.group(1)) if init else None,
        "compilation_s": float(init.group(2)) if init else None,
        "capture_s": float(captured.group(2)) if captured else None,
        "graphs": int(captured.group(1)) if captured else None,
        "loaded_from_our_cache": "from the compile cache" in text,
    }


def main(argv: list[str]) -> int:
    vllm_bench = "--vllm-bench" in argv
    argv = [a for a in argv if a != "--vllm-bench"]
    os.environ.setdefault("VLLM_NPU_GRAPH_TARGET", "host")
    if not argv or argv[0].startswith("-"):
        from vllm_npu_graph.models import build_default_model

        argv = [str(build_default_model()), *argv]
    model, extra = (
        argv[0],
        argv[1:] or ["--dtype", "float32", "--max-model-len", "2048", "--max-num-batched-tokens", "2048"],
    )
    work = Path(tempfile.mkdtemp(prefix="npu_graph_startup_"))
    env = dict(os.environ, VLLM_CACHE_ROOT=str(work / "vllm"), TORCHINDUCTOR_CACHE_DIR=str(work / "inductor"))
    print(f"cache folder: {work}", flush=True)

    report_path, warmup_log = work / "warmup.json", work / "warmup.log"
    start = time.perf_counter()
    with warmup_log.open("w") as log:
        subprocess.run(
            [
                sys.executable,
                "-m",
                "vllm_npu_graph.cli",
                "warmup",
                "--model",
                model,
                *extra,
                "--json",
                str(report_path),
            ],
            env=env,
            check=True,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    warm_cmd_s = time.perf_counter() - start
    report = json.loads(report_path.read_text())
    init = ENGINE_INIT.search(warmup_log.read_text())
    cold = {
        **report["totals"],
        "command_s": round(warm_cmd_s, 2),
        "engine_init_s": float(init.group(1)) if init else None,
    }
    text = warmup_log.read_text()
    print(text[text.rfind("  size  reqs") :] if "  size  reqs" in text else "", flush=True)  # warmup's table
    warm = serve_once([model, *extra], env, work / "serve.log")

    results = {
        "model": model,
        "args": extra,
        "warmup (cold start)": cold,
        "vllm serve after warmup": warm,
        "compile_ratio": round(warm["compilation_s"] / cold["compilation_s"], 3)
        if warm["compilation_s"] is not None
        else None,
    }
    if vllm_bench:
        out = work / "vllm_bench_startup.json"
        subprocess.run(
            [
                str(Path(sys.executable).with_name("vllm")),
                "bench",
                "startup",
                "--model",
                model,
                *extra,
                "--num-iters-cold",
                "1",
                "--num-iters-warmup",
                "1",
                "--num-iters-warm",
                "1",
                "--output-json",
                str(out),
            ],
            env=env,
            check=True,
        )
        results["vllm bench startup"] = json.loads(out.read_text())

    print("\n" + "=" * 72)
    print(f"start-up, {Path(model).name} {' '.join(extra)} ({os.environ['VLLM_NPU_GRAPH_TARGET']} target)")
    print(
        f"  cold (vllm-npu-graph warmup): compile {cold['compilation_s']:.2f} s, "
        f"capture step {cold['capture_phase_s']:.2f} s "
        f"({cold['sizes']} sizes: first runs {cold['first_runs_s']:.2f} s, captures {cold['capture_s']:.2f} s), "
        f"engine init {cold['engine_init_s']:.2f} s, engine start {cold['engine_startup_s']:.2f} s"
    )
    print(
        f"  warm (vllm serve):            compile {warm['compilation_s']:.2f} s, "
        f"capture step {warm['capture_s']:.2f} s "
        f"({warm['graphs']} graphs), engine init {warm['engine_init_s']:.2f} s, process to /health "
        f"{warm['process_to_healthy_s']:.2f} s"
    )
    print(
        f"  warm/cold compile phase: {100 * results['compile_ratio']:.1f}%; warm/cold engine init: "
        f"{100 * warm['engine_init_s'] / cold['engine_init_s']:.1f}%"
    )
    bench = results.get("vllm bench startup")
    if bench:
        print(
            f"  vllm bench startup: cold start {bench['avg_cold_startup_time']:.2f} s (compile "
            f"{bench['avg_cold_compilation_time']:.2f} s), warm start {bench['avg_warm_startup_time']:.2f} s "
            f"(compile {bench['avg_warm_compilation_time']:.2f} s); capture is not in its numbers"
        )
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
