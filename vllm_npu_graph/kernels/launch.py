"""Launch tables: how many programs a kernel gets and which tile options it uses.

Kernels loop over their tasks inside (`for task in range(pid, n, num_programs)`), so
the same source serves a data-sized grid (upstream Triton on a GPU or the CPU
interpreter) and Ascend's rule of one program per physical core. Targets build the
table; nothing device-specific appears in kernel source.
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class LaunchTable:
    # Program caps (None = one program per task): vector-only kernels and kernels
    # using tl.dot run on different core kinds on Ascend (vector vs AI cores).
    vector_programs: int | None = None
    cube_programs: int | None = None
    # Upcast tl.dot operands to fp32 (the CPU interpreter's bf16 dot is wrong).
    upcast_dot: bool = False
    # Query rows per prefill tile and KV splits cap for long decode.
    prefill_block_m: int = 16
    max_kv_splits: int = 8
    # Programs that fill the device: decode splits the KV length until it has this many.
    fill_programs: int = 64
    # Bytes of live tensors one program may hold (Ascend UB: 96 KB with double
    # buffering); attention KV tiles shrink below the cache block size to fit.
    live_bytes: int | None = None
    # Cap on KV-tile tokens, and warps for kernels with tl.dot (None: the kernel's own
    # choice; Ascend ignores warps).
    max_kv_tile: int | None = None
    dot_warps: int | None = None

    def kv_tile(self, block: int, rows: int, head_pad: int, elem_bytes: int) -> int:
        """Tokens per attention KV tile: the cache block, halved until k, v, the score
        tile and the fp32 accumulators fit `live_bytes` (at least 16)."""
        tile = min(block, self.max_kv_tile or block)
        while self.live_bytes is not None and tile > 16:
            live = 2 * tile * head_pad * elem_bytes + 2 * rows * tile * 4 + 2 * rows * head_pad * 4
            if live <= self.live_bytes:
                break
            tile //= 2
        return tile

    def dot_options(self) -> dict:
        return {} if self.dot_warps is None else {"num_warps": self.dot_warps}

    def grid(self, num_tasks: int, uses_dot: bool) -> tuple[int]:
        cap = self.cube_programs if uses_dot else self.vector_programs
        programs = num_tasks if cap is None else min(num_tasks, cap)
        return (max(1, min(programs, 65535)),)


def ascend_table(vector_cores: int, ai_cores: int) -> LaunchTable:
    """triton-ascend: one program per physical core (vector cores for vector-only
    kernels, AI cores for kernels with tl.dot), tiles within the 96 KB UB budget.
    Shared by the NPU target and the triton-ascend IR check (`vllm_npu_graph.ascend_ir`)."""
    return LaunchTable(vector_programs=vector_cores, cube_programs=ai_cores, live_bytes=96 * 1024)


# Upstream Triton on a GPU (the kernel benchmark; values from the H100 sweeps in
# bench/results/: 64-row prefill tiles 1.4x faster than 16, more KV splits 1.2-1.5x
# faster for one long or few-head decode, 64-token KV tiles 1.4x faster prefill than
# 128, 8 warps slower) and the CPU interpreter.
GPU_TABLE = LaunchTable(prefill_block_m=64, max_kv_splits=16, fill_programs=264, max_kv_tile=64)
INTERPRETER_TABLE = LaunchTable(upcast_dot=True)
