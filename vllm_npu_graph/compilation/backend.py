"""NPUGraphCompiler: the torch.compile backend vLLM calls with the whole decoder.

With `splitting_ops=[]` vLLM hands us one graph (attention inside, symbolic token
count). We log what we got, run our pass pipeline, and lower through the active
target: Inductor on the host target, TorchAir's npugraph_ex on the NPU target.
"""

import hashlib
import time
from typing import Any

import torch
import torch.fx as fx
from vllm.compilation.compiler_interface import CompilerInterface

from vllm_npu_graph.compilation.frozen_values import violation
from vllm_npu_graph.compilation.pass_manager import NPUGraphPassManager
from vllm_npu_graph.config import NPUGraphConfig, plugin_config
from vllm_npu_graph.log import get_logger
from vllm_npu_graph.ops import attention, fused  # noqa: F401  (cached artifacts call torch.ops.npu_graph)
from vllm_npu_graph.passes import enabled_passes
from vllm_npu_graph.targets import get_target

logger = get_logger(__name__)

ATTENTION_OPS = ("unified_attention_with_output", "unified_kv_cache_update")


def count_ops(graph: fx.Graph, names: tuple[str, ...]) -> dict[str, int]:
    counts = dict.fromkeys(names, 0)
    for node in graph.nodes:
        if node.op == "call_function":
            target = getattr(node.target, "__name__", str(node.target))
            for name in names:
                if name in target:
                    counts[name] += 1
    return counts


class NPUGraphCompiler(CompilerInterface):
    name = "npu_graph"

    def __init__(self) -> None:
        self.target = get_target()
        self.options = NPUGraphConfig()
        self.pass_manager: NPUGraphPassManager | None = None

    def compute_hash(self, vllm_config) -> str:
        """vLLM calls this with the engine's config before compiling: keep our options."""
        from importlib.metadata import version

        self.options = plugin_config(vllm_config)
        parts = [version("vllm-npu-graph"), torch.__version__, self.target.name, repr(self.options)]
        return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]

    def compile(self, graph: fx.GraphModule, example_inputs: list[Any], compiler_config: dict[str, Any],
                compile_range, key: str | None = None):
        if self.target.capturing:
            violation(f"the decoder was traced and compiled (token range {compile_range}) inside graph "
                      "capture; compile on a warm-up run before the capture phase")
        if self.pass_manager is None:
            passes = [(p.NAME, p.run) for p in enabled_passes(self.target.name, self.options.passes)]
            self.pass_manager = NPUGraphPassManager(passes, dump_dir=self.options.dump_graph_dir)
        passes = self.pass_manager
        nodes = len(graph.graph.nodes)
        attn_counts = count_ops(graph.graph, ATTENTION_OPS)
        start, runs = time.perf_counter(), passes.runs
        try:
            compiled = self.target.lower_graph(graph, example_inputs, passes)
        except Exception as exc:  # the eager path must stay available
            logger.error(
                "npu_graph: compiling the decoder for token range %s failed (%s: %s); that range "
                "runs the uncompiled graph eagerly.", compile_range, type(exc).__name__, exc,
            )
            return graph, None
        if passes.runs == runs:
            logger.info("npu_graph: compiled code came from the Inductor cache; the passes ran when it was built.")
        logger.info(
            "npu_graph: compiled the whole decoder as one graph (%d nodes, %d attention ops, "
            "%d kv-cache writes, token range %s) with the %s target in %.1f s",
            nodes, attn_counts["unified_attention_with_output"], attn_counts["unified_kv_cache_update"],
            compile_range, self.target.name, time.perf_counter() - start,
        )
        return compiled, None
