"""The batch-1 decode floor of a machine: a decode step reads every weight it uses once,
so no implementation that reads them as stored is faster than (weight bytes a token) /
(the machine's read bandwidth). host_speed.py prints it beside the peer's time per token,
so a ratio goal that lies below the floor on a given VM shows as such.

Weight bytes a token, from the checkpoint's safetensors headers and config.json: every
tensor, except that an untied input embedding is read one row a token (not counted), and
a mixture-of-experts layer reads top_k of its routed experts (their bytes x top_k /
experts); shared experts count whole. Read bandwidth: torch's sum over a 1 GiB float32
buffer (larger than any last-level cache seen here), best of a few runs.
"""

import json
import struct
import time
from pathlib import Path

FLOATS = {"F32": 4, "F16": 2, "BF16": 2}


def tensor_bytes(model_dir: str | Path, float_bytes: int | None = None) -> dict[str, int]:
    """name -> bytes, for every tensor of the folder's safetensors files: as stored, or
    for floating-point tensors at `float_bytes` an element (the dtype the engine casts
    the checkpoint to)."""
    sizes = {}
    for path in sorted(Path(model_dir).glob("*.safetensors")):
        with open(path, "rb") as f:
            (length,) = struct.unpack("<Q", f.read(8))
            header = json.loads(f.read(length))
        for name, info in header.items():
            if name == "__metadata__":
                continue
            start, end = info["data_offsets"]
            stored = FLOATS.get(info["dtype"])
            sizes[name] = (end - start) // stored * float_bytes if stored and float_bytes else end - start
    return sizes


def weight_bytes_per_token(model_dir: str | Path, float_bytes: int | None = None) -> int:
    config = json.loads((Path(model_dir) / "config.json").read_text())
    experts = config.get("num_experts") or config.get("num_local_experts") or 0
    top_k = config.get("num_experts_per_tok") or 0
    sizes = tensor_bytes(model_dir, float_bytes)
    has_head = any(name.endswith("lm_head.weight") for name in sizes)
    total = 0.0
    for name, size in sizes.items():
        if name.endswith("embed_tokens.weight") and has_head:
            continue  # one row a token; the LM head is read whole
        if experts and ".experts." in name:
            total += size * top_k / experts  # routed experts: top_k of them a token
        else:
            total += size
    return int(total)


def read_bandwidth(threads: int, gib: float = 1.0, runs: int = 5) -> float:
    """Bytes a second that `threads` torch threads stream through a sum (best run)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        buffer = torch.ones(int(gib * (1 << 30)) // 4)
        buffer.sum()
        best = float("inf")
        for _ in range(runs):
            start = time.perf_counter()
            buffer.sum()
            best = min(best, time.perf_counter() - start)
        return buffer.numel() * 4 / best
    finally:
        torch.set_num_threads(before)
