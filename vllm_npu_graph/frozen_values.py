"""What a device graph freezes at capture, made explicit for the host target.

A device graph (ACL NPUGraph, CUDA graph) replays the kernels it recorded, with the
host values of capture time: Python ints read from the attention metadata, kernel and
grid choices. Its only live inputs are the device buffers it read. The host graph
re-runs Python at each replay, so it must be told what to freeze:

- `FrozenForwardContext` records which attention-metadata fields the captured code
  read (and which function read them), replays with the captured metadata (as the
  device would), and in strict mode raises when a replay's live value differs from
  the captured one or a live tensor no longer sits at the captured address.
- `no_host_sync` watches a capture for host reads of tensor data (`.item()`,
  `.tolist()`, `bool(t)`, ...), which a device capture rejects.

Strict mode (`VLLM_NPU_GRAPH_STRICT_GRAPHS=1`, on in the test suite) turns every
mismatch into an error; otherwise each kind is logged once and the device behaviour
(captured values) is kept.
"""

import contextlib
import os
import sys

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from vllm_npu_graph import envs
from vllm_npu_graph.envs import STRICT_GRAPHS as STRICT_ENV
from vllm_npu_graph.log import get_logger

logger = get_logger(__name__)


class GraphFaithfulnessError(RuntimeError):
    """Host graph code did something a device graph can't (strict mode)."""


def strict_graphs() -> bool:
    return envs.read(STRICT_ENV)


_warned: set[str] = set()


def violation(message: str) -> None:
    """Raise in strict mode, else log each distinct message once."""
    if strict_graphs():
        raise GraphFaithfulnessError(message)
    if message not in _warned:
        _warned.add(message)
        logger.warning("npu_graph: %s (a device graph would use the captured value)", message)


def _caller(depth: int = 2) -> str:
    """The function (outside this module and torch) that made the current call."""
    frame = sys._getframe(depth)
    while frame is not None:
        name = frame.f_code.co_filename
        if name != __file__ and f"{os.sep}torch{os.sep}" not in name:
            return f"{frame.f_code.co_qualname} ({os.path.basename(name)}:{frame.f_lineno})"
        frame = frame.f_back
    return "<unknown>"


def _snapshot(value):
    """How a read value is compared later: tensors by where they live, the rest by value."""
    if isinstance(value, torch.Tensor):
        return ("tensor", value.data_ptr(), tuple(value.shape), tuple(value.stride()), value.dtype)
    if isinstance(value, (list, tuple)):
        return tuple(_snapshot(v) for v in value)
    return value


class _RecordingMetadata:
    """Forwards attribute reads to the real metadata and records what was read, by whom."""

    def __init__(self, target, reads: dict) -> None:
        object.__setattr__(self, "_target", target)
        object.__setattr__(self, "_reads", reads)

    def __getattr__(self, name):
        value = getattr(self._target, name)
        if not callable(value) or isinstance(value, torch.Tensor):
            self._reads.setdefault(name, (_snapshot(value), _caller()))
        return value


