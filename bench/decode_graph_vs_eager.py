"""Host-target decode benchmark: eager vs graph mode on the embedded default model.

Prints decode tokens/s and time per output token (TPOT) at batch 1 and 16 for both
modes, their ratio (measured in this one run), and each engine's start-up time; the
graph engine's start-up includes the cold whole-decoder compile and the captures
(compile caches point at a fresh temporary folder).

    VLLM_NPU_GRAPH_TARGET=host .venv/bin/python bench/decode_graph_vs_eager.py
"""

import os
import sys
import tempfile
import time

os.environ.setdefault("VLLM_NPU_GRAPH_TARGET", "host")
_cold = tempfile.mkdtemp(prefix="npu_graph_bench_")
os.environ["VLLM_CACHE_ROOT"] = os.path.join(_cold, "vllm")
os.environ["TORCHINDUCTOR_CACHE_DIR"] = os.path.join(_cold, "inductor")

BATCHES = (1, 16)
NEW_TOKENS = 64


def measure(llm, batch: int) -> tuple[float, float]:
    """(decode tokens/s, TPOT ms): time of N+1 tokens minus time of 1 (the prefill)."""
    from vllm import SamplingParams

    prompts = [f"Write a short story about robot number {i}." for i in range(batch)]

    def run(n):
        params = SamplingParams(temperature=0.0, max_tokens=n, ignore_eos=True)
        start = time.perf_counter()
        llm.generate(prompts, params, use_tqdm=False)
        return time.perf_counter() - start

    run(4)  # warm
    prefill = min(run(1) for _ in range(2))
    total = min(run(NEW_TOKENS + 1) for _ in range(2))
    decode = max(total - prefill, 1e-9)
    return batch * NEW_TOKENS / decode, decode / NEW_TOKENS * 1e3


def main() -> int:
    from vllm import LLM

    from vllm_npu_graph.models import build_default_model

    model = str(build_default_model())
    results, startup = {}, {}
    for mode in ("eager", "graph"):
        start = time.perf_counter()
        llm = LLM(
            model=model,
            dtype="float32",
            max_model_len=1024,
            max_num_seqs=16,
            seed=0,
            kv_cache_memory_bytes=512 << 20,
            enforce_eager=(mode == "eager"),
            compilation_config={"cudagraph_capture_sizes": [1, 2, 4, 8, 16]} if mode == "graph" else None,
        )
        startup[mode] = time.perf_counter() - start
        for b in BATCHES:
            results[(mode, b)] = measure(llm, b)
        llm.llm_engine.engine_core.shutdown()
        del llm

    print("\nhost target, SmolLM2-135M-Instruct float32, %d new tokens per request" % NEW_TOKENS)
    print(
        f"{'batch':>5} | {'eager tok/s':>11} {'eager TPOT':>10} | {'graph tok/s':>11} {'graph TPOT':>10} | graph/eager"
    )
    for b in BATCHES:
        (et, ep), (gt, gp) = results[("eager", b)], results[("graph", b)]
        print(f"{b:>5} | {et:>11.1f} {ep:>8.1f}ms | {gt:>11.1f} {gp:>8.1f}ms | {gt / et:>10.2f}x")
    print(
        f"engine start: eager {startup['eager']:.1f} s, graph {startup['graph']:.1f} s "
        f"(cold compile + capture: +{startup['graph'] - startup['eager']:.1f} s)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
