"""Presets (full, --quick, --dry-run) and the engine settings every mode shares, so that
no mode differs from another in anything but what defines it."""

import os
from dataclasses import asdict, dataclass, field


@dataclass
class Sizes:
    repeats: int
    batches: list[int]  # offline decode batch sizes
    prefill_lens: list[int]  # offline prefill prompt lengths (one prompt each)
    decode_prompt_len: int
    decode_new_tokens: int
    greedy_new_tokens: int
    concurrencies: list[int]  # online, one `vllm bench serve` each
    online_input_len: int
    online_output_len: int
    prompts_per_client: int  # num_prompts = max(concurrency * this, min_prompts)
    min_prompts: int
    max_model_len: int  # engine sizes: the same for every mode of a run
    max_num_seqs: int
    max_num_batched_tokens: int
    kv_cache_memory_bytes: int


PRESETS = {
    # ~45-60 min on 2 cores with the four base modes (start-ups are most of it).
    "full": Sizes(
        repeats=3,
        batches=[1, 4, 16, 64],
        prefill_lens=[128, 512, 2048],
        decode_prompt_len=32,
        decode_new_tokens=32,
        greedy_new_tokens=24,
        concurrencies=[1, 8, 32],
        online_input_len=128,
        online_output_len=32,
        prompts_per_client=1,
        min_prompts=8,
        max_model_len=2304,
        max_num_seqs=64,
        max_num_batched_tokens=2048,
        kv_cache_memory_bytes=512 << 20,
    ),
    # Under 10 min on 2 cores: one repeat, fewer sizes.
    "quick": Sizes(
        repeats=1,
        batches=[1, 16],
        prefill_lens=[128, 512],
        decode_prompt_len=32,
        decode_new_tokens=16,
        greedy_new_tokens=16,
        concurrencies=[1, 8],
        online_input_len=64,
        online_output_len=32,
        prompts_per_client=1,
        min_prompts=4,
        max_model_len=1024,
        max_num_seqs=16,
        max_num_batched_tokens=1024,
        kv_cache_memory_bytes=256 << 20,
    ),
    # Smallest sizes that still exercise every phase (tests, tiny models).
    "dry-run": Sizes(
        repeats=1,
        batches=[1, 2],
        prefill_lens=[16],
        decode_prompt_len=8,
        decode_new_tokens=4,
        greedy_new_tokens=4,
        concurrencies=[1],
        online_input_len=8,
        online_output_len=4,
        prompts_per_client=2,
        min_prompts=2,
        max_model_len=128,
        max_num_seqs=4,
        max_num_batched_tokens=128,
        kv_cache_memory_bytes=32 << 20,
    ),
}


def default_threads() -> int:
    """Usable CPUs minus one, kept for the scheduler / API-server process, as vLLM's CPU
    platform does. Measured here: with both cores busy elsewhere, a 16x576x1536 matmul
    took 0.73 ms on one OpenMP thread and 23 ms on two (threads spin-waiting on each
    other while the other processes hold the cores)."""
    return max(1, len(os.sched_getaffinity(0)) - 1)


@dataclass
class Settings:
    model: str
    preset: str
    sizes: Sizes
    dtype: str = "float32"
    seed: int = 0
    threads: int = field(default_factory=lambda: default_threads())
    phases: list[str] = field(default_factory=lambda: ["offline", "online"])

    def engine_args(self) -> dict:
        """EngineArgs shared by every mode (prefix caching off: repeated prompts would
        otherwise skip their prefill in some runs and not others)."""
        return {
            "model": self.model,
            "dtype": self.dtype,
            "max_model_len": self.sizes.max_model_len,
            "max_num_seqs": self.sizes.max_num_seqs,
            "max_num_batched_tokens": self.sizes.max_num_batched_tokens,
            "kv_cache_memory_bytes": self.sizes.kv_cache_memory_bytes,
            "seed": self.seed,
            "enable_prefix_caching": False,
        }

    def mode_engine_args(self, mode) -> dict:
        """The shared engine settings plus the mode's own; our modes get the same thread
        count through `host_threads` (our plugin sizes its threads itself otherwise)."""
        args = {**self.engine_args(), **mode.engine_args}
        if not mode.is_peer:
            extra = args.get("additional_config", {})
            npu_graph = {**extra.get("npu_graph", {}), "host_threads": self.threads}
            args["additional_config"] = {**extra, "npu_graph": npu_graph}
        return args

    def thread_env(self) -> dict[str, str]:
        """The same OpenMP threads for every mode. vLLM's CPU platform would otherwise
        bind its worker to the cores left after reserving one for the scheduler (one
        thread on a 2-core machine) while our plugin uses torch's default."""
        return {"OMP_NUM_THREADS": str(self.threads), "VLLM_CPU_OMP_THREADS_BIND": "nobind"}

    def as_dict(self) -> dict:
        out = asdict(self)
        out["engine_args"] = self.engine_args()
        out["thread_env"] = self.thread_env()
        return out
