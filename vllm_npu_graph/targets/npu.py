"""The NPU target: torch_npu devices. The only module that imports torch_npu.

Nothing here runs on our machines (nobody has an NPU); imports are lazy so that
importing the package costs nothing where torch_npu is absent.
"""

import importlib.util

import torch

from vllm_npu_graph.targets.base import Target, TargetError, refresh_static_inputs


def missing_requirement() -> str | None:
    """Why the NPU target can't run here, or None when an Ascend device is usable."""
    if importlib.util.find_spec("torch_npu") is None:
        return "the torch_npu package is not installed"
    try:
        import torch_npu  # noqa: F401
    except Exception as exc:  # a broken CANN install raises many kinds of errors
        return f"torch_npu failed to import ({type(exc).__name__}: {exc})"
    try:
        count = torch.npu.device_count()
    except Exception as exc:
        return f"torch.npu.device_count() failed ({exc})"
    if count < 1:
        return "torch_npu sees no NPU device (check ASCEND_RT_VISIBLE_DEVICES and the driver)"
    return None


def devices_summary() -> str:
    """`<device name> x<count>`, for reports (call only when missing_requirement() is None)."""
    return f"{torch.npu.get_device_name(0)} x{torch.npu.device_count()}"


class NPUGraphCapture:
    """One ACL graph (torch.npu.NPUGraph) captured in the shared pool."""

    def __init__(self, fn, args, kwargs, pool) -> None:
        self.args, self.kwargs = args, kwargs
        self.graph = torch.npu.NPUGraph()
        with torch.npu.graph(self.graph, pool=pool):
            self.output = fn(*args, **kwargs)

    def replay(self, args, kwargs):
        refresh_static_inputs(self.args, self.kwargs, args, kwargs)
        self.graph.replay()
        return self.output


def cann_version() -> str:
    """The CANN toolkit version from its install's version file (ASCEND_HOME_PATH)."""
    import os
    from pathlib import Path

    home = os.environ.get("ASCEND_HOME_PATH") or os.environ.get("ASCEND_TOOLKIT_HOME")
    for name in ("version.info", "compiler/version.info", "ascend_toolkit_install.info"):
        path = Path(home, name) if home else None
        if path is not None and path.is_file():
            for line in path.read_text(errors="replace").splitlines():
                if line.lower().startswith("version="):
                    return line.split("=", 1)[1].strip()
    return "unknown"


