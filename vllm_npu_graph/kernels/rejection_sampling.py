"""Speculative decoding's rejection sampling in torch: the host target's implementations
of the four Triton kernels of vLLM's rejection sampler, called with their launch
arguments through vLLM's kernel-override registry.

vLLM CPU's C++ twins are not used: its `expand_kernel` twin writes into an int64 copy
of a float output and drops it, so every sampled speculative step divided the logits
by uninitialised memory (temperature), and top-k / top-p were lost the same way.

Each kernel works on the whole batch at once: tokens are laid out request after
request (`cu_num_draft_tokens`), and a request stops at its first rejected draft.
"""

import torch


def _counts(cu_num_tokens: torch.Tensor) -> torch.Tensor:
    cu = cu_num_tokens.long()
    return cu - torch.cat([cu.new_zeros(1), cu[:-1]])


def _token_layout(cu_num_tokens: torch.Tensor, max_len: int):
    """(counts per request, [batch, max_len] index of each position's token, valid mask)."""
    counts = _counts(cu_num_tokens)
    starts = cu_num_tokens.long() - counts
    pos = torch.arange(max_len, device=counts.device)
    valid = pos < counts[:, None]
    index = torch.where(valid, starts[:, None] + pos, 0)
    return counts, index, valid


def _write_until_first_rejection(output, rows, accepted, valid, tokens, counts, bonus_token_ids) -> None:
    """For each row in `rows`: the tokens up to and including the first rejected
    position, then the bonus token when no draft was rejected."""
    width = valid.shape[1]
    pos = torch.arange(width, device=valid.device)
    rejected_at = torch.where(valid & ~accepted, pos, width)
    first = torch.minimum(rejected_at.amin(1), counts) if width else counts  # first rejection, or n
    keep = valid & (pos <= first[:, None]) & rows[:, None]
    view = output[:, :width]
    view.copy_(torch.where(keep, tokens.to(output.dtype), view))
    all_accepted = rows & (first == counts)
    ids = all_accepted.nonzero().flatten()
    output[ids, counts[ids]] = bonus_token_ids.reshape(-1)[ids].to(output.dtype)


def rejection_greedy_sample(
    output_token_ids,  # [batch, max_spec_len + 1]
    cu_num_draft_tokens,  # [batch]
    draft_token_ids,  # [num_tokens]
    target_argmax,  # [num_tokens]
    bonus_token_ids,  # [batch, 1]
    is_greedy,  # [batch] or None (all greedy)
    max_spec_len,
    uniform_probs=None,  # [num_tokens], synthetic mode only
    synthetic_conditional_rates=None,  # [max_spec_len], synthetic mode only
    SYNTHETIC_MODE=False,
) -> None:
    """Greedy rows: the target's argmax at each position while the draft equals it."""
    counts, index, valid = _token_layout(cu_num_draft_tokens, max_spec_len)
    draft = draft_token_ids.long()[index]
    argmax = target_argmax.long()[index]
    if SYNTHETIC_MODE:
        accepted = (uniform_probs[index] < synthetic_conditional_rates[: index.shape[1]]) & (draft >= 0)
        tokens = torch.where(accepted, draft, argmax)
    else:
        accepted, tokens = draft == argmax, argmax
    rows = torch.ones_like(counts, dtype=torch.bool) if is_greedy is None else is_greedy.bool()
    _write_until_first_rejection(output_token_ids, rows, accepted, valid, tokens, counts, bonus_token_ids)


def rejection_random_sample(
    output_token_ids,  # [batch, max_spec_len + 1]
    cu_num_draft_tokens,  # [batch]
    draft_token_ids,  # [num_tokens]
    draft_probs,  # [num_tokens, vocab] or None (a deterministic draft: probability 1)
    target_probs,  # [num_tokens, vocab]
    bonus_token_ids,  # [batch, 1]
    recovered_token_ids,  # [num_tokens]
    uniform_probs,  # [num_tokens]
    is_greedy,  # [batch]
    max_spec_len,
    vocab_size,
    synthetic_conditional_rates=None,
    NO_DRAFT_PROBS=False,
    SYNTHETIC_MODE=False,
) -> None:
    """Sampled rows: a draft token t is kept with probability min(1, p(t) / q(t)); the
    first rejected position takes its recovered token (drawn from max(p - q, 0)).
    A negative draft id is padding and always rejected."""
    counts, index, valid = _token_layout(cu_num_draft_tokens, max_spec_len)
    draft = draft_token_ids.long()[index]
    u = uniform_probs[index]
    if SYNTHETIC_MODE:
        accepted = u < synthetic_conditional_rates[: index.shape[1]]
    else:
        safe = draft.clamp(min=0)
        p = target_probs[index, safe]
        q = torch.ones_like(p) if NO_DRAFT_PROBS or draft_probs is None else draft_probs[index, safe]
        accepted = (q > 0) & (p / q.clamp(min=torch.finfo(q.dtype).tiny) >= u)
    accepted = accepted & (draft >= 0)
    tokens = torch.where(accepted, draft, recovered_token_ids.long()[index])
    _write_until_first_rejection(output_token_ids, ~is_greedy.bool(), accepted, valid, tokens, counts, bonus_token_ids)


def expand(output, input, cu_num_tokens, replace_from, replace_to, MAX_NUM_TOKENS=None) -> None:
    """output[token] = input[its request], with `replace_from` replaced by `replace_to`."""
    counts = _counts(cu_num_tokens)
    values = torch.where(input == replace_from, torch.full_like(input, replace_to), input)
    n = output.shape[0]
    output.copy_(torch.repeat_interleave(values, counts, output_size=n))


def sample_recovered_tokens(
    output_token_ids,  # [num_tokens]
    cu_num_draft_tokens,  # [batch]
    draft_token_ids,  # [num_tokens]
    draft_probs,  # [num_tokens, vocab] or None
    target_probs,  # [num_tokens, vocab]
    inv_q,  # [batch, vocab]: 1 / Exp(1) noise, one row per request
    vocab_size,
    BLOCK_SIZE=None,
    NO_DRAFT_PROBS=False,
    USE_FP64_GUMBEL=False,
) -> None:
    """The token drawn from max(p - q, 0) (p without the draft token when the draft is
    deterministic), by the exponential race: argmax of weight / Exp(1)."""
    n = output_token_ids.shape[0]
    if n == 0:
        return
    counts = _counts(cu_num_draft_tokens)
    req = torch.repeat_interleave(torch.arange(counts.shape[0], device=counts.device), counts, output_size=n)
    if NO_DRAFT_PROBS or draft_probs is None:
        draft = draft_token_ids.long()[:, None]
        vocab = torch.arange(target_probs.shape[1], device=draft.device)
        weight = target_probs.masked_fill(vocab == draft, 0.0)  # a padded draft (-1) masks nothing
    else:
        weight = (target_probs - draft_probs).clamp(min=0)
    score = weight.to(inv_q.dtype) * inv_q[req]
    output_token_ids.copy_(score.argmax(1).to(output_token_ids.dtype))


KERNEL_OVERRIDES = {
    f"vllm.v1.sample.rejection_sampler.{name}": impl
    for name, impl in {
        "rejection_greedy_sample_kernel": rejection_greedy_sample,
        "rejection_random_sample_kernel": rejection_random_sample,
        "expand_kernel": expand,
        "sample_recovered_tokens_kernel": sample_recovered_tokens,
    }.items()
}
