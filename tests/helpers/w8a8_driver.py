"""One engine on a W8A8 checkpoint: greedy continuations with each chosen token's
logprob, the logprob of every token of a fixed text (teacher-forced), and with a third
argument `sample` the sampling harness's continuations (sampling_runs.py). Prints JSON on
the last stdout line. Modes: graph, eager (our platform), graph-unfused (graph mode with the
quant fusion passes off); the peer is the same run with VLLM_NPU_GRAPH_TARGET=auto
(vLLM's CPU platform, eager)."""

import sys

from helpers.engines import PROMPTS, finish_driver, make_llm
from helpers.sampling_runs import sampling_run

TEXT_TOKENS = 1000
MAX_TOKENS = 24
QUANT_FUSIONS = ("rms_norm_quant", "add_rms_norm_quant", "swiglu_quant")


def text_ids(model) -> list[int]:
    """The first tokens of CPython's LICENSE.txt: prose that ships with every Python."""
    import os

    from transformers import AutoTokenizer

    path = os.path.join(sys.base_prefix, "lib", f"python{sys.version_info.major}.{sys.version_info.minor}")
    text = open(os.path.join(path, "LICENSE.txt"), encoding="utf-8").read()
    return AutoTokenizer.from_pretrained(model)(text)["input_ids"][:TEXT_TOKENS]


def prompt_ids(model) -> list[list[int]]:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model)
    return [tok(p)["input_ids"] for p in PROMPTS[:4]]


if __name__ == "__main__":
    model, mode = sys.argv[1], sys.argv[2]
    sizes = dict(compilation_config={"cudagraph_capture_sizes": [1, 2, 4]})
    extra = dict(enforce_eager=True) if mode == "eager" else sizes
    if mode == "graph-unfused":
        extra["additional_config"] = {"npu_graph": {"passes": dict.fromkeys(QUANT_FUSIONS, False)}}
    llm = make_llm(model, max_model_len=2048, max_num_batched_tokens=512, enable_chunked_prefill=True, **extra)
    from vllm import SamplingParams
    from vllm.inputs import TokensPrompt

    outs = llm.generate(
        [TokensPrompt(prompt_token_ids=ids) for ids in prompt_ids(model)],
        SamplingParams(temperature=0.0, max_tokens=MAX_TOKENS, ignore_eos=True, logprobs=0),
        use_tqdm=False,
    )
    tokens = [list(o.outputs[0].token_ids) for o in outs]
    logprobs = [[lp[t].logprob for t, lp in zip(o.outputs[0].token_ids, o.outputs[0].logprobs)] for o in outs]
    text = text_ids(model)
    scored = llm.generate(
        [TokensPrompt(prompt_token_ids=text)],
        SamplingParams(temperature=0.0, max_tokens=1, prompt_logprobs=0),
        use_tqdm=False,
    )[0]
    text_logprobs = [lp[t].logprob for t, lp in zip(text[1:], scored.prompt_logprobs[1:])]
    samples = sampling_run(llm, model, single_step=False) if sys.argv[3:] == ["sample"] else None
    finish_driver(llm, {"tokens": tokens, "logprobs": logprobs, "text_logprobs": text_logprobs, "samples": samples})