class NPUTarget(Target):
    name = "npu"
    device_type = "npu"
    device_name = "npu"
    dispatch_key = "PrivateUse1"
    dist_backend = "hccl"
    device_control_env_var = "ASCEND_RT_VISIBLE_DEVICES"
    pin_memory = True
    max_graph_sizes = 16

    def __init__(self) -> None:
        missing = missing_requirement()
        if missing is not None:
            raise TargetError(f"NPU target unusable: {missing}")

    def default_device_count(self) -> int:
        return torch.npu.device_count()

    def device(self, local_rank: int) -> torch.device:
        return torch.device(f"npu:{local_rank}")

    def set_device(self, device: torch.device) -> None:
        torch.npu.set_device(device)

    def synchronize(self) -> None:
        torch.npu.synchronize()

    def side_stream(self, *args, **kwargs):
        return torch.npu.Stream(*args, **kwargs)

    def total_memory(self, device_id: int = 0) -> int:
        return torch.npu.get_device_properties(device_id).total_memory

    def free_memory(self) -> int:
        return torch.npu.mem_get_info()[0]

    def memory_in_use(self) -> int:
        return torch.npu.memory_reserved()

    def measure_peak(self, fn) -> tuple[object, int]:
        torch.npu.synchronize()
        before = torch.npu.memory_allocated()
        torch.npu.reset_peak_memory_stats()
        result = fn()
        torch.npu.synchronize()
        return result, max(0, torch.npu.max_memory_allocated() - before)

    def graph_pool(self):
        if getattr(self, "_pool", None) is None:
            self._pool = torch.npu.graph_pool_handle()
        return self._pool

    def lower_graph(self, graph, example_inputs, pass_manager):
        """Functionalized aten graph -> our passes -> TorchAir npugraph_ex.

        npugraph_ex runs with force_eager: our wrapper does the ACL capture per padded
        size itself (one pool, sizes we choose), so npugraph_ex must not capture too.
        Written against the documented API; not yet run on an NPU."""
        from torch._functorch.aot_autograd import aot_module_simplified

        def lower(gm, inputs):
            pass_manager(gm.graph)
            gm.recompile()
            return torch.npu.npugraph_ex.compile_fx(gm, inputs, {"force_eager": True})

        return aot_module_simplified(graph, example_inputs, fw_compiler=lower)

    def cache_facts(self) -> dict[str, str]:
        """torch_npu (which carries npugraph_ex), CANN and triton-ascend: artifacts
        are not valid across any of them. Our Triton kernels stay behind custom ops in
        the graph, so npugraph_ex's output holds no process-local kernel handles.
        Not yet run on an NPU; nothing is saved on this target yet (save_compiled)."""
        from importlib.metadata import PackageNotFoundError, version

        def dist(name: str) -> str:
            try:
                return version(name)
            except PackageNotFoundError:
                return "absent"

        return {"torch_npu": dist("torch-npu"), "cann": cann_version(), "triton_ascend": dist("triton-ascend")}

    def capture_graph(self, fn, args, kwargs) -> NPUGraphCapture:
        return NPUGraphCapture(fn, args, kwargs, self.graph_pool())

    def triton_launch_table(self):
        """One program per physical core (triton-ascend): vector cores for vector-only
        kernels, AI cores for kernels with tl.dot."""
        import triton

        from vllm_npu_graph.kernels.launch import ascend_table

        props = triton.runtime.driver.active.utils.get_device_properties(torch.npu.current_device())
        return ascend_table(vector_cores=props["num_vectorcore"], ai_cores=props["num_aicore"])

    def native_ops(self, kernels: str) -> dict:
        """torch_npu's fused ops for the ops our passes emit (documented signatures:
        npu_rms_norm(x, gamma, epsilon) -> (y, rstd); npu_add_rms_norm(x1, x2, gamma,
        epsilon) -> (y, rstd, x_sum); npu_swiglu(x, dim=-1) -> y)."""
        import torch_npu

        def rms_norm(x, weight, eps):
            return torch_npu.npu_rms_norm(x, weight, epsilon=eps)[0]

        def add_rms_norm(x, residual, weight, eps):
            y, _, summed = torch_npu.npu_add_rms_norm(x, residual, weight, epsilon=eps)
            return y, summed

        def swiglu(x):
            return torch_npu.npu_swiglu(x, dim=-1)

        return {
            "rms_norm": rms_norm,
            "add_rms_norm": add_rms_norm,
            "swiglu": swiglu,
            **_moe_ops(torch_npu),
            **_int8_ops(torch_npu),
        }

    def explain_capture_error(self, exc: Exception) -> str | None:
        text = str(exc)
        if "207008" in text or "Alloc sq cq fail" in text:
            return (
                "the NPU ran out of stream resources for captured graphs (error 207008 / "
                "'Alloc sq cq fail'): capture fewer sizes, e.g. --additional-config "
                '\'{"npu_graph": {"max_graph_sizes": 8}}\' or a smaller '
                "--compilation-config max_cudagraph_capture_size; old firmware also needs an update"
            )
        return super().explain_capture_error(exc)


