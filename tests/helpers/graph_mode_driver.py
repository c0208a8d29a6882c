"""Runs one engine over batches of several sizes and prints the greedy tokens as JSON
on the last stdout line; run in a subprocess so tests can check the engine's log too.

Modes: graph (captured sizes 1,2,4,8,16; graph-bfloat16 and graph-float16 the same in
that dtype), eager, triton (eager with our Triton attention kernels; on the host target
they run in the CPU interpreter), triton-graph (graph mode with them, sizes 1,2,3),
passes (graph mode with every fusion pass forced on). A batch spec is a number of
prompts, or `long` / `mid` (prompts of 1,490, 700 and 30 or of 700 and 30 tokens: long
contexts decoded in one captured size, with chunked prefill beside decodes). Prefix
caching is on; max_model_len is 2,048. The spec `sample` gives the sampling harness's
continuations instead of greedy tokens (sampling_runs.py)."""

import os
import sys
import tempfile

from helpers.engines import PROMPTS, finish_driver, make_llm, prompts_of_lengths
from helpers.sampling_runs import sampling_run
from vllm_npu_graph.passes import PASS_NAMES

TRITON = {"npu_graph": {"kernels": "triton"}}
GRAPH = dict(compilation_config={"cudagraph_capture_sizes": [1, 2, 4, 8, 16]})
MODES = {
    "graph": GRAPH,
    "eager": dict(enforce_eager=True),
    "graph-bfloat16": dict(GRAPH, dtype="bfloat16"),
    "graph-float16": dict(GRAPH, dtype="float16"),
    "eager-reference": dict(enforce_eager=True, additional_config={"npu_graph": {"kernels": "reference"}}),
    "triton": dict(enforce_eager=True, additional_config=TRITON),
    "triton-graph": dict(additional_config=TRITON, compilation_config={"cudagraph_capture_sizes": [1, 2, 3]}),
    # One captured size: larger batches run the compiled graph eagerly (and a graph first
    # traced at one token must not be specialised to it).
    "passes": dict(
        compilation_config={"cudagraph_capture_sizes": [1]},
        additional_config={"npu_graph": {"kernels": "reference", "passes": dict.fromkeys(PASS_NAMES, True)}},
    ),
}
LENGTHS = {"long": [1490, 700, 30], "mid": [700, 30]}


def prompts_for(model, spec: str):
    """Token-id prompts for a batch spec (the same for every mode)."""
    if spec in LENGTHS:
        return prompts_of_lengths(model, LENGTHS[spec])
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model)
    return [tok(f"{PROMPTS[i % len(PROMPTS)]} (variant {i})")["input_ids"] for i in range(int(spec))]


if __name__ == "__main__":
    model, mode = sys.argv[1], sys.argv[2]
    if mode == "passes":  # cold compile caches (vLLM's and Inductor's): the passes run and log counts
        cold = tempfile.mkdtemp(prefix="npu_graph_passes_")
        os.environ["VLLM_CACHE_ROOT"] = os.path.join(cold, "vllm")
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = os.path.join(cold, "inductor")
    specs = sys.argv[3].split(",")
    max_tokens = int(sys.argv[4])
    llm = make_llm(
        model,
        max_num_seqs=32,
        max_model_len=2048,
        max_num_batched_tokens=512,
        enable_prefix_caching=True,
        **MODES[mode],
    )
    from vllm import SamplingParams
    from vllm.inputs import TokensPrompt

    params = SamplingParams(temperature=0.0, max_tokens=max_tokens, ignore_eos=True)
    results = {}
    for spec in specs:
        if spec == "sample":
            results[spec] = sampling_run(llm, model, single_step=False)
            continue
        prompts = [TokensPrompt(prompt_token_ids=ids) for ids in prompts_for(model, spec)]
        outs = llm.generate(prompts, params, use_tqdm=False)
        results[spec] = [list(o.outputs[0].token_ids) for o in outs]
    finish_driver(llm, results)
