"""Runs one engine over batches of several sizes and prints the greedy tokens as JSON
on the last stdout line; run in a subprocess so tests can check the engine's log too.

Modes: graph (captured sizes 1,2,4,8,16), eager, triton (eager with our Triton
attention kernels; on the host target they run in the CPU interpreter), passes (graph
mode with every fusion pass forced on)."""

import json
import os
import sys
import tempfile

from conftest import PROMPTS, make_llm, shutdown_llm

from vllm_npu_graph.passes import PASS_NAMES

MODES = {
    "graph": dict(compilation_config={"cudagraph_mode": "FULL", "cudagraph_capture_sizes": [1, 2, 4, 8, 16]}),
    "eager": dict(enforce_eager=True),
    "triton": dict(enforce_eager=True, additional_config={"npu_graph": {"kernels": "triton"}}),
    # One captured size: larger batches run the compiled graph eagerly (and a graph first
    # traced at one token must not be specialised to it).
    "passes": dict(compilation_config={"cudagraph_capture_sizes": [1]},
                   additional_config={"npu_graph": {"passes": dict.fromkeys(PASS_NAMES, True)}}),
}

if __name__ == "__main__":
    model, mode = sys.argv[1], sys.argv[2]
    if mode == "passes":  # cold compile caches (vLLM's and Inductor's): the passes run and log counts
        cold = tempfile.mkdtemp(prefix="npu_graph_passes_")
        os.environ["VLLM_CACHE_ROOT"] = os.path.join(cold, "vllm")
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = os.path.join(cold, "inductor")
    batch_sizes = [int(n) for n in sys.argv[3].split(",")]
    max_tokens = int(sys.argv[4])
    llm = make_llm(model, max_num_seqs=32, **MODES[mode])
    from vllm import SamplingParams

    params = SamplingParams(temperature=0.0, max_tokens=max_tokens, ignore_eos=True)
    results = {}
    for n in batch_sizes:
        prompts = [f"{PROMPTS[i % len(PROMPTS)]} (variant {i})" for i in range(n)]
        outs = llm.generate(prompts, params, use_tqdm=False)
        results[n] = [list(o.outputs[0].token_ids) for o in outs]
    shutdown_llm(llm)
    print(json.dumps(results), flush=True)
