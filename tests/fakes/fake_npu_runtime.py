"""The fake `torch.npu` namespace the fake torch_npu installs. Graph API calls are
bound against the signatures in the wheel's torch_npu/npu/graphs.py."""

import sys
import types

import contract
import torch

NUM_DEVICES = 1
TOTAL_MEMORY = 64 << 30


def _checked(qualname: str, calls: list, fn):
    signature = contract.graph_api_signatures()[qualname]

    def wrapper(*args, **kwargs):
        bound = signature.bind(*args, **kwargs)  # TypeError on a wrong name or arity
        bound.apply_defaults()
        calls.append((f"torch.npu.{qualname}", {k: v for k, v in bound.arguments.items() if k != "self"}))
        return fn(*args, **kwargs)

    return wrapper


def install(calls: list) -> None:
    npu = types.ModuleType("torch.npu")
    state = {"device": 0, "reserved": 1 << 30}

    def record(name):
        def fn(*args, **kwargs):
            calls.append((f"torch.npu.{name}", {"args": args, **kwargs}))

        return fn

    npu.device_count = lambda: NUM_DEVICES
    npu.is_available = lambda: NUM_DEVICES > 0
    npu.set_device = lambda device: state.update(device=torch.device(device).index or 0)
    npu.current_device = lambda: state["device"]
    npu.synchronize = record("synchronize")
    npu.mem_get_info = lambda device=None: (TOTAL_MEMORY - state["reserved"], TOTAL_MEMORY)
    npu.memory_reserved = lambda device=None: state["reserved"]
    npu.memory_allocated = lambda device=None: state["reserved"]
    npu.max_memory_allocated = lambda device=None: state["reserved"]
    npu.reset_peak_memory_stats = lambda device=None: None
    npu.get_device_properties = lambda device=0: types.SimpleNamespace(
        total_memory=TOTAL_MEMORY, name="Ascend910B-fake"
    )

    class Stream:
        pass

    npu.Stream = Stream
    npu.graph_pool_handle = _checked("graph_pool_handle", calls, lambda: ("fake-pool",))

    class NPUGraph:
        def __init__(self):
            self.captured = False

        def capture_begin(self, pool=None, capture_error_mode="global"):
            self.captured = False

        def capture_end(self):
            self.captured = True

        def replay(self):
            if not self.captured:
                raise RuntimeError("replay() of a graph that was never captured")

        def reset(self):
            self.captured = False

    for method in ("capture_begin", "capture_end", "replay", "reset"):
        setattr(NPUGraph, method, _checked(f"NPUGraph.{method}", calls, getattr(NPUGraph, method)))
    npu.NPUGraph = NPUGraph

    class graph:
        def __init__(self, npu_graph, pool=None, stream=None, auto_dispatch_capture=False, capture_error_mode="global"):
            self.npu_graph, self.pool, self.mode = npu_graph, pool, capture_error_mode

        def __enter__(self):
            self.npu_graph.capture_begin(pool=self.pool, capture_error_mode=self.mode)

        def __exit__(self, *exc):
            self.npu_graph.capture_end()
            return False

    graph.__init__ = _checked("graph.__init__", calls, graph.__init__)
    npu.graph = graph

    # TorchAir's npugraph_ex entry, as documented: compile_fx(gm, example_inputs, options).
    def compile_fx(gm, example_inputs, options=None):
        calls.append(("torch.npu.npugraph_ex.compile_fx", {"options": dict(options or {})}))
        return gm

    npu.npugraph_ex = types.SimpleNamespace(compile_fx=compile_fx)
    _register_hccl(calls)
    torch.npu = npu
    sys.modules["torch.npu"] = npu
    try:
        torch.utils.rename_privateuse1_backend("npu")
    except RuntimeError:
        return  # already installed in this process

    class Hooks(torch._C._acc.PrivateUse1Hooks):
        """What torch_npu registers in C++: the accelerator behind PrivateUse1 exists."""

        def is_available(self):
            return NUM_DEVICES > 0

        def has_primary_context(self, device_index):
            return True

        def is_built(self):
            return True

    torch._C._acc.register_python_privateuseone_hook(Hooks())


def _register_hccl(calls: list) -> None:
    """The "hccl" process-group backend, registered as the wheel's
    torch_npu/_init/registry/distributed.py does (extended API: the creator gets the
    backend options). The fake's groups carry CPU tensors over gloo, so it also
    serves the "cpu" device."""
    import torch.distributed as dist

    if "hccl" in dist.Backend.backend_list:
        return

    def create(opts, pg_options):
        calls.append(
            (
                "ProcessGroupHCCL",
                {
                    "group_rank": opts.group_rank,
                    "group_size": opts.group_size,
                    "global_ranks": list(opts.global_ranks_in_group),
                },
            )
        )
        return dist.ProcessGroupGloo(opts.store, opts.group_rank, opts.group_size, opts.timeout)

    dist.Backend.register_backend("hccl", create, extended_api=True, devices=["npu", "cpu"])
