"""The OpenAI API as users drive it, ours (graph mode, host target) next to vLLM's own
CPU platform serving the same folder: each feature's greedy output equal, logprobs
within 0.05, embeddings (--runner pooling) within fp32 tolerance, LoRA adapters
(--enable-lora --lora-modules) as the base model's features are; seeded sampling
reproducible run to run (the peer's CPU sampler draws differently, so not compared)."""

import contextlib

import openai
import pytest
import requests
from helpers.replays import assert_reports_replayed, server_reports
from helpers.servers import LOG_DIR, serve

from vllm_npu_graph.models import build_lora_adapter, cache_dir

pytestmark = pytest.mark.engine
# One server pair serves the base model's features and the LoRA adapters (each pair costs
# two engine starts): base-model requests carry no adapter, as on any LoRA deployment.
# A set KV-cache size skips the start-up profile run (its path: test_server.py).
ARGS = (
    *("--max-model-len", "512", "--max-num-seqs", "4", "--served-model-name", "smollm2"),
    *("--kv-cache-memory-bytes", str(256 << 20)),
)
PEER_ONLY = ("--enforce-eager",)  # the yardstick for output, not speed
PROMPT = "List three facts about the Moon:\n1."
LOGPROB_TOL = 0.05
LORA_SEEDS = (1, 2, 3)  # three adapters for two slots (--max-loras 2): slots get reused
LORA_PROMPTS = ["The capital of France is", "def fibonacci(n):", "Once upon a time,"]


@contextlib.contextmanager
def peer_and_ours(model, name: str, *args: str):
    """vLLM's CPU platform and ours serving `model` with the same options: their clients."""
    with contextlib.ExitStack() as stack:
        peer = stack.enter_context(serve(model, "auto", *args, *PEER_ONLY, name=name))
        ours = stack.enter_context(serve(model, "host", *args, name=name))
        yield {who: openai.OpenAI(base_url=f"{base}/v1", api_key="-") for who, base in (("ours", ours), ("peer", peer))}


@pytest.fixture(scope="module")
def adapters(default_model):
    return {
        f"adapter{seed}": build_lora_adapter(default_model, cache_dir() / "models" / f"lora-smollm2-seed{seed}", seed)
        for seed in LORA_SEEDS
    }


@pytest.fixture(scope="module")
def servers(default_model, adapters):
    lora = ("--enable-lora", "--max-loras", "2", "--max-lora-rank", "8", "--lora-modules")
    modules = [f"{name}={path}" for name, path in adapters.items()]
    with peer_and_ours(default_model, "lora", *ARGS, *lora, *modules) as clients:
        yield clients


def both(servers, kind: str, **kwargs):
    """The same request to each server: (ours, peer) responses."""
    kwargs.setdefault("model", "smollm2")
    call = (
        (lambda c: c.completions.create(**kwargs))
        if kind == "completion"
        else (lambda c: c.chat.completions.create(**kwargs))
    )
    return call(servers["ours"]), call(servers["peer"])


def texts(pair) -> tuple[list[str], list[str]]:
    def of(response):
        return [c.text if hasattr(c, "text") else c.message.content for c in response.choices]

    return of(pair[0]), of(pair[1])


def test_logprobs_echo_and_prompt_logprobs(servers):
    ours, peer = both(
        servers,
        "completion",
        prompt=PROMPT,
        max_tokens=16,
        temperature=0,
        logprobs=3,
        echo=True,
        extra_body={"prompt_logprobs": 1},
    )
    assert ours.choices[0].text == peer.choices[0].text
    a, b = ours.choices[0].logprobs, peer.choices[0].logprobs
    assert a.tokens == b.tokens
    pairs = [(x, y) for x, y in zip(a.token_logprobs, b.token_logprobs) if x is not None]
    assert len(pairs) > 16 and max(abs(x - y) for x, y in pairs) < LOGPROB_TOL
    for top_a, top_b in zip(a.top_logprobs[1:], b.top_logprobs[1:]):
        common = set(top_a) & set(top_b)  # all of them, but at a near-tie for the last place
        assert len(top_a) == len(top_b) and len(common) >= max(1, len(top_a) - 1), (top_a, top_b)
        assert max(abs(top_a[t] - top_b[t]) for t in common) < LOGPROB_TOL, (top_a, top_b)
    prompt_a, prompt_b = (r.choices[0].model_extra["prompt_logprobs"] for r in (ours, peer))
    assert len(prompt_a) == len(prompt_b) > 5 and prompt_a[0] is None
    for at_a, at_b in zip(prompt_a[1:], prompt_b[1:]):
        common = set(at_a) & set(at_b)  # the prompt token at least
        assert common and max(abs(at_a[t]["logprob"] - at_b[t]["logprob"]) for t in common) < LOGPROB_TOL


