"""The static-graph wrapper our runner puts around the compiled decoder.

One device graph per padded batch descriptor: captured in the runner's capture step,
replayed afterwards. Anything a graph can't serve runs the
compiled module eagerly; replays are counted per size, fallbacks by reason.
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


class GraphCoverage:
    """What served each scheduled model step: a captured graph (steps and tokens per
    captured size) or the eager module (steps and tokens per reason). The runner sets
    `step_tokens` (the step's scheduled tokens) around each step, so dummy runs (warm-up,
    idle data-parallel ranks) are not counted. The summary goes to the log at shutdown,
    the counts to the run report and `info`."""

    def __init__(self) -> None:
        self.replays: Counter[str] = Counter()  # by graph: its size, and its active LoRA slots
        self.replayed_tokens: Counter[str] = Counter()
        self.fallbacks: Counter[str] = Counter()
        self.fallback_tokens: Counter[str] = Counter()
        self.step_tokens = 0

    def record_replay(self, desc: BatchDescriptor) -> None:
        if not self.step_tokens:
            return
        key = str(desc.num_tokens) + (f" LoRA {desc.num_active_loras}" if desc.num_active_loras else "")
        self.replays[key] += 1
        self.replayed_tokens[key] += self.step_tokens

    def record(self, reason: str) -> None:
        if not self.step_tokens:
            return
        if reason not in self.fallbacks:
            logger.info("npu_graph: eager fallback: %s", reason)
        self.fallbacks[reason] += 1
        self.fallback_tokens[reason] += self.step_tokens

    def summary(self) -> str:
        steps, tokens = self.replays.total(), self.replayed_tokens.total()
        eager_steps = self.fallbacks.total()
        share = 100 * steps / (steps + eager_steps) if steps + eager_steps else 0.0
        sizes = ", ".join(f"{k}: {self.replays[k]}" for k in self._graph_order()) or "none"
        eager = (
            "; ".join(f"{r}: {n} step(s), {self.fallback_tokens[r]} token(s)" for r, n in self.fallbacks.most_common())
            or "none"
        )
        return (
            f"replayed {steps} step(s), {tokens} token(s) ({share:.0f}% of steps; steps by graph {{{sizes}}}); "
            f"eager fallbacks: {eager}"
        )

    def _graph_order(self) -> list[str]:
        return sorted(self.replays, key=lambda k: (int(k.split()[0]), k))

    def as_dict(self) -> dict:
        return {
            "replayed_steps": {k: self.replays[k] for k in self._graph_order()},
            "replayed_tokens": {k: self.replayed_tokens[k] for k in self._graph_order()},
            "eager_steps": dict(self.fallbacks),
            "eager_tokens": dict(self.fallback_tokens),
        }

    def save(self, path: Path, **facts) -> None:
        """Written at engine shutdown; `vllm-npu-graph info` shows the last one."""
        write_json_atomic(path, {**facts, "coverage": self.as_dict()})


class NPUGraphWrapper(torch.nn.Module):
    """Graphs are keyed on vLLM's whole batch descriptor (tokens, requests, uniform
    decode, LoRA), as its dispatcher distinguishes them. Capture happens only inside
    `capture_phase()` (the runner's capture step); outside it, a descriptor without a
    graph runs eagerly."""

    def __init__(self, runnable, max_capture_size: int, coverage: GraphCoverage) -> None:
        super().__init__()
        self.runnable = runnable
        self.max_capture_size = max_capture_size
        self.coverage = coverage
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
                    self.coverage.record("a prefill or mixed batch (graphs serve decode batches)")
                elif decode_query_len > 1 and desc is not None and not desc.uniform:
                    self.coverage.record(
                        f"a speculative step whose requests carry fewer than {decode_query_len - 1} draft tokens "
                        f"(graphs serve {decode_query_len} query tokens per request)"
                    )
                elif n is not None and n > self.max_capture_size:
                    self.coverage.record(
                        f"decode batch of more than {self.max_capture_size} tokens (the largest captured size)"
                    )
                else:
                    self.coverage.record("a batch the graphs don't serve (graphs off for it)")
            return self.runnable(*args, **kwargs)
        if desc in self.failed:
            if self.serving:
                self.coverage.record(f"size {desc.num_tokens}: {self.failed[desc]}")
            return self.runnable(*args, **kwargs)
        graph = self.graphs.get(desc)
        if graph is not None:
            if self.serving:
                self.coverage.record_replay(desc)
            return graph.replay(args, kwargs)
        if not self.capturing:
            if self.serving:
                self.coverage.record(f"size {desc.num_tokens} was not captured at start-up")
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