class FrozenForwardContext:
    """The attention metadata a captured graph saw, and the fields it read."""

    def __init__(self, ctx) -> None:
        self.metadata = ctx.attn_metadata
        self.slot_mapping = ctx.slot_mapping
        self.reads: dict[int, dict] = {}  # id(metadata object) -> {field: (snapshot, reader)}
        # What each replay compares, fixed once capture has run: one layer per distinct
        # captured metadata object / slot-mapping tensor (layers of a KV group share
        # them), so a decode step checks a few values, not every layer.
        self.metadata_checks: list[tuple[str, dict]] = []
        self.slot_checks: list[tuple[str, tuple]] = []

    def _each(self, attn_metadata):
        if isinstance(attn_metadata, dict):
            yield from attn_metadata.items()

    def _first_layers(self, mapping) -> dict:
        """{layer: value} keeping the first layer of each distinct value."""
        firsts = {}
        for layer, value in self._each(mapping):
            if value is not None:
                firsts.setdefault(id(value), (layer, value))
        return dict(firsts.values())

    @contextlib.contextmanager
    def recording(self, ctx):
        """Run the capture with metadata that records every field read."""
        proxies = {}
        for _layer, meta in self._each(self.metadata):
            if meta is not None and id(meta) not in proxies:
                proxies[id(meta)] = _RecordingMetadata(meta, self.reads.setdefault(id(meta), {}))
        ctx.attn_metadata = (
            {layer: proxies.get(id(meta), meta) for layer, meta in self._each(self.metadata)}
            if isinstance(self.metadata, dict)
            else self.metadata
        )
        try:
            yield
        finally:
            ctx.attn_metadata = self.metadata
            self.metadata_checks = [
                (layer, self.reads[id(meta)])
                for layer, meta in self._first_layers(self.metadata).items()
                if self.reads.get(id(meta))
            ]
            self.slot_checks = [(layer, _snapshot(t)) for layer, t in self._first_layers(self.slot_mapping).items()]

    @contextlib.contextmanager
    def replaying(self, ctx):
        """Replay reads the captured metadata and slot mappings, as a device graph does."""
        self.check(ctx)
        live = ctx.attn_metadata, ctx.slot_mapping
        ctx.attn_metadata, ctx.slot_mapping = self.metadata, self.slot_mapping
        try:
            yield
        finally:
            ctx.attn_metadata, ctx.slot_mapping = live

    def check(self, ctx) -> None:
        """Each captured read against the live step's value (and slot-mapping addresses)."""
        live = ctx.attn_metadata if isinstance(ctx.attn_metadata, dict) else {}
        for layer, reads in self.metadata_checks:
            meta = live.get(layer)
            if meta is None:
                continue
            for field, (snap, reader) in reads.items():
                now = _snapshot(getattr(meta, field, None))
                if now != snap:
                    violation(
                        f"attention metadata '{field}' of {layer} changed since capture "
                        f"(captured {_describe(snap)}, live {_describe(now)}); read by {reader}"
                    )
        slots = ctx.slot_mapping if isinstance(ctx.slot_mapping, dict) else {}
        for layer, snap in self.slot_checks:
            tensor = slots.get(layer)
            if tensor is not None and _snapshot(tensor) != snap:
                violation(
                    f"slot mapping of {layer} is not at its captured address/shape; "
                    "the graph would read the captured buffer"
                )


def _describe(snap) -> str:
    if isinstance(snap, tuple) and snap and snap[0] == "tensor":
        return f"tensor at 0x{snap[1]:x} shape {list(snap[2])}"
    return repr(snap)


# Dispatcher ops that copy tensor data to the host (item, bool(t), int(t), ...) or whose
# output shape depends on it (nonzero, boolean masks: the device must tell the host).
_SYNC_OPS = {
    torch.ops.aten._local_scalar_dense.default,
    torch.ops.aten.item.default,
    torch.ops.aten.is_nonzero.default,
    torch.ops.aten.equal.default,
    torch.ops.aten.nonzero.default,
    torch.ops.aten.masked_select.default,
}
# Tensor methods that copy to the host without going through the dispatcher.
_SYNC_METHODS = {"Tensor.tolist", "TensorBase.tolist", "Tensor.numpy", "TensorBase.numpy"}
_CPU_ONLY = torch._C.DispatchKeySet(torch._C.DispatchKey.CPU)


class _HostSyncWatch(TorchDispatchMode):
    """Sees every op of the capture, custom ops' insides included."""

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in _SYNC_OPS:
            violation(
                f"host sync during graph capture ({func.__name__} in {_caller()}); "
                "a device graph can't read device data on the host while capturing"
            )
        if func.namespace not in ("aten", "prim", "prims") and not func.namespace.startswith("_C"):
            # A custom op's Python body runs below this mode: keep watching inside it.
            # (vLLM's C++ ops, `_C*`, are kernels: what they read is device-side.)
            with self:
                return func.redispatch(_CPU_ONLY, *args, **kwargs)
        return func(*args, **kwargs)


def _profile_host_reads(frame, event, arg):
    if event == "c_call" and getattr(arg, "__qualname__", "") in _SYNC_METHODS:
        violation(
            f"host sync during graph capture ({arg.__qualname__} in {_caller(1)}); "
            "a device graph can't read device data on the host while capturing"
        )


@contextlib.contextmanager
def no_host_sync():
    """Flag host reads of tensor data inside a capture."""
    previous = sys.getprofile()
    sys.setprofile(_profile_host_reads)
    try:
        with _HostSyncWatch():
            yield
    finally:
        sys.setprofile(previous)
