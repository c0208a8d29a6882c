"""The soak's requests: a seeded plan of mixed OpenAI requests, and an asyncio client that
sends them at a fixed concurrency and records what came back (status, latency, the
generated token ids of every choice), with a timeout on every request.

Kinds (one `Spec` each): `greedy` / `greedy-stream` (completion, temperature 0, prompt
as token ids), `chat` / `chat-stream` (greedy), `disconnect` (a stream the client drops
after two chunks), `overlong` (`max_tokens` past the context: above the whole context a
400, from a prompt near its end an answer cut at the context; never a 5xx), `n` (n>1,
sampled), `seeded` (two requests with the same seed and prompt, sent apart: their text
must match), `burst` (identical prompts sent together: the prefix cache serves all but
the first)."""

import asyncio
import json
import random
import time
from dataclasses import asdict, dataclass, field

import aiohttp

GREEDY_KINDS = ("greedy", "greedy-stream", "chat", "chat-stream", "burst", "overlong")
# Requests per kind: the full soak, and --quick. Seeded counts pairs; burst is sent alone.
COUNTS = {
    "full": {
        "greedy": 90,
        "greedy-stream": 60,
        "chat": 20,
        "chat-stream": 20,
        "disconnect": 30,
        "overlong": 15,
        "n": 20,
        "seeded": 20,
        "burst": 32,
    },
    "quick": {
        "greedy": 8,
        "greedy-stream": 5,
        "chat": 2,
        "chat-stream": 2,
        "disconnect": 3,
        "overlong": 2,
        "n": 2,
        "seeded": 2,
        "burst": 6,
    },
}


@dataclass
class Spec:
    id: int
    kind: str
    path: str  # /v1/completions or /v1/chat/completions
    body: dict
    stream: bool = False
    drop_after_chunks: int | None = None  # disconnect kinds
    pair: int | None = None  # seeded: both requests of a pair share it
    prompt_len: int | None = None  # token-id prompts


@dataclass
class Result:
    id: int
    kind: str
    status: int | None = None  # HTTP status; None when no response came
    error: str | None = None  # client-side failure (timeout, reset), or the body of a non-200
    latency_s: float | None = None
    ttft_s: float | None = None
    dropped: bool = False  # the client closed the stream on purpose
    texts: list[str] = field(default_factory=list)  # per choice
    token_ids: list[list[int]] = field(default_factory=list)  # per choice
    finish_reasons: list[str | None] = field(default_factory=list)
    prompt_tokens: int | None = None


def prompt_lengths(rng: random.Random, count: int, longest: int) -> list[int]:
    """1 and `longest` always, the rest log-uniform in between (most prompts short,
    some long), so the mix covers the range without spending the run on prefill."""
    if count <= 2:
        return [1, longest][:count]
    lengths = [1, longest] + [max(1, round(longest ** rng.random())) for _ in range(count - 2)]
    rng.shuffle(lengths)
    return lengths


def token_prompt(rng: random.Random, length: int, vocab: tuple[int, int]) -> list[int]:
    return [rng.randrange(*vocab) for _ in range(length)]


