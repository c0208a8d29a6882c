"""SmolLM2 served as pipeline parallel 2 over vLLM's Ray executor (one local Ray node
declaring two NPU resources) vs one worker (TP=1, vLLM's multiprocessing executor), host
target, graph mode, on empty compile caches: start-up time and greedy decode tokens/s.
On one 2-core machine the two stages share the cores, so PP=2 is expected to be slower:
the figures are for the record (issue: Beyond one machine), not a goal.

    .venv/bin/python bench/pipeline_ray.py [--batch 8] [--tokens 64]
"""

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("VLLM_NPU_GRAPH_TARGET", "host")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))


def run(model, batch: int, tokens: int, **parallel) -> dict:
    from helpers.engines import PROMPTS, greedy_ids, make_llm, shutdown_llm
    from transformers import AutoTokenizer

    prompts = [AutoTokenizer.from_pretrained(str(model))(p)["input_ids"] for p in (PROMPTS * batch)[:batch]]
    with tempfile.TemporaryDirectory() as caches:  # a cold start: compile caches empty
        os.environ["VLLM_CACHE_ROOT"] = caches
        started = time.perf_counter()
        llm = make_llm(model, **parallel)
        start_s = time.perf_counter() - started
        try:
            greedy_ids(llm, prompts, 4)  # warm-up
            one = time.perf_counter()
            greedy_ids(llm, prompts, 1)
            one = time.perf_counter() - one
            many = time.perf_counter()
            out = greedy_ids(llm, prompts, tokens + 1)
            many = time.perf_counter() - many
        finally:
            shutdown_llm(llm)
    return {"start_s": start_s, "decode_tok_s": batch * tokens / (many - one), "tokens": out}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--tokens", type=int, default=64)
    args = parser.parse_args()
    from helpers import ray_cluster

    from vllm_npu_graph.models import build_default_model

    model = build_default_model()
    tp1 = run(model, args.batch, args.tokens)
    with ray_cluster.started(nodes=1):
        pp2 = run(model, args.batch, args.tokens, pipeline_parallel_size=2, distributed_executor_backend="ray")
    print(f"\nSmolLM2-135M fp32, host target, graph mode, batch {args.batch}, {args.tokens} new tokens")
    print("| engine | cold start (s) | decode tokens/s |\n| --- | --- | --- |")
    for name, r in (("TP=1 (mp)", tp1), ("PP=2 (Ray, one node)", pp2)):
        print(f"| {name} | {r['start_s']:.1f} | {r['decode_tok_s']:.1f} |")
    ratio = pp2["decode_tok_s"] / tp1["decode_tok_s"]
    print(f"PP=2/TP=1 decode: {ratio:.2f}x; greedy tokens equal: {tp1['tokens'] == pp2['tokens']}")


if __name__ == "__main__":
    main()