@pytest.mark.parametrize(
    "options",
    [
        {"stop": [".", "\n2"]},
        {"extra_body": {"min_tokens": 20, "ignore_eos": True}, "max_tokens": 24},
        {"presence_penalty": 1.5, "frequency_penalty": 0.8},
        {"extra_body": {"repetition_penalty": 1.3}},
        {"logit_bias": {"30": 20}},
        {"extra_body": {"bad_words": [" Moon", " the"]}},
        {"extra_body": {"allowed_token_ids": list(range(200, 900))}},
        {"extra_body": {"structured_outputs": {"choice": ["round", "flat", "hollow"]}}},
        {"extra_body": {"structured_outputs": {"regex": r"[0-9]{3}-[a-z]{4}"}}},
    ],
    ids=["stop", "min-tokens", "penalties", "repetition", "logit-bias", "bad-words", "allowed-ids", "choice", "regex"],
)
def test_sampling_features_give_the_peers_greedy_text(servers, options):
    options = {"max_tokens": 32, **options}
    ours, peer = texts(both(servers, "completion", prompt=PROMPT, temperature=0, **options))
    assert ours == peer
    if "bad_words" in str(options):
        assert " Moon" not in ours[0]


def test_json_schema_chat_and_beam_search(servers):
    schema = {
        "type": "object",
        "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
        "required": ["name", "age"],
    }
    ours, peer = texts(
        both(
            servers,
            "chat",
            messages=[{"role": "user", "content": "Invent a person."}],
            max_tokens=48,
            temperature=0,
            response_format={"type": "json_schema", "json_schema": {"name": "person", "schema": schema}},
        )
    )
    assert ours == peer and '"age"' in ours[0]
    ours, peer = texts(
        both(servers, "completion", prompt=PROMPT, max_tokens=12, n=2, extra_body={"use_beam_search": True})
    )
    assert ours == peer and len(ours) == 2


