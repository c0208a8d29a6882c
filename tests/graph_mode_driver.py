"""Runs one engine (graph or eager mode) over batches of several sizes and prints the
greedy tokens as JSON on the last stdout line. Used by test_graph_mode.py in a
subprocess, so the engine's log can be checked too."""

import json
import sys

from conftest import PROMPTS, make_llm, shutdown_llm

BATCH_SIZES = [1, 3, 8, 16, 24]

if __name__ == "__main__":
    model, mode = sys.argv[1], sys.argv[2]
    extra = dict(enforce_eager=True) if mode == "eager" else dict(
        compilation_config={"cudagraph_mode": "FULL", "cudagraph_capture_sizes": [1, 2, 4, 8, 16]})
    llm = make_llm(model, max_num_seqs=32, **extra)
    from vllm import SamplingParams

    params = SamplingParams(temperature=0.0, max_tokens=12, ignore_eos=True)
    results = {}
    for n in BATCH_SIZES:
        prompts = [f"{PROMPTS[i % len(PROMPTS)]} (variant {i})" for i in range(n)]
        outs = llm.generate(prompts, params, use_tqdm=False)
        results[n] = [list(o.outputs[0].token_ids) for o in outs]
    shutdown_llm(llm)
    print(json.dumps(results), flush=True)
