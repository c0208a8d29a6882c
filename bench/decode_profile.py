"""Where a decode step's time goes, on the host: GEMM, attention, norm/activation,
other ops, Python/host work inside the forward, sampling, and the rest of the step
(scheduler, input preparation, output handling).

One engine in this process (VLLM_ENABLE_V1_MULTIPROCESSING=0) under torch.profiler,
with vLLM's own runner scopes switched on (VLLM_CUSTOM_SCOPES_FOR_PROFILING=1).
Decode steps are counted from the runner's forward scopes of one-token-per-request
batches; the first steps (prefill) are excluded by profiling a second generate call
after a warm one only from its second step on.

    VLLM_NPU_GRAPH_TARGET=host .venv/bin/python bench/decode_profile.py [--batch 1] [--eager]
    VLLM_NPU_GRAPH_TARGET=auto ...      # the peer: vLLM's own CPU platform
    ... bench/decode_profile.py --model ~/.cache/vllm-npu-graph/models/SmolLM2-135M-Instruct-W8A8
"""

import argparse
import collections
import json
import os
import time

os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"
os.environ["VLLM_CUSTOM_SCOPES_FOR_PROFILING"] = "1"

CATEGORIES = (  # first match wins, on the lower-cased op name
    ("GEMM", ("linear", "mm", "gemm", "onednn", "matmul")),
    ("attention", ("attention", "attn", "reshape_and_cache", "paged", "kv_cache")),
    ("norm/activation", ("rms", "norm", "silu", "swiglu", "gelu", "act_and_mul", "rotary", "rope")),
)
SCOPE = "gpu_model_runner: "


def category(name: str) -> str:
    low = name.lower()
    return next((cat for cat, keys in CATEGORIES if any(k in low for k in keys)), "other ops")


def summarise(events, steps: int) -> dict:
    """ms per step by category, from the profiler's event tree."""
    per = collections.Counter()
    forward_ops = collections.Counter()
    for ev in events:
        if ev.name.startswith(SCOPE):
            per[ev.name[len(SCOPE) :]] += ev.cpu_time_total / 1e3
        if ev.name == SCOPE + "forward":
            stack = list(ev.cpu_children)
            while stack:
                child = stack.pop()
                if child.name.startswith(SCOPE):
                    continue
                if child.cpu_children and not child.name.startswith(
                    ("aten::", "_C", "npu_graph::", "npu_graph_host::")
                ):
                    stack.extend(child.cpu_children)  # a Python-level scope: look inside
                    continue
                forward_ops[category(child.name)] += child.cpu_time_total / 1e3
    out = {k: v / steps for k, v in forward_ops.items()}
    out["Python/host in forward"] = (per["forward"] - sum(forward_ops.values())) / steps
    for scope in ("preprocess", "sample", "postprocess", "bookkeep"):
        out[f"runner {scope}"] = per[scope] / steps
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--tokens", type=int, default=32)
    parser.add_argument("--eager", action="store_true")
    parser.add_argument("--model", help="model folder (default: the embedded SmolLM2)")
    parser.add_argument("--ours-config", default="{}", help="our options, e.g. '{\"host_threads\": 1}'")
    args = parser.parse_args()

    import torch
    from vllm import LLM, SamplingParams

    from vllm_npu_graph.models import build_default_model

    llm = LLM(
        model=args.model or str(build_default_model()),
        dtype="float32",
        max_model_len=1024,
        max_num_seqs=max(16, args.batch),
        seed=0,
        kv_cache_memory_bytes=256 << 20,
        enforce_eager=args.eager,
        enable_prefix_caching=False,
        additional_config={"npu_graph": json.loads(args.ours_config)},
    )
    prompts = [f"Write a short story about robot number {i}." for i in range(args.batch)]
    params = SamplingParams(temperature=0.0, max_tokens=args.tokens, ignore_eos=True)
    llm.generate(prompts, params, use_tqdm=False)  # warm
    t = time.perf_counter()
    llm.generate(prompts, SamplingParams(temperature=0.0, max_tokens=1), use_tqdm=False)
    prefill_s = time.perf_counter() - t
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        t = time.perf_counter()
        llm.generate(prompts, params, use_tqdm=False)
        wall = time.perf_counter() - t
    steps = args.tokens - 1
    step_ms = (wall - prefill_s) / steps * 1e3
    parts = summarise(prof.events(), args.tokens)  # all steps (one prefill among them)
    print(
        f"target={os.environ.get('VLLM_NPU_GRAPH_TARGET', 'auto')} eager={args.eager} batch={args.batch}: "
        f"decode step {step_ms:.2f} ms wall (profiled; prefill {prefill_s * 1e3:.1f} ms)"
    )
    for name, ms in sorted(parts.items(), key=lambda kv: -kv[1]):
        print(f"  {name:24s} {ms:7.2f} ms/step")
    print(f"  {'rest of the step':24s} {step_ms - sum(parts.values()):7.2f} ms/step (scheduler, engine loop, output)")
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=15))


if __name__ == "__main__":
    main()
