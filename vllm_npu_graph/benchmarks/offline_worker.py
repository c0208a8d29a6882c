"""One offline measurement: start one engine, time decode per batch size and prefill
per prompt length, record the greedy tokens of fixed prompts. Runs in its own process
(`python -m vllm_npu_graph.benchmarks.offline_worker SPEC OUT`) so each mode and repeat gets a fresh engine
and its own peak memory.

Decode time per output token = (time of N+1 new tokens - time of 1 new token) / N at
the same batch: the difference cancels the prefill and the first sampled token.
"""

import json
import sys
import time

from vllm_npu_graph.files import write_json_atomic

GREEDY_PROMPTS = [
    "The capital of France is",
    "def fibonacci(n):",
    "Once upon a time, in a small village by the sea,",
    "To make a cup of tea, you first",
]


def _random_prompts(rng, vocab: int, batch: int, length: int):
    from vllm.inputs import TokensPrompt

    return [TokensPrompt(prompt_token_ids=rng.integers(100, vocab - 100, size=length).tolist()) for _ in range(batch)]


def _timed(llm, prompts, max_tokens: int) -> float:
    from vllm import SamplingParams

    params = SamplingParams(temperature=0.0, max_tokens=max_tokens, ignore_eos=True)
    start = time.perf_counter()
    llm.generate(prompts, params, use_tqdm=False)
    return time.perf_counter() - start


def measure_decode(llm, rng, vocab: int, batch: int, prompt_len: int, new_tokens: int) -> dict:
    prompts = _random_prompts(rng, vocab, batch, prompt_len)
    _timed(llm, prompts, 2)  # warm this batch shape
    first = _timed(llm, prompts, 1)
    total = _timed(llm, prompts, new_tokens + 1)
    decode = max(total - first, 1e-9)
    return {
        "batch": batch,
        "tok_s": batch * new_tokens / decode,
        "tpot_ms": decode / new_tokens * 1e3,
        "first_token_s": first,
        "total_s": total,
    }


def measure_prefill(llm, rng, vocab: int, length: int) -> dict:
    prompts = _random_prompts(rng, vocab, 1, length)
    _timed(llm, prompts, 1)  # warm this length
    seconds = _timed(llm, _random_prompts(rng, vocab, 1, length), 1)
    return {"prompt_len": length, "tok_s": length / seconds, "seconds": seconds}


def greedy_tokens(llm, new_tokens: int) -> list[list[int]]:
    from vllm import SamplingParams

    params = SamplingParams(temperature=0.0, max_tokens=new_tokens, ignore_eos=True)
    return [list(o.outputs[0].token_ids) for o in llm.generate(GREEDY_PROMPTS, params, use_tqdm=False)]


def run(spec: dict) -> dict:
    import numpy as np
    from vllm import LLM

    started = time.perf_counter()
    llm = LLM(**spec["engine_args"])
    engine_start_s = time.perf_counter() - started
    ready_at = time.time()
    vocab = len(llm.get_tokenizer())
    rng = np.random.default_rng(spec["seed"])
    out = {"ready_at": ready_at, "engine_start_s": engine_start_s, "decode": [], "prefill": []}
    out["greedy"] = greedy_tokens(llm, spec["greedy_new_tokens"])  # also warms the engine
    for batch in spec["batches"]:
        out["decode"].append(
            measure_decode(llm, rng, vocab, batch, spec["decode_prompt_len"], spec["decode_new_tokens"])
        )
        print(f"bench: decode batch {batch}: {out['decode'][-1]['tok_s']:.1f} tok/s", flush=True)
    for length in spec["prefill_lens"]:
        out["prefill"].append(measure_prefill(llm, rng, vocab, length))
        print(f"bench: prefill {length}: {out['prefill'][-1]['tok_s']:.1f} tok/s", flush=True)
    llm.llm_engine.engine_core.shutdown()
    return out


def main(argv: list[str]) -> int:
    spec_path, out_path = argv
    with open(spec_path) as f:
        spec = json.load(f)
    result = run(spec)
    write_json_atomic(out_path, result)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
