"""Bench only: hold vLLM's own CPU platform (the peer) to a lower x86 tier, as
`VLLM_NPU_GRAPH_HOST_ISA` holds ours, so a forced-tier comparison is like for like.

vLLM's CPU platform picks its kernel build from torch's CPU queries; on this path (put
on PYTHONPATH by bench/host_speed.py --host-isa for the peer's processes only) those
queries answer for the forced tier. ATen and Inductor get the tier from their own
variables, set by the bench beside this.
"""

import os

_TIER = os.environ.get("NPU_GRAPH_BENCH_PEER_ISA", "")
if _TIER in ("avx2", "avx512"):
    import torch.cpu

    torch.cpu._is_avx512_bf16_supported = lambda: False
    if _TIER == "avx2":
        torch.cpu._is_avx512_supported = lambda: False
