"""Which padded sizes get a graph, within a cap on the number of graphs.

A device limits how many graphs one process may hold (Ascend: stream resources,
error 207008), and each graph costs capture time and memory. A decode batch of b
requests runs the graph of the smallest kept size >= b, so what matters is padding
waste: we keep the sizes that minimise the worst relative padding (s - b) / b over
every batch 1 .. largest, which comes out dense at the low end and geometric above.
"""


def pad_to(b: int, kept: list[int]) -> int:
    return next(s for s in kept if s >= b)


def worst_padding(kept: list[int]) -> tuple[float, int]:
    """(worst (s - b) / b over batches 1 .. max(kept), the batch where it happens)."""
    worst, at, prev = 0.0, 1, 0
    for s in sorted(kept):
        b = prev + 1  # the smallest batch padded to s pads the most
        if (s - b) / b > worst:
            worst, at = (s - b) / b, b
        prev = s
    return worst, at


def _greedy(largest: int, ratio: float) -> list[int]:
    """Fewest sizes covering 1 .. largest with padding <= ratio: each kept size is as
    large as the smallest batch it must serve allows. Size 1 is always kept: a lone
    request is the latency case, and doubling its work would be the worst trade."""
    kept, b = [1], 2
    while b <= largest:
        s = min(largest, int(b * (1 + ratio) + 1e-9))
        kept.append(s)
        b = s + 1
    return kept


def choose_capture_sizes(sizes: list[int], limit: int | None, largest: int | None = None) -> list[int]:
    """At most `limit` sizes (any integers up to the largest) with the smallest worst
    padding; size 1 and the largest size are always kept, so every batch up to it has
    a graph (with a limit of 1, only the largest: it still serves every batch).
    `largest` caps the sizes (decode batches never exceed max_num_seqs)."""
    sizes = sorted(set(sizes))
    sizes = [s for s in sizes if largest is None or s <= largest] or sizes[:1]
    if not limit or len(sizes) <= limit:
        return sizes
    if limit == 1:
        return sizes[-1:]
    top = sizes[-1]
    lo, hi = 0.0, float(top)
    for _ in range(60):  # bisect the ratio: the count of sizes needed falls as it grows
        mid = (lo + hi) / 2
        if len(_greedy(top, mid)) <= limit:
            hi = mid
        else:
            lo = mid
    return _greedy(top, hi)
