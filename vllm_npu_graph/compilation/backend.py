"""NPUGraphCompiler: the torch.compile backend vLLM calls with the whole decoder.

With `splitting_ops=[]` vLLM hands us one graph (attention inside, symbolic token
count). We log what we got, run our pass pipeline, and lower through the active
target: Inductor on the host target, TorchAir's npugraph_ex on the NPU target.

Compiled code is cached in our own folder (compilation/cache_store.py) under our key
(compilation/cache_key.py); vLLM keeps the handle we return in its own index and calls
`load` on a warm start.
"""

import hashlib
import time
from typing import Any

import torch.fx as fx
from vllm import envs as vllm_envs
from vllm.compilation.compiler_interface import CompilerInterface

from vllm_npu_graph import faults
from vllm_npu_graph.compilation import cache_key
from vllm_npu_graph.compilation.cache_store import CompileCache
from vllm_npu_graph.compilation.pass_manager import NPUGraphPassManager
from vllm_npu_graph.config import NPUGraphConfig, plugin_config
from vllm_npu_graph.frozen_values import violation
from vllm_npu_graph.log import get_logger
from vllm_npu_graph.ops import attention, fused  # noqa: F401  (cached artifacts call torch.ops.npu_graph)
from vllm_npu_graph.passes import enabled_passes
from vllm_npu_graph.targets import get_target

logger = get_logger(__name__)

# Counted in the compile log line: attention, KV-cache writes, MoE layers (moe.py).
COUNTED_OPS = ("unified_attention_with_output", "unified_kv_cache_update", "moe_experts")

# What each compile in this process did (the warm-up report reads it):
# {"range": str, "seconds": float, "source": "compiled" | "cache"}.
compile_events: list[dict] = []


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
        self.quantized = False  # the model is W8A8 (set with the options in compute_hash)
        self.pass_manager: NPUGraphPassManager | None = None

    def compute_hash(self, vllm_config) -> str:
        """vLLM calls this with the engine's config before compiling; its value joins
        vLLM's cache-folder hash, and names our own cache entry."""
        self.options = plugin_config(vllm_config)
        self.quantized = vllm_config.model_config.quantization is not None
        self.sources = cache_key.source_hashes()
        self.components = cache_key.key_components(vllm_config, self.target, self.options, self.sources)
        self.key_digest = cache_key.digest(self.components)
        # VLLM_DISABLE_COMPILE_CACHE=1 turns ours off too.
        self.cache = None if vllm_envs.VLLM_DISABLE_COMPILE_CACHE else CompileCache()
        if self.pass_manager is not None:
            self.pass_manager.cache_salt = self.key_digest
        return self.key_digest

    def _passes(self) -> NPUGraphPassManager:
        if self.pass_manager is None:
            enabled = enabled_passes(self.target.name, self.options.passes, self.quantized)
            passes = [(p.NAME, p.run) for p in enabled]
            passes += self.target.lowering_passes(self.target.kernels_for(self.options.kernels))
            self.pass_manager = NPUGraphPassManager(passes, dump_dir=self.options.dump_graph_dir)
            self.pass_manager.cache_salt = getattr(self, "key_digest", "")
        return self.pass_manager

    def _cached(self, name: str, graph: fx.GraphModule, compile_range):
        """The compiled callable from our cache, or None (a miss says why)."""
        cache = getattr(self, "cache", None)
        if cache is None:
            return None
        start = time.perf_counter()
        path = cache.lookup(self.key_digest, name)
        if path is None:
            status = cache.status(self.components, self.sources)
            logger.info(
                "npu_graph: compile cache miss for token range %s (entry %s): %s",
                compile_range,
                self.key_digest,
                status.get("reason", "no artifact for this graph"),
            )
            return None
        try:
            compiled = self.target.load_compiled(str(path), graph)
        except Exception as exc:  # an unloadable artifact is rebuilt, never fatal
            logger.warning(
                "npu_graph: could not load %s (%s: %s); removing it and compiling again.", path, type(exc).__name__, exc
            )
            cache.forget(self.key_digest, name)
            return None
        seconds = time.perf_counter() - start
        compile_events.append({"range": str(compile_range), "seconds": seconds, "source": "cache"})
        logger.info(
            "npu_graph: loaded the compiled decoder (token range %s) from the compile cache %s in %.2f s",
            compile_range,
            path,
            seconds,
        )
        return compiled

    def compile(
        self,
        graph: fx.GraphModule,
        example_inputs: list[Any],
        compiler_config: dict[str, Any],
        compile_range,
        key: str | None = None,
        look_up: bool = True,
    ):
        if self.target.capturing:
            violation(
                f"the decoder was traced and compiled (token range {compile_range}) inside graph "
                "capture; compile on a warm-up run before the capture phase"
            )
        graph_hash = hashlib.sha256(graph.code.encode()).hexdigest()[:12]
        name = f"range_{compile_range.start}_{compile_range.end}_{graph_hash}.bin"
        compiled = self._cached(name, graph, compile_range) if look_up else None
        if compiled is not None:
            return compiled, (name, self.key_digest)
        passes = self._passes()
        nodes = len(graph.graph.nodes)
        op_counts = count_ops(graph.graph, COUNTED_OPS)
        start, runs = time.perf_counter(), passes.runs
        try:
            injected = faults.plan().compile_failure()
            if injected is not None:
                raise injected
            compiled = self.target.lower_graph(graph, example_inputs, passes)
        except Exception as exc:  # the eager path must stay available
            logger.error(
                "npu_graph: compiling the decoder for token range %s failed (%s: %s); that range "
                "runs the uncompiled graph eagerly.",
                compile_range,
                type(exc).__name__,
                exc,
            )
            return graph, None
        seconds = time.perf_counter() - start
        compile_events.append({"range": str(compile_range), "seconds": seconds, "source": "compiled"})
        if passes.runs == runs:
            logger.info("npu_graph: compiled code came from the Inductor cache; the passes ran when it was built.")
        logger.info(
            "npu_graph: compiled the whole decoder as one graph (%d nodes, %d attention ops, "
            "%d kv-cache writes, %d MoE layers, token range %s) with the %s target in %.1f s",
            nodes,
            op_counts["unified_attention_with_output"],
            op_counts["unified_kv_cache_update"],
            op_counts["moe_experts"],
            compile_range,
            self.target.name,
            seconds,
        )
        cache = getattr(self, "cache", None)
        meta = {"range": str(compile_range), "graph": graph_hash, "compile_s": round(seconds, 3)}
        if cache is not None and cache.store(
            self.key_digest,
            name,
            self.components,
            self.sources,
            lambda path: self.target.save_compiled(compiled, path),
            meta,
        ):
            logger.info("npu_graph: compiled decoder cached in %s", cache.entry(self.key_digest) / name)
            return compiled, (name, self.key_digest)
        return compiled, None

    def load(self, handle, graph: fx.GraphModule, example_inputs: list[Any], graph_index: int, compile_range):
        """vLLM's index had our handle: load it if our entry still holds it intact,
        else compile again (and re-cache)."""
        name, _ = handle
        compiled = self._cached(name, graph, compile_range)
        if compiled is None:
            compiled, _ = self.compile(graph, example_inputs, {}, compile_range, look_up=False)
        return compiled
