"""Engine helpers shared by the tests and their driver scripts: one engine's settings,
greedy tokens from it and from Hugging Face transformers, and the prompts."""

import gc
import json
import os
import sys


def make_llm(model, **overrides):
    from vllm import LLM

    kwargs = dict(
        model=str(model),
        dtype="float32",
        max_model_len=1024,
        max_num_seqs=16,
        seed=0,
        kv_cache_memory_bytes=256 << 20,
    )
    kwargs.update(overrides)
    return LLM(**kwargs)


def shutdown_llm(llm) -> None:
    llm.llm_engine.engine_core.shutdown()
    del llm
    gc.collect()


def finish_driver(llm, result) -> None:
    """A driver script's end: stop the engine, print the result as the last stdout line
    (JSON), and leave without the interpreter's own teardown. With vLLM, torch and
    transformers loaded its garbage collections walk ~650k objects several times, ~2.5 s
    of every driver run, after the work is done and the engine has stopped."""
    shutdown_llm(llm)
    print(json.dumps(result), flush=True)
    sys.stderr.flush()
    os._exit(0)


def greedy_ids(llm, prompts_token_ids, max_tokens=32):
    from vllm import SamplingParams
    from vllm.inputs import TokensPrompt

    params = SamplingParams(temperature=0.0, max_tokens=max_tokens, ignore_eos=True)
    outs = llm.generate([TokensPrompt(prompt_token_ids=ids) for ids in prompts_token_ids], params, use_tqdm=False)
    return [list(o.outputs[0].token_ids) for o in outs]


def hf_greedy_ids(model, prompts_token_ids, max_tokens=32):
    """Hugging Face transformers' greedy continuation of each prompt (float32); model: a
    folder or a loaded model."""
    import torch
    from transformers import AutoModelForCausalLM

    if isinstance(model, (str, os.PathLike)):
        model = AutoModelForCausalLM.from_pretrained(str(model), dtype=torch.float32)
    model.eval()
    results = []
    with torch.no_grad():
        for ids in prompts_token_ids:
            # A plain argmax loop: generate()'s processors (min_new_tokens, eos
            # handling from generation_config) would change the tokens.
            out = model(torch.tensor([ids]), use_cache=True)
            past, new = out.past_key_values, []
            for _ in range(max_tokens):
                token = int(out.logits[0, -1].argmax())
                new.append(token)
                out = model(torch.tensor([[token]]), past_key_values=past, use_cache=True)
                past = out.past_key_values
            results.append(new)
    return results


PROMPTS = [
    "The capital of France is",
    "def fibonacci(n):",
    "Once upon a time, in a small village by the sea,",
    "The three primary colors are",
    "To make a cup of tea, you first",
    "In 1969, the first humans",
    "The quick brown fox",
    "Water boils at a temperature of",
]

LONG_TEXT = (
    "The history of computing spans centuries, from the abacus and mechanical calculators "
    "to programmable electronic machines. Charles Babbage designed the Analytical Engine, and "
    "Ada Lovelace wrote what many consider the first algorithm intended for a machine. In the "
    "twentieth century, Alan Turing formalised computation, and engineers built machines such as "
    "ENIAC and the Manchester Baby. Transistors replaced vacuum tubes, integrated circuits followed, "
    "and microprocessors brought computers into homes. Networks connected them, the web made "
    "information universal, and mobile devices put a computer in every pocket. Today, accelerators "
    "train and serve large language models that write, translate and reason. "
)


def prompts_of_lengths(tokenizer_dir, lengths):
    """Token-id prompts cut from natural text, one per requested length."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(tokenizer_dir))
    ids = tok(LONG_TEXT * (2 + max(lengths) // 100))["input_ids"]
    assert len(ids) >= max(lengths)
    return [ids[(7 * i) % 50 : (7 * i) % 50 + n] for i, n in enumerate(lengths)]
