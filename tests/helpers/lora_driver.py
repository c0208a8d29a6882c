"""One engine with LoRA (max_loras=2): greedy tokens of each (prompt, adapter) pair,
first all in one batch with the base model and two adapters, then a third adapter
(a slot is evicted and reloaded in place) and the first again, as JSON on the last
stdout line ({"batch": [...], "after": [...]}, each [prompt, adapter or null, tokens]).
Args: MODEL MODE(graph|eager) ADAPTERS_JSON({name: path}) MAX_TOKENS."""

import json
import sys

from helpers.engines import make_llm, shutdown_llm

PROMPTS = ["The capital of France is", "def fibonacci(n):", "Once upon a time,"]


def generate(llm, pairs, adapters, max_tokens):
    from vllm import SamplingParams
    from vllm.lora.request import LoRARequest

    ids = {name: i + 1 for i, name in enumerate(adapters)}
    requests = [None if a is None else LoRARequest(a, ids[a], adapters[a]) for _, a in pairs]
    params = SamplingParams(temperature=0.0, max_tokens=max_tokens, ignore_eos=True)
    outs = llm.generate([p for p, _ in pairs], params, lora_request=requests, use_tqdm=False)
    return [[p, a, list(o.outputs[0].token_ids)] for (p, a), o in zip(pairs, outs)]


if __name__ == "__main__":
    model, mode, adapters, max_tokens = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), int(sys.argv[4])
    first, second, third = adapters
    llm = make_llm(model, enable_lora=True, max_loras=2, max_lora_rank=8, max_num_seqs=4, enforce_eager=mode == "eager")
    batch = generate(llm, [(p, a) for p in PROMPTS for a in (None, first, second)], adapters, max_tokens)
    after = generate(llm, [(p, a) for a in (third, first) for p in PROMPTS], adapters, max_tokens)
    shutdown_llm(llm)
    print(json.dumps({"batch": batch, "after": after}), flush=True)
