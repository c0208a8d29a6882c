"""One rank of our worker's device and group set-up on the NPU target, through the fake
torch_npu (whose "hccl" groups run over gloo) and the fake triton-ascend driver:

    python tests/fakes/hccl_worker_check.py RANK WORLD_SIZE PORT

The two ranks are placed as Ray places a node's workers (or vLLM a DP rank's): on the
assigned physical NPUs 2 and 3 of a node whose ASCEND_RT_VISIBLE_DEVICES shows 0-3.
Drives NPUGraphWorker's own device init, group creation, kernel selection and KV-cache
memory accounting, then tensor-parallel collectives through vLLM's TP group and the
target's device communicator. Exits non-zero with the failed assertion."""

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
os.environ["VLLM_NPU_GRAPH_TARGET"] = "npu"
os.environ.setdefault("TRITON_INTERPRET", "1")
os.environ["ASCEND_RT_VISIBLE_DEVICES"] = "0,1,2,3"
ASSIGNED = [2, 3]

import fake_triton_ascend  # noqa: E402
import torch  # noqa: E402
import torch_npu as fake  # noqa: E402  (installs torch.npu and the hccl backend)

GiB = 1 << 30


def main() -> None:
    rank, world, port = map(int, sys.argv[1:4])
    fake_triton_ascend.install(fake.CALLS)
    import torch.distributed as dist
    from vllm.config import ParallelConfig, VllmConfig, set_current_vllm_config
    from vllm.distributed import (
        get_tp_group,
        tensor_model_parallel_all_gather,
        tensor_model_parallel_all_reduce,
        tensor_model_parallel_reduce_scatter,
    )
    from vllm.utils.import_utils import resolve_obj_by_qualname

    from vllm_npu_graph.targets import get_target
    from vllm_npu_graph.worker.worker import NPUGraphWorker

    config = VllmConfig(parallel_config=ParallelConfig(tensor_parallel_size=world))
    config.parallel_config.assigned_physical_gpu_ids = ASSIGNED
    with set_current_vllm_config(config):
        worker = NPUGraphWorker(
            config,
            local_rank=rank,
            rank=rank,
            distributed_init_method=f"tcp://127.0.0.1:{port}",
            is_driver_worker=rank == 0,
        )
        worker._init_device_and_groups()
        worker._select_kernels()

    # Device init: this rank's assigned NPU is current; the groups are HCCL groups.
    ordinal = ASSIGNED[rank]  # its index among the visible devices 0-3
    assert worker.device == torch.device(f"npu:{ordinal}") and torch.npu.current_device() == ordinal
    tp = get_tp_group()
    assert dist.get_backend(tp.device_group) == "hccl", dist.get_backend(tp.device_group)
    created = [args for name, args in fake.CALLS if name == "ProcessGroupHCCL"]
    assert {"group_rank": rank, "group_size": world, "global_ranks": list(range(world))} in created, created
    communicator = resolve_obj_by_qualname(get_target().communicator_cls)
    assert type(tp.device_communicator) is communicator, type(tp.device_communicator)

    # Collectives through the TP group (what the model's parallel layers call).
    x = torch.arange(6, dtype=torch.float32).reshape(2, 3) + 10 * rank
    expected_sum = sum(torch.arange(6, dtype=torch.float32).reshape(2, 3) + 10 * r for r in range(world))
    assert torch.equal(tensor_model_parallel_all_reduce(x.clone()), expected_sum)
    gathered = tensor_model_parallel_all_gather(x, dim=-1)
    assert torch.equal(gathered, torch.cat([x - 10 * rank + 10 * r for r in range(world)], dim=-1))
    wide = torch.arange(2 * 2 * world, dtype=torch.float32).reshape(2, 2 * world) * (rank + 1)
    scattered = tensor_model_parallel_reduce_scatter(wide, dim=-1)
    total = torch.arange(2 * 2 * world, dtype=torch.float32).reshape(2, 2 * world) * sum(range(1, world + 1))
    assert torch.equal(scattered, total.chunk(world, dim=-1)[rank])

    # Kernel selection: Triton with the launch table from triton-ascend's core counts.
    from vllm_npu_graph.ops import kernel_choice

    assert ("triton.get_device_properties", {"device": ordinal}) in fake.CALLS
    table = kernel_choice.launch_table
    assert (table.vector_programs, table.cube_programs, table.live_bytes) == (48, 24, 96 * 1024), table
    # ... and the kernels keep their answers under it (one program per core, UB-sized tiles).
    from vllm_npu_graph.kernels import attention_reference

    g = torch.Generator().manual_seed(rank)
    kv = torch.randn(9, 128, 2, 2 * 64, generator=g).transpose(1, 2)  # 128-token blocks: tiles shrink
    q = torch.randn(3, 8, 64, generator=g)
    qsl, lens = torch.tensor([0, 1, 2, 3]), torch.tensor([300, 5, 129])
    blocks = torch.tensor([[1, 2, 3], [4, 0, 0], [5, 6, 0]])
    got = kernel_choice.impls["paged_attention"](q, kv, qsl, lens, blocks, 0.125, None, 1, 300)
    torch.testing.assert_close(got, attention_reference.paged_attention(q, kv, qsl, lens, blocks, 0.125))
    from vllm_npu_graph.kernels import fused_reference

    qkv, pos = torch.randn(3, (8 + 2 * 2) * 64, generator=g), torch.tensor([299, 4, 128])
    cos_sin = torch.randn(300, 64, generator=g)
    kv_ref = kv.clone()
    got = kernel_choice.impls["qkv_rope"](qkv, pos, cos_sin, 8, 2, 64, None, None, 1e-6, kv, pos.int())
    want = fused_reference.qkv_rope(qkv, pos, cos_sin, 8, 2, 64, None, None, 1e-6, kv_ref, pos.int())
    for a, b in zip((*got, kv), (*want, kv_ref)):
        torch.testing.assert_close(a, b)

    # KV-cache memory accounting against the device's free memory.
    worker.cache_config.kv_cache_memory_bytes = 2 * GiB
    assert worker.determine_available_memory() == 2 * GiB
    worker.cache_config.kv_cache_memory_bytes = 200 * GiB
    try:
        worker.determine_available_memory()
        raise AssertionError("a KV cache larger than the free NPU memory was accepted")
    except ValueError as exc:
        assert "exceeds the free memory on the npu target" in str(exc), exc
    from vllm.distributed import destroy_distributed_environment, destroy_model_parallel

    destroy_model_parallel()
    destroy_distributed_environment()
    print(f"rank {rank}: ok")


if __name__ == "__main__":
    main()