def build_plan(
    preset: str,
    model: str,
    max_model_len: int,
    seed: int,
    longest_prompt: int = 1500,
    vocab: tuple[int, int] = (1000, 48000),
    words: list[str] | None = None,
) -> tuple[list[Spec], list[Spec]]:
    """(mixed, burst): the mixed requests in a seeded random order, and the burst."""
    counts = COUNTS[preset]
    rng = random.Random(seed)
    words = words or [f"w{i}" for i in range(500)]
    specs: list[Spec] = []

    def completion(kind: str, length: int, **body) -> Spec:
        ids = token_prompt(rng, length, vocab)
        stream = body.pop("stream", False)
        full = {"model": model, "prompt": ids, "return_token_ids": True, **body}
        if stream:
            full["stream"] = True
        return Spec(len(specs), kind, "/v1/completions", full, stream=stream, prompt_len=length)

    def chat(kind: str, stream: bool) -> Spec:
        text = " ".join(rng.choice(words) for _ in range(rng.randint(3, 120)))
        body = {
            "model": model,
            "messages": [{"role": "user", "content": text}],
            "temperature": 0,
            "max_tokens": rng.randint(16, 48),
            "return_token_ids": True,
        }
        if stream:
            body["stream"] = True
        return Spec(len(specs), kind, "/v1/chat/completions", body, stream=stream)

    greedy_lens = prompt_lengths(rng, counts["greedy"] + counts["greedy-stream"], longest_prompt)
    for i, length in enumerate(greedy_lens):
        kind = "greedy" if i < counts["greedy"] else "greedy-stream"
        specs.append(
            completion(
                kind,
                length,
                temperature=0,
                max_tokens=rng.randint(16, 48),
                ignore_eos=True,
                stream=kind == "greedy-stream",
            )
        )
    for kind in ("chat", "chat-stream"):
        for _ in range(counts[kind]):
            specs.append(chat(kind, kind == "chat-stream"))
    for length in prompt_lengths(rng, counts["disconnect"], longest_prompt):
        spec = completion("disconnect", length, temperature=0, max_tokens=64, ignore_eos=True, stream=True)
        spec.drop_after_chunks = 2
        specs.append(spec)
    for i in range(counts["overlong"]):
        if i % 2 == 0:  # more new tokens than the whole context: vLLM answers 400
            length, max_tokens = rng.randint(1, longest_prompt), max_model_len + rng.randint(1, 512)
        else:  # a prompt near the end of the context: the answer stops at the context (<= 48 tokens)
            length = rng.randint(max_model_len - 48, max_model_len - 8)
            max_tokens = max_model_len - length + rng.randint(1, 256)
        specs.append(completion("overlong", length, temperature=0, max_tokens=max_tokens))
    for _ in range(counts["n"]):
        specs.append(
            completion(
                "n",
                rng.randint(1, 400),
                n=rng.randint(2, 4),
                temperature=0.8,
                seed=rng.randrange(1 << 30),
                max_tokens=16,
            )
        )
    for pair in range(counts["seeded"]):
        first = completion(
            "seeded", rng.randint(1, 800), temperature=1.0, top_p=0.9, seed=rng.randrange(1 << 30), max_tokens=24
        )
        first.pair = pair
        second = Spec(len(specs) + 1, "seeded", first.path, dict(first.body), pair=pair, prompt_len=first.prompt_len)
        specs += [first, second]
    rng.shuffle(specs)
    burst_ids = token_prompt(rng, min(1000, longest_prompt), vocab)
    burst = [
        Spec(
            len(specs) + i,
            "burst",
            "/v1/completions",
            {
                "model": model,
                "prompt": burst_ids,
                "temperature": 0,
                "max_tokens": 16,
                "ignore_eos": True,
                "return_token_ids": True,
            },
            prompt_len=len(burst_ids),
        )
        for i in range(counts["burst"])
    ]
    return specs, burst


def greedy_replay(spec: Spec) -> Spec:
    """The same greedy request, non-streaming, to replay on the eager server."""
    body = {k: v for k, v in spec.body.items() if k != "stream"}
    return Spec(spec.id, spec.kind, spec.path, body, prompt_len=spec.prompt_len)


def _take_choices(result: Result, choices: list[dict], delta: bool) -> None:
    for choice in choices:
        i = choice.get("index", 0)
        while len(result.texts) <= i:
            result.texts.append("")
            result.token_ids.append([])
            result.finish_reasons.append(None)
        text = choice.get("text")
        if text is None:
            text = (choice.get("delta") or {}).get("content") if delta else (choice.get("message") or {}).get("content")
        result.texts[i] += text or ""
        result.token_ids[i] += choice.get("token_ids") or []
        if choice.get("finish_reason") is not None:
            result.finish_reasons[i] = choice["finish_reason"]


async def send(session: aiohttp.ClientSession, base: str, spec: Spec, timeout_s: float) -> Result:
    result = Result(spec.id, spec.kind)
    start = time.perf_counter()
    try:
        async with session.post(
            base + spec.path, json=spec.body, timeout=aiohttp.ClientTimeout(total=timeout_s)
        ) as resp:
            result.status = resp.status
            if resp.status != 200:
                result.error = (await resp.text())[:300]
            elif not spec.stream:
                body = await resp.json()
                _take_choices(result, body["choices"], delta=False)
                result.prompt_tokens = (body.get("usage") or {}).get("prompt_tokens")
            else:
                chunks = 0
                async for raw in resp.content:
                    line = raw.decode().strip()
                    if not line.startswith("data: ") or line == "data: [DONE]":
                        continue
                    if result.ttft_s is None:
                        result.ttft_s = time.perf_counter() - start
                    _take_choices(result, json.loads(line[len("data: ") :]).get("choices", []), delta=True)
                    chunks += 1
                    if spec.drop_after_chunks is not None and chunks >= spec.drop_after_chunks:
                        result.dropped = True
                        resp.close()  # drop the connection mid-stream, as a client that went away
                        break
    except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
        result.error = f"{type(exc).__name__}: {exc}"[:300]
    result.latency_s = time.perf_counter() - start
    return result


async def run_specs(base: str, specs: list[Spec], concurrency: int, timeout_s: float) -> list[Result]:
    """Every spec, at most `concurrency` in flight; results in the specs' order."""
    gate = asyncio.Semaphore(concurrency)
    connector = aiohttp.TCPConnector(limit=concurrency, force_close=False)

    async with aiohttp.ClientSession(connector=connector) as session:

        async def one(spec: Spec) -> Result:
            async with gate:
                return await send(session, base, spec, timeout_s)

        return list(await asyncio.gather(*(one(s) for s in specs)))


def as_dicts(items) -> list[dict]:
    return [asdict(x) for x in items]
