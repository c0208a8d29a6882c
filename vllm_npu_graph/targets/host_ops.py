"""The host target's C++ ops (host_ops.cpp), built once per machine and torch version
with torch's extension builder into our cache folder (~10 s), then loaded. The build is
for the host's CPU tier (host_isa.py: exactly its instructions, never -march=native): a
linear of 1-4 rows is our own kernel on AVX-512 and on AVX2 + FMA, and a
batch-1 W8A8 linear our int8 one (`int8_linear`, on the int8 weight as loaded); W8A8's
fused quantize ops (RMSNorm / add + RMSNorm / SwiGLU + per-token int8) are C++ too.

A replayed host graph is Python calling ops: the compiled graph's ~120 GEMM calls a
step would each cost a Python kernel frame (~4 us) on the `npu_graph::linear` path. The
host lowering rewrites them to `npu_graph_host::linear`, whose kernel is C++; the LM
head (outside the graph) reaches the same op through the native kernel choice. Without
a C++ compiler the build fails once, is logged, and linears run unpacked (F.linear).
"""

import hashlib
from functools import cache
from pathlib import Path

import torch
import torch.fx as fx

from vllm_npu_graph.log import get_logger

logger = get_logger(__name__)

SOURCE = Path(__file__).with_suffix(".cpp")
NAME = "host_linear"  # the lowering step's name in the pass log


def build_dir(flags: list[str]) -> Path:
    """One folder per source, torch version, CPU (its flag line) and the tier's flags: a
    build made on one CPU is never reused on another that shares the cache folder."""
    from vllm_npu_graph.models import cache_dir
    from vllm_npu_graph.targets.host_isa import cpu_flag_line

    key = SOURCE.read_bytes() + torch.__version__.encode() + cpu_flag_line() + " ".join(flags).encode()
    return cache_dir() / "host_ops" / hashlib.sha256(key).hexdigest()[:12]


@cache
def load() -> bool:
    """Build (first time) and load the C++ ops; False, logged, if that fails."""
    import vllm._custom_ops  # noqa: F401  (the _C ops our kernels call)
    from torch.utils.cpp_extension import load as load_extension

    from vllm_npu_graph.targets import host_isa

    flags = host_isa.current().op_flags
    folder = build_dir(flags)
    folder.mkdir(parents=True, exist_ok=True)
    try:
        load_extension(
            name=f"npu_graph_host_ops_{folder.name}",
            sources=[str(SOURCE)],
            build_directory=str(folder),
            extra_cflags=flags,
            extra_ldflags=["-fopenmp"],
            is_python_module=False,
        )
    except Exception as exc:  # no compiler, or headers missing: linears run unpacked
        logger.warning(
            "npu_graph: the host target's C++ ops could not be built (%s: %s); linear layers run "
            "unpacked (F.linear, 2-3x slower at decode sizes).",
            type(exc).__name__,
            str(exc).splitlines()[0][:200],
        )
        return False
    torch.library.register_fake("npu_graph_host::linear")(
        lambda x, weight, bias: x.new_empty(*x.shape[:-1], weight.shape[0])
    )
    torch.library.register_fake("npu_graph_host::int8_linear")(
        lambda x_q, x_scale, w, w_scale, bias, out_dtype: x_q.new_empty(x_q.shape[0], w.shape[0], dtype=out_dtype)
    )
    from vllm_npu_graph.ops import quant

    for name, fake in quant.FUSED_FAKES.items():  # same schemas as ours
        torch.library.register_fake(f"npu_graph_host::{name}")(fake)
    return True


def lower_linear(graph: fx.Graph) -> int:
    """npu_graph::linear -> npu_graph_host::linear, npu_graph::int8_linear on an int8
    weight as loaded -> npu_graph_host::int8_linear, and the fused quantize ops to
    theirs (same schemas, C++ kernels)."""
    from vllm_npu_graph.ops import quant

    fused = {
        getattr(torch.ops.npu_graph, n).default: getattr(torch.ops.npu_graph_host, n).default for n in quant.FUSED_FAKES
    }
    count = 0
    for node in graph.nodes:
        if node.op != "call_function":
            continue
        if node.target is torch.ops.npu_graph.linear.default:
            node.target = torch.ops.npu_graph_host.linear.default
            count += 1
        elif node.target is torch.ops.npu_graph.int8_linear.default and _int8_weight(node.args[2]):
            node.target = torch.ops.npu_graph_host.int8_linear.default
            count += 1
        elif node.target in fused:
            node.target = fused[node.target]
            count += 1
    return count


def _int8_weight(node) -> bool:
    value = node.meta.get("val") if isinstance(node, fx.Node) else None
    return value is not None and value.dtype == torch.int8


if __name__ == "__main__":  # `make model` builds them ahead of the first engine start
    import sys

    sys.exit(0 if load() else 1)
