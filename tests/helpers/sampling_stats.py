"""Sampling faithfulness: do sampled tokens follow the model's own probabilities?

Two statistics, each with a p-value; tests fail below a false-alarm rate (1e-4) and
use fixed seeds, so CI never flakes:
- `chi_square_p_value`: observed counts of one position's tokens against the model's
  probabilities (Pearson, cells of expected count < 5 pooled).
- `pit_p_value`: for whole sampled continuations, each token's randomized probability
  integral transform under the model's conditional distribution given its prefix
  (teacher-forced); under a faithful sampler these are independent U(0, 1), which a
  chi-square over equal bins tests. This covers speculative steps, where several tokens
  of one step come from rejection sampling.
"""

import torch


def chi_square_p_value(counts: torch.Tensor, probs: torch.Tensor, min_expected: float = 5.0) -> float:
    counts, probs = counts.double().flatten(), probs.double().flatten()
    n = counts.sum()
    expected = probs * n
    if (counts[probs == 0] > 0).any():
        return 0.0  # a token the model gives no probability
    big = expected >= min_expected
    obs = torch.cat([counts[big], counts[~big].sum().reshape(1)])
    exp = torch.cat([expected[big], expected[~big].sum().reshape(1)])
    if exp[-1] < min_expected:  # pool the small cells into the smallest big one
        obs, exp = obs[:-1].clone(), exp[:-1].clone()
        j = int(exp.argmin())
        obs[j] += counts[~big].sum()
        exp[j] += expected[~big].sum()
    stat = float(((obs - exp) ** 2 / exp).sum())
    dof = len(exp) - 1
    return chi_square_survival(stat, dof) if dof > 0 else 1.0


def chi_square_survival(stat: float, dof: int) -> float:
    return float(torch.special.gammaincc(torch.tensor(dof / 2, dtype=torch.float64), torch.tensor(stat / 2)))


def pit_values(probs: torch.Tensor, tokens: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """probs [n, vocab] the model's distributions, tokens [n] sampled from them:
    F(t - 1) + V * p(t), V ~ U(0, 1)."""
    p = probs.gather(-1, tokens[:, None]).squeeze(-1)
    cdf_before = probs.cumsum(-1).gather(-1, tokens[:, None]).squeeze(-1) - p
    v = torch.rand(tokens.shape[0], generator=generator, dtype=probs.dtype)
    return (cdf_before + v * p).clamp(0, 1)


def uniformity_p_value(u: torch.Tensor, bins: int = 20) -> float:
    counts = torch.histc(u.double(), bins=bins, min=0.0, max=1.0)
    return chi_square_p_value(counts, torch.full((bins,), 1.0 / bins))


def sampled_probs(logits: torch.Tensor, temperature: float, top_k: int = 0, top_p: float = 1.0, min_p: float = 0.0):
    """The distribution vLLM samples from for these parameters (temperature, then the
    min-p, top-k and top-p masks, in vLLM's order), per row of `logits`."""
    probs = (logits.double() / temperature).softmax(-1)
    if min_p:
        probs = torch.where(probs < min_p * probs.amax(-1, keepdim=True), 0.0, probs)
    if top_k:
        kth = probs.topk(top_k, dim=-1).values[..., -1:]
        probs = torch.where(probs < kth, 0.0, probs)
    if top_p < 1.0:
        order = probs.sort(-1, descending=True)
        cut = order.values.cumsum(-1) - order.values >= top_p * probs.sum(-1, keepdim=True)
        probs = probs.scatter(-1, order.indices, torch.where(cut, 0.0, order.values))
    return probs / probs.sum(-1, keepdim=True)


def hf_logits(model, prompt_ids: list[int], continuations: list[list[int]]) -> list[torch.Tensor]:
    """The model's float32 logits before each continuation token, teacher-forced:
    one [len(continuation), vocab] tensor per continuation."""
    out = []
    with torch.no_grad():
        for cont in continuations:
            ids = torch.tensor([prompt_ids + cont[:-1]])
            logits = model(ids).logits[0, len(prompt_ids) - 1 :]
            out.append(logits.float())
    return out


def load_hf(model_dir):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32).eval()


def continuation_p_value(model, prompt_ids, continuations, temperature: float, top_k: int = 0) -> float:
    """Continuations sampled after `prompt_ids`: the p-value of their tokens' PIT values
    (under `model`'s distributions, teacher-forced) being uniform."""
    gen = torch.Generator().manual_seed(0)
    u = [
        pit_values(sampled_probs(logits, temperature, top_k), torch.tensor(c), gen)
        for logits, c in zip(hf_logits(model, prompt_ids, continuations), continuations)
    ]
    return uniformity_p_value(torch.cat(u))


def mean_logprob(model, prompt_ids, continuations) -> float:
    """The model's mean log-probability (temperature 1) of the sampled tokens."""
    total, n = 0.0, 0
    for logits, cont in zip(hf_logits(model, prompt_ids, continuations), continuations):
        total += float(logits.log_softmax(-1).gather(-1, torch.tensor(cont)[:, None]).sum())
        n += len(cont)
    return total / max(n, 1)


def repeat_share(continuations) -> float:
    """Share of tokens equal to the token before them (the garbage signature)."""
    pairs = [(a, b) for c in continuations for a, b in zip(c, c[1:])]
    return sum(a == b for a, b in pairs) / max(len(pairs), 1)


def repetition_penalized(logits: torch.Tensor, seen: list[int], penalty: float) -> torch.Tensor:
    """vLLM's repetition penalty on the tokens already seen (prompt and output)."""
    out = logits.clone()
    idx = torch.tensor(sorted(set(seen)))
    vals = out[..., idx]
    out[..., idx] = torch.where(vals > 0, vals / penalty, vals * penalty)
    return out


def check(model, samples: dict, tokenizer_dir=None) -> dict:
    """Every case of a sampling_runs.sampling_run() result against `model` (a loaded
    Hugging Face model, or one like it): {case: p-value}, plus the continuations' mean
    log-probability and repeat share for the record."""
    from helpers import sampling_runs as runs

    tok_dir = tokenizer_dir or model.name_or_path
    result = {}
    ids = runs.prompt_ids(tok_dir, runs.CONTINUATION_PROMPT)
    for name, conts in samples["continuations"].items():
        result[f"continuation {name}"] = continuation_p_value(model, ids, conts, **runs.CONTINUATION[name])
    conts = samples["continuations"]["temperature-1"]
    result["mean logprob"], result["repeat share"] = mean_logprob(model, ids, conts), repeat_share(conts)
    if samples["single_step"]:
        ids = runs.prompt_ids(tok_dir, runs.SINGLE_STEP_PROMPT)
        (logits,) = hf_logits(model, ids, [[0]])
        logits = logits[0]
        for name, tokens in samples["single_step"].items():
            p = dict(runs.SINGLE_STEP[name])
            penalty = p.pop("repetition_penalty", None)
            lg = repetition_penalized(logits, ids, penalty) if penalty else logits
            probs = sampled_probs(lg, **p)
            counts = torch.bincount(torch.tensor(tokens), minlength=probs.shape[-1])
            result[f"single step {name}"] = chi_square_p_value(counts, probs)
    return result


def assert_faithful(result: dict, false_alarm: float = 1e-4) -> None:
    failed = {k: v for k, v in result.items() if k.startswith(("continuation", "single step")) and v < false_alarm}
    assert not failed, f"sampled output does not follow the model (p < {false_alarm}): {failed}; all: {result}"