def _moe_ops(torch_npu) -> dict:
    """MoE through torch_npu, dropless and sync-free (vllm-ascend's unquantized path):
    gating softmax + top-k; rows sorted by expert with per-expert counts left on the
    device (init_routing_v2, count mode); two grouped matmuls on [E, K, N] weights
    around SwiGLU (split_item=2: no per-group `.item()`); the weighted un-permute."""
    from vllm_npu_graph.kernels.moe_reference import local_routing

    def topk_softmax(router_logits, top_k, renormalize):
        weights, ids, _ = torch_npu.npu_moe_gating_top_k_softmax(router_logits, None, k=top_k)
        weights = weights.float()  # the op returns the logits' dtype
        if renormalize:
            weights = weights / weights.sum(dim=-1, keepdim=True)
        return weights, ids

    def pack_weights(w13, w2):
        """[E, N, K] (vLLM's, like a Linear) to grouped matmul's [E, K, N], once at load."""
        return w13.transpose(1, 2).contiguous(), w2.transpose(1, 2).contiguous()

    def experts(x, topk_weights, topk_ids, w13, w2, expert_map):
        # Expert parallel: experts held elsewhere get weight 0 on local expert 0, so
        # every row stays (no -1 rows, no data-dependent shapes).
        weights, ids = local_routing(topk_weights, topk_ids, expert_map)
        rows, top_k = ids.shape
        num_experts = w13.shape[0]
        sorted_x, src_to_dst, counts, _ = torch_npu.npu_moe_init_routing_v2(
            x,
            ids,
            active_num=rows * top_k,
            expert_num=num_experts,
            expert_tokens_num_type=1,
            expert_tokens_num_flag=True,
            active_expert_range=[0, num_experts],  # explicit: the op caches its default
            quant_mode=-1,
        )
        counts = counts.to(torch.int64)
        grouped = dict(group_list=counts, split_item=2, group_type=0, group_list_type=1)
        gate_up = torch_npu.npu_grouped_matmul([sorted_x], [w13], **grouped)[0]
        down = torch_npu.npu_grouped_matmul([torch_npu.npu_swiglu(gate_up, dim=-1)], [w2], **grouped)[0]
        return torch_npu.npu_moe_token_unpermute(down, src_to_dst, probs=weights.to(x.dtype))

    return {"moe_topk_softmax": topk_softmax, "moe_pack_weights": pack_weights, "moe_experts": experts}


def _int8_ops(torch_npu) -> dict:
    """W8A8 through torch_npu (vllm-ascend's dynamic W8A8 path): npu_dynamic_quant gives
    int8 rows and a float32 scale per row; npu_quant_matmul multiplies by the [K, N] int8
    weight with the per-channel (`scale`) and per-token (`pertoken_scale`) scales and
    writes the model's dtype. The bias is added after the matmul: the op's bias dtype
    rules differ per output dtype. The fused quantize ops: npu_add_rms_norm_dynamic_quant
    and npu_swiglu_quant (documented outputs: int8 rows, float32 scale per row)."""

    def quant_per_token(x):
        q, scale = torch_npu.npu_dynamic_quant(x)
        return q, scale.view(-1, 1)

    def int8_linear(x_q, x_scale, w, w_scale, bias, out_dtype):
        out = torch_npu.npu_quant_matmul(x_q, w, w_scale, pertoken_scale=x_scale.view(-1), output_dtype=out_dtype)
        return out if bias is None else out + bias

    def add_rms_norm_quant(x, residual, weight, eps):
        # (y1, y2, x_sum, scale1, scale2); output_mask: only the first quantized output.
        q, _, summed, scale, _ = torch_npu.npu_add_rms_norm_dynamic_quant(
            x, residual, weight, epsilon=eps, output_mask=[True, False]
        )
        return q, scale.view(-1, 1), summed

    def swiglu_quant(x):
        # activate_left: SiLU on the first half (vLLM's [gate | up]); quant_mode 1: dynamic.
        q, scale = torch_npu.npu_swiglu_quant(x, activate_left=True, quant_mode=1)
        return q, scale.view(-1, 1)

    # The weight is packed as the reference packs it: [N, K] as loaded -> [K, N].
    # RMSNorm + dynamic quant has no torch_npu op (npu_rms_norm_quant takes static
    # scales): our Triton kernel serves it.
    return {
        "quant_per_token": quant_per_token,
        "int8_linear": int8_linear,
        "add_rms_norm_quant": add_rms_norm_quant,
        "swiglu_quant": swiglu_quant,
    }
