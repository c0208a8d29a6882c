"""The engine side of the sampling-faithfulness harness (the statistics are in
sampling_stats.py): seeded samples from one engine, as JSON-ready lists.

- single steps: for each sampling-parameter case, the first token of SEEDS requests
  with seeds 0..SEEDS-1 (a first token comes from a prefill step: it tests the sampler);
- continuations: CONTINUATIONS requests of CONTINUATION_TOKENS tokens each, sampled at
  temperature 1 (and with `both_cases` at 0.7 with top-k 20), after a prompt that quotes
  itself, so n-gram drafts are proposed and verified (decode steps: graphs and rejection
  sampling)."""

SEEDS = 300
SINGLE_STEP_PROMPT = "Once upon a time, in a small village by the sea,"
SINGLE_STEP = {
    "temperature-1": dict(temperature=1.0),
    "temperature-0.7-top-k-5": dict(temperature=0.7, top_k=5),
    "top-p-0.8": dict(temperature=1.0, top_p=0.8),
    "min-p-0.05": dict(temperature=1.0, min_p=0.05),
    "repetition-penalty-1.3": dict(temperature=1.0, repetition_penalty=1.3),
}
CONTINUATION_PROMPT = "Repeat the list twice: red, green, blue, yellow, red, green, blue, yellow, red,"
CONTINUATIONS, CONTINUATION_TOKENS = 64, 16
CONTINUATION = {
    "temperature-1": dict(temperature=1.0),
    "temperature-0.7-top-k-20": dict(temperature=0.7, top_k=20),
}


def prompt_ids(model, text: str) -> list[int]:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(model))(text)["input_ids"]


def seeded(llm, ids: list[int], n: int, max_tokens: int, **params) -> list[list[int]]:
    from vllm import SamplingParams
    from vllm.inputs import TokensPrompt

    prompts = [TokensPrompt(prompt_token_ids=ids)] * n
    sp = [SamplingParams(seed=s, max_tokens=max_tokens, ignore_eos=True, **params) for s in range(n)]
    return [list(o.outputs[0].token_ids) for o in llm.generate(prompts, sp, use_tqdm=False)]


def sampling_run(llm, model, single_step: bool = True, both_cases: bool = False) -> dict:
    """Samples for sampling_stats.check(); `single_step=False` leaves out the sampler
    cases (a first token comes from a prefill step, eager in every mode; vLLM refuses
    min-p with speculation)."""
    out = {"continuations": {}, "single_step": {}}
    ids = prompt_ids(model, CONTINUATION_PROMPT)
    for name, params in list(CONTINUATION.items())[: 2 if both_cases else 1]:
        out["continuations"][name] = seeded(llm, ids, CONTINUATIONS, CONTINUATION_TOKENS, **params)
    if single_step:
        ids = prompt_ids(model, SINGLE_STEP_PROMPT)
        for name, params in SINGLE_STEP.items():
            out["single_step"][name] = [t[0] for t in seeded(llm, ids, SEEDS, 1, **params)]
    return out


def served_sampling_run(client, model_name: str, tokenizer_dir, workers: int = 4) -> dict:
    """The continuations of sampling_run() from an OpenAI-API server (`client`), the
    requests `workers` at a time."""
    from concurrent.futures import ThreadPoolExecutor

    ids = prompt_ids(tokenizer_dir, CONTINUATION_PROMPT)

    def one(args):
        seed, params = args
        reply = client.completions.create(
            model=model_name,
            prompt=ids,
            max_tokens=CONTINUATION_TOKENS,
            seed=seed,
            extra_body={"ignore_eos": True, "return_token_ids": True, **params},
        )
        return reply.choices[0].model_extra["token_ids"]

    out = {"continuations": {}, "single_step": {}}
    with ThreadPoolExecutor(workers) as pool:
        for name, params in list(CONTINUATION.items())[:1]:
            out["continuations"][name] = list(pool.map(one, [(s, params) for s in range(CONTINUATIONS)]))
    return out
