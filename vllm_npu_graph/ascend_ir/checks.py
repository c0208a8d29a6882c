"""What makes the triton-ascend check fail, per kernel x specialisation and overall."""

import importlib
import pkgutil

import vllm_npu_graph.kernels as kernels_pkg

# Everything but prefill runs on every decode step: no access there may be unstructured
# (a scalar loop per element on Ascend) or lose its mask to a full-tile select.
PREFILL_ONLY = {"_prefill_kernel"}


def row_problems(row) -> list:
    tag = f"{row['kernel']} [{row['spec']}]"
    if not row["lowered"]:
        return [f"{tag} does not lower through triton-ascend: {row['error']}"]
    out = []
    if row["uses_dot"] and (row["mix_mode"] not in ("aic", "mix") or row["matmuls"] == 0):
        out.append(
            f"{tag} uses tl.dot but reaches no cube core (mix_mode={row['mix_mode']}, {row['matmuls']} linalg matmuls)"
        )
    if not row["uses_dot"] and row["mix_mode"] != "aiv":
        out.append(f"{tag} is vector-only but mix_mode={row['mix_mode']}")
    if row["kernel"] not in PREFILL_ONLY:
        out += [f"{tag} unstructured access on the decode path: {s}" for s in row["unstructured"]]
        out += [f"{tag} discrete mask on the decode path: {s}" for s in row["discrete_masks"]]
    return out


def kernel_modules():
    """Every `kernels/*_triton.py` module: a new kernel file is covered automatically."""
    return [
        importlib.import_module(f"{kernels_pkg.__name__}.{m.name}")
        for m in pkgutil.iter_modules(kernels_pkg.__path__)
        if m.name.endswith("_triton")
    ]


def called_jit(kernel) -> list:
    """@triton.jit functions a kernel's body calls (by name, in its module)."""
    from triton.runtime.jit import JITFunction

    words = set(kernel.src.replace("(", " ").replace(",", " ").split())
    return [
        v for k, v in kernel.fn.__globals__.items() if isinstance(v, JITFunction) and k in words and v is not kernel
    ]


def unlaunched(launched) -> list:
    """@triton.jit functions of our kernel modules that no recorded launch compiles,
    directly or as a helper: kernels the check would silently miss."""
    from triton.runtime.jit import JITFunction

    reached, todo = set(), list(launched)
    while todo:
        fn = todo.pop()
        if id(fn) not in reached:
            reached.add(id(fn))
            todo += called_jit(fn)
    return sorted(
        f"{m.__name__}.{name}"
        for m in kernel_modules()
        for name, v in vars(m).items()
        if isinstance(v, JITFunction) and id(v) not in reached
    )
