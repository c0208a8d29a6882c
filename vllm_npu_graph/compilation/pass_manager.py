"""Our FX pass pipeline: ordered passes over the aten graph, with per-pass match counts
and timings, and an optional dump of the graph before and after the passes.

It runs as Inductor's post-grad custom pass on the host target and before npugraph_ex
on the NPU target, so both targets see the same rewritten graph.
"""

import time
from collections.abc import Callable
from pathlib import Path

import torch.fx as fx
from torch._inductor.custom_graph_pass import CustomGraphPass, get_hash_for_files

from vllm_npu_graph.files import write_text_atomic
from vllm_npu_graph.log import get_logger

logger = get_logger(__name__)

# A pass rewrites the graph in place and returns how many matches it rewrote.
GraphPass = Callable[[fx.Graph], int]


class NPUGraphPassManager(CustomGraphPass):
    def __init__(self, passes: list[tuple[str, GraphPass]], dump_dir: str | None = None) -> None:
        self.passes = passes
        self.dump_dir = Path(dump_dir) if dump_dir else None
        self.last_counts: dict[str, int] = {}
        self.last_times_ms: dict[str, float] = {}
        self.runs = 0
        # Our compile-cache key digest (set by the compiler): Inductor's FX cache key
        # then changes with our ops, kernels, lowering and options too, not only passes.
        self.cache_salt = ""

    def __call__(self, graph: fx.Graph) -> None:
        self.runs += 1
        self._dump(graph, "before")
        for name, graph_pass in self.passes:
            start = time.perf_counter()
            self.last_counts[name] = graph_pass(graph)
            self.last_times_ms[name] = (time.perf_counter() - start) * 1e3
        graph.eliminate_dead_code()
        self._dump(graph, "after")
        summary = " ".join(f"{n}={c}" for n, c in self.last_counts.items()) or "(none registered)"
        timing = " ".join(f"{n}={t:.1f}ms" for n, t in self.last_times_ms.items())
        logger.info("npu_graph passes: %s %s", summary, f"[{timing}]" if timing else "")

    def _dump(self, graph: fx.Graph, stage: str) -> None:
        if self.dump_dir is None:
            return
        self.dump_dir.mkdir(parents=True, exist_ok=True)
        path = self.dump_dir / f"graph_{self.runs:03d}_{stage}_passes.txt"
        write_text_atomic(path, str(graph))
        logger.info("npu_graph: graph %s passes dumped to %s", stage, path)

    def uuid(self) -> bytes:
        """Inductor's cache key for this pass: the pass sources and their order, and our
        whole compile-cache key (compilation/cache_key.py)."""
        files = tuple(
            sorted({Path(__file__)} | {Path(p.__code__.co_filename) for _, p in self.passes if hasattr(p, "__code__")})
        )
        return get_hash_for_files(files) + ",".join(n for n, _ in self.passes).encode() + self.cache_salt.encode()