def test_streaming_with_usage_equals_the_whole_answer(servers):
    client = servers["ours"]
    whole = client.completions.create(model="smollm2", prompt=PROMPT, max_tokens=20, temperature=0)
    chunks = list(
        client.completions.create(
            model="smollm2",
            prompt=PROMPT,
            max_tokens=20,
            temperature=0,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert "".join(c.choices[0].text for c in chunks if c.choices) == whole.choices[0].text
    assert chunks[-1].usage.completion_tokens == 20 == whole.usage.completion_tokens


def test_tokenize_and_seeded_sampling(servers):
    base = {name: str(client.base_url).removesuffix("/v1/") for name, client in servers.items()}
    tokens = [
        requests.post(f"{b}/tokenize", json={"model": "smollm2", "prompt": PROMPT}).json()["tokens"]
        for b in base.values()
    ]
    assert tokens[0] == tokens[1]
    seeded = [
        servers["ours"]
        .completions.create(model="smollm2", prompt=PROMPT, max_tokens=24, temperature=1.0, seed=7)
        .choices[0]
        .text
        for _ in range(2)
    ]
    assert seeded[0] == seeded[1]


@pytest.fixture(scope="module")
def embedders(default_model):
    with peer_and_ours(default_model, "embed", *ARGS, "--runner", "pooling", "--convert", "embed") as clients:
        yield clients


def test_embeddings_equal_the_peers(embedders):
    import torch

    inputs = ["The capital of France is Paris.", "def f(x):\n    return x * 2", "hello " * 50]
    got = {
        name: torch.tensor([d.embedding for d in client.embeddings.create(model="smollm2", input=inputs).data])
        for name, client in embedders.items()
    }
    assert got["ours"].shape == (3, 576)
    torch.testing.assert_close(got["ours"], got["peer"], atol=1e-4, rtol=1e-4)
    assert (got["ours"][0] - got["ours"][1]).abs().max() > 1e-2  # distinct inputs, distinct embeddings
    (report,) = server_reports(str(embedders["ours"].base_url).rstrip("/").removesuffix("/v1"))
    assert report["compile"], report  # the decoder was compiled by our backend (or loaded from its cache)
    assert report["coverage"]["replayed_steps"] == {} and report["capture"] == [], report  # pooling: no decode graphs


def test_lora_adapters_give_the_peers_greedy_text_and_logprobs(servers):
    """One request at a time (the peer's CPU LoRA path adds a wrong delta to base-model
    rows batched beside adapter rows: vLLM PR #48421), every adapter in turn."""
    assert {"smollm2", *(f"adapter{s}" for s in LORA_SEEDS)} <= {m.id for m in servers["ours"].models.list().data}
    answers = {}
    for model in ("adapter1", "smollm2", "adapter2", "adapter3", "adapter1"):
        ours, peer = both(servers, "completion", model=model, prompt=PROMPT, max_tokens=16, temperature=0, logprobs=1)
        assert ours.choices[0].text == peer.choices[0].text, model
        pairs = zip(ours.choices[0].logprobs.token_logprobs, peer.choices[0].logprobs.token_logprobs)
        assert max(abs(x - y) for x, y in pairs) < LOGPROB_TOL, model
        answers[model] = ours.choices[0].text
    assert len(set(answers.values())) > 1  # the adapters change the answer: the comparison could fail


def test_lora_batches_of_base_and_adapters_equal_merged_hugging_face(default_model, adapters, servers):
    """Ours only: base-model and adapter requests sent at once share batches (decode
    graphs captured with vLLM's dummy adapters before any real one loaded); each
    request's greedy tokens equal Hugging Face's on the base model with that adapter
    merged into its weights."""
    from concurrent.futures import ThreadPoolExecutor

    from helpers.lora_reference import merged_greedy_ids
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(default_model))
    ids = [tok(p)["input_ids"] for p in LORA_PROMPTS]
    names = [None, *adapters]
    want = {
        (name, prompt): tokens
        for name in names
        for prompt, tokens in zip(LORA_PROMPTS, merged_greedy_ids(default_model, adapters.get(name), ids, 12))
    }

    def ask(key):
        name, prompt = key
        reply = servers["ours"].completions.create(
            model=name or "smollm2",
            prompt=prompt,
            max_tokens=12,
            temperature=0,
            extra_body={"ignore_eos": True, "return_token_ids": True},
        )
        return reply.choices[0].model_extra["token_ids"]

    with ThreadPoolExecutor(len(want)) as pool:
        got = dict(zip(want, pool.map(ask, want)))
    assert got == want
    assert sum(want[(n, p)] != want[(None, p)] for n in adapters for p in LORA_PROMPTS) >= 4
    log = (LOG_DIR / "vllm_npu_graph_lora_host.log").read_text()
    assert "captured 6 graph(s) [1, 2, 4]" in log  # each size with and without active adapters
    reports = server_reports(str(servers["ours"].base_url).rstrip("/").removesuffix("/v1"))
    assert_reports_replayed(reports)
    replayed = reports[0]["coverage"]["replayed_steps"]  # graphs with and without adapters both served
    assert any("LoRA" in g for g in replayed) and any("LoRA" not in g for g in replayed), replayed


def test_lora_sampling_follows_the_merged_model(default_model, adapters, servers):
    """Continuations sampled from an adapter in graph mode follow Hugging Face's base
    model with that adapter merged (helpers/sampling_stats.py)."""
    from helpers import sampling_stats
    from helpers.lora_reference import merged_model
    from helpers.sampling_runs import served_sampling_run

    samples = served_sampling_run(servers["ours"], "adapter2", default_model)
    stats = sampling_stats.check(merged_model(default_model, adapters["adapter2"]), samples)
    print(f"LoRA adapter2: {stats}")
    sampling_stats.assert_faithful(stats)
