"""One engine with speculative decoding: greedy tokens for batches of several sizes,
then the sampling harness's samples (sampling_runs.py), and vLLM's spec-decode
counters after each, as JSON on the last stdout line.
Args: MODEL MODE(graph|eager) SPECULATIVE_CONFIG_JSON BATCHES(comma-separated, may be
empty) MAX_TOKENS [sample]."""

import json
import sys

from helpers.engines import finish_driver, greedy_ids, make_llm
from helpers.sampling_runs import sampling_run

# Prompts that quote themselves: n-gram lookup finds continuations in them.
TEMPLATES = [
    "Repeat the list twice: red, green, blue, red, green, blue, red,",
    "def add(a, b):\n    return a + b\n\ndef sub(a, b):\n    return a - b\n\ndef mul(a, b):\n",
    "The quick brown fox jumps over the lazy dog. The quick brown fox jumps over the",
    "Monday, Tuesday, Wednesday, Thursday, Friday. Monday, Tuesday,",
]


def prompt_ids(model, n: int) -> list[list[int]]:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model)
    return [tok(f"({i}) {TEMPLATES[i % len(TEMPLATES)]}")["input_ids"] for i in range(n)]


def counters(llm) -> dict:
    return {
        m.name.removeprefix("vllm:spec_decode_"): getattr(m, "value", None)
        for m in llm.get_metrics()
        if m.name.startswith("vllm:spec_decode_num_")
    }


if __name__ == "__main__":
    model, mode, spec, batches, max_tokens = sys.argv[1:6]
    llm = make_llm(
        model,
        speculative_config=json.loads(spec),
        disable_log_stats=False,
        enforce_eager=mode == "eager",
    )
    tokens = {n: greedy_ids(llm, prompt_ids(model, int(n)), int(max_tokens)) for n in batches.split(",") if n}
    result = {"tokens": tokens, "counters": counters(llm)}
    if sys.argv[6:] == ["sample"]:  # counted apart: sampled drafts are accepted less often than greedy ones
        result["samples"] = sampling_run(llm, model, single_step=False, both_cases=True)
        result["counters_with_samples"] = counters(llm)
    finish_driver(llm, result)
