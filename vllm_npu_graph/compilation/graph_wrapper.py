"""The static-graph wrapper our runner puts around the compiled decoder.

One device graph per padded batch descriptor: captured in the runner's capture step,
replayed afterwards. Anything a graph can't serve runs the
compiled module eagerly, and every such fallback is counted by reason.
"""

import contextlib
import time
from collections import Counter
from pathlib import Path

import torch
from vllm.config import CUDAGraphMode
from vllm.forward_context import BatchDescriptor, get_forward_context

from vllm_npu_graph import faults
from vllm_npu_graph.files import write_json_atomic
from vllm_npu_graph.frozen_values import GraphFaithfulnessError
from vllm_npu_graph.log import get_logger
from vllm_npu_graph.targets import get_target

logger = get_logger(__name__)


def _num_tokens(args, kwargs) -> int | None:
    for value in (*args, *kwargs.values()):
        if isinstance(value, torch.Tensor) and value.dim() >= 1:
            return value.shape[-1] if value.dim() == 1 else value.shape[0]
    return None


def _decode_query_len(ctx) -> int:
    """From our attention metadata: query tokens per request in a decode step (1, or
    1 + k with speculative decoding), 0 for a batch with any longer query (prefill)."""
    metadata = ctx.attn_metadata
    first = next(iter(metadata.values()), None) if isinstance(metadata, dict) and metadata else None
    return first.decode_query_len if getattr(first, "decode_only", False) else 0


class GraphFallbacks:
    """Why steps ran eagerly, counted; the summary goes to the log and `info`."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()

    def record(self, reason: str) -> None:
        if reason not in self.counts:
            logger.info("npu_graph: eager fallback: %s", reason)
        self.counts[reason] += 1

    def summary(self) -> str:
        return "; ".join(f"{reason}: {n} step(s)" for reason, n in self.counts.most_common()) or "none"

    def save(self, path: Path, **facts) -> None:
        """Written at engine shutdown; `vllm-npu-graph info` shows the last one."""
        write_json_atomic(path, {**facts, "eager_fallbacks": dict(self.counts)})


class NPUGraphWrapper(torch.nn.Module):
    """Graphs are keyed on vLLM's whole batch descriptor (tokens, requests, uniform
    decode, LoRA), as its dispatcher distinguishes them. Capture happens only inside
    `capture_phase()` (the runner's capture step); outside it, a descriptor without a
    graph runs eagerly."""

    def __init__(self, runnable, max_capture_size: int, fallbacks: GraphFallbacks) -> None:
        super().__init__()
        self.runnable = runnable
        self.max_capture_size = max_capture_size
        self.fallbacks = fallbacks
        self.target = get_target()
        self.faults = faults.plan()
        self.graphs: dict[BatchDescriptor, object] = {}
        self.failed: dict[BatchDescriptor, str] = {}
        self.capture_seconds: dict[BatchDescriptor, float] = {}  # the capture alone, per size
        self.capturing = False
        self.serving = False  # False during start-up: fallbacks not counted

    @contextlib.contextmanager
    def capture_phase(self):
        self.capturing = True
        try:
            yield
        finally:
            self.capturing = False

    @property
    def captured_sizes(self) -> list[int]:
        return sorted({d.num_tokens for d in self.graphs})

    @property
    def failed_sizes(self) -> dict[int, str]:
        return {d.num_tokens: reason for d, reason in self.failed.items()}

    def unwrap(self):
        return self.runnable

    def __getattr__(self, name):
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self.runnable, name)

    def forward(self, *args, **kwargs):
        ctx = get_forward_context()
        desc = ctx.batch_descriptor
        if ctx.cudagraph_runtime_mode != CUDAGraphMode.FULL or desc is None:
            if self.serving:
                n = desc.num_tokens if desc is not None else _num_tokens(args, kwargs)
                decode_query_len = _decode_query_len(ctx)
                if not decode_query_len:
                    self.fallbacks.record("a prefill or mixed batch (graphs serve decode batches)")
                elif decode_query_len > 1 and desc is not None and not desc.uniform:
                    self.fallbacks.record(
                        f"a speculative step whose requests carry fewer than {decode_query_len - 1} draft tokens "
                        f"(graphs serve {decode_query_len} query tokens per request)"
                    )
                elif n is not None and n > self.max_capture_size:
                    self.fallbacks.record(
                        f"decode batch of more than {self.max_capture_size} tokens (the largest captured size)"
                    )
                else:
                    self.fallbacks.record("a batch the graphs don't serve (graphs off for it)")
            return self.runnable(*args, **kwargs)
        if desc in self.failed:
            if self.serving:
                self.fallbacks.record(f"size {desc.num_tokens}: {self.failed[desc]}")
            return self.runnable(*args, **kwargs)
        graph = self.graphs.get(desc)
        if graph is not None:
            return graph.replay(args, kwargs)
        if not self.capturing:
            if self.serving:
                self.fallbacks.record(f"size {desc.num_tokens} was not captured at start-up")
            return self.runnable(*args, **kwargs)
        try:
            injected = self.faults.capture_failure(desc.num_tokens)
            if injected is not None:
                raise injected
            start = time.perf_counter()
            graph = self.target.capture_graph(self.runnable, args, kwargs)
            self.capture_seconds[desc] = time.perf_counter() - start
        except GraphFaithfulnessError:
            raise  # a defect of ours (strict mode), not a device limit
        except Exception as exc:  # a failed capture must never take the server down
            reason = f"capture failed ({self.target.explain_capture_error(exc) or f'{type(exc).__name__}: {exc}'})"
            logger.error("npu_graph: %s for size %d; this size runs eagerly from now on.", reason, desc.num_tokens)
            self.failed[desc] = reason
            return self.runnable(*args, **kwargs)
        self.graphs[desc] = graph
        return graph.output
