"""Our model runner: vLLM's GPUModelRunner with the device calls sent to the target
and our static-graph wrapper in place of the CUDA one."""

import time

import numpy as np
import torch
from tqdm import tqdm
from vllm.compilation.cuda_graph import CUDAGraphWrapper
from vllm.config import CUDAGraphMode
from vllm.distributed.parallel_state import is_global_first_rank
from vllm.utils.gc_utils import freeze_gc_for_cudagraph_capture
from vllm.v1.worker.gpu_model_runner import GPUModelRunner
from vllm.v1.worker.workspace import lock_workspace

from vllm_npu_graph import faults
from vllm_npu_graph.compilation.graph_wrapper import GraphCoverage, NPUGraphWrapper
from vllm_npu_graph.log import get_logger
from vllm_npu_graph.models import cache_dir
from vllm_npu_graph.targets import get_target
from vllm_npu_graph.worker.sampler import NPUGraphSampler

logger = get_logger(__name__)


def _describe(desc) -> str:
    kind = "decode" if desc.uniform else "mixed"
    loras = f", LoRA slots {desc.num_active_loras}" if desc.num_active_loras else ""
    return f"size {desc.num_tokens} ({kind}, {desc.num_reqs} requests{loras})"


def last_run_report_path():
    return cache_dir() / "last_run.json"


class NPUGraphModelRunner(GPUModelRunner):
    def __init__(self, vllm_config, device: torch.device):
        self.target = get_target()
        self.graph_coverage = GraphCoverage()
        self.capture_report: list[dict] = []  # per size: warm-up run, capture, graph memory
        self.capture_phase_s = 0.0  # the whole capture step (GC freeze, all sizes, workspace lock)
        self.model_steps = 0  # scheduled (non-empty) model steps served
        self.padded_draft_tokens = 0  # drafts added to keep speculative steps uniform
        self.faults = faults.plan()
        with self.target.runner_construction():
            super().__init__(vllm_config, device)
        self.sampler = NPUGraphSampler(
            logprobs_mode=self.model_config.logprobs_mode, use_fp64_gumbel=self.model_config.use_fp64_gumbel
        )

    def load_model(self, load_dummy_weights: bool = False) -> None:
        super().load_model(load_dummy_weights=load_dummy_weights)
        # vLLM hard-codes CUDAGraphWrapper for FULL graphs; ours captures through the target.
        if isinstance(self.model, CUDAGraphWrapper):
            self.model = NPUGraphWrapper(
                self.model.unwrap(), self.compilation_config.max_cudagraph_capture_size, self.graph_coverage
            )

    def get_model(self) -> torch.nn.Module:
        if isinstance(self.model, NPUGraphWrapper):
            return self.model.unwrap()
        return super().get_model()

    def capture_model(self) -> int:
        """Capture one graph per batch descriptor, largest first, in the order a device
        needs: GC frozen, inside the target's capture phase, a warm-up run (never
        captured) before each capture, the workspace locked afterwards (a resize would
        free memory the graphs point to). A failed size runs eagerly."""
        wrapper = self.model
        if self.compilation_config.cudagraph_mode == CUDAGraphMode.NONE or not isinstance(wrapper, NPUGraphWrapper):
            return 0
        start, mem_before = time.perf_counter(), self.target.memory_in_use()
        todo = [
            (mode, d)
            for mode, descs in self.cudagraph_dispatcher.get_capture_descs()
            for d in sorted(descs, key=lambda d: d.num_tokens, reverse=True)
        ]
        self.capture_report = []
        with freeze_gc_for_cudagraph_capture(), self.target.capture_context(), wrapper.capture_phase():
            for runtime_mode, desc in tqdm(
                todo, desc="npu_graph: capturing decode graphs", unit="size", disable=not is_global_first_rank()
            ):
                t0, m0 = time.perf_counter(), self.target.memory_in_use()
                # At least one uncaptured run of this size first: kernels compile and
                # initialise lazily on first use, which a capture can't record.
                self._warmup_and_capture(
                    desc,
                    cudagraph_runtime_mode=runtime_mode,
                    num_warmups=max(1, self.compilation_config.cudagraph_num_of_warmups),
                )
                total = time.perf_counter() - t0
                capture = wrapper.capture_seconds.get(desc, 0.0)
                self.capture_report.append(
                    {
                        "size": desc.num_tokens,
                        "requests": desc.num_reqs,
                        "captured": desc in wrapper.graphs,
                        "warmup_s": round(total - capture, 4),
                        "capture_s": round(capture, 4),
                        "graph_bytes": max(0, self.target.memory_in_use() - m0),
                        "error": wrapper.failed.get(desc),
                    }
                )
                if desc in wrapper.graphs:
                    logger.info("npu_graph: captured %s in %.2f s", _describe(desc), total)
        self.maybe_remove_all_loras(self.lora_config)  # the dummy adapters the captures ran with
        lock_workspace()
        self.capture_phase_s = time.perf_counter() - start
        wrapper.serving = True
        graph_bytes = max(0, self.target.memory_in_use() - mem_before)
        logger.info(
            "npu_graph: captured %d graph(s) %s in %.1f s; graph memory %.1f MiB; failed sizes (eager): %s",
            len(wrapper.graphs),
            wrapper.captured_sizes,
            time.perf_counter() - start,
            graph_bytes / 2**20,
            sorted(wrapper.failed_sizes) or "none",
        )
        return graph_bytes

    def estimate_graph_memory(self) -> int:
        """Bytes the graphs will hold, measured before the KV cache is sized: the peak of
        one uncaptured forward at the largest capture size (a device graph pool keeps
        that forward's intermediates; smaller sizes reuse the pool)."""
        if self.compilation_config.cudagraph_mode == CUDAGraphMode.NONE or not self.cudagraph_batch_sizes:
            return 0
        size = max(self.cudagraph_batch_sizes)
        _, peak = self.target.measure_peak(
            lambda: self._dummy_run(size, cudagraph_runtime_mode=CUDAGraphMode.NONE, skip_eplb=True)
        )
        return peak

    def execute_model(self, scheduler_output, *args, **kwargs):
        tokens = scheduler_output.total_num_scheduled_tokens
        if tokens:
            self.model_steps += 1
            if self.model_steps == self.faults.step:  # step 0 (no injection) never matches
                raise self.faults.step_failure(self.model_steps)
        self.graph_coverage.step_tokens = tokens
        if tokens and not isinstance(self.model, NPUGraphWrapper):
            self.graph_coverage.record("graphs off (--enforce-eager or cudagraph_mode NONE)")
        try:
            return super().execute_model(scheduler_output, *args, **kwargs)
        finally:
            self.graph_coverage.step_tokens = 0

    def _sample(self, logits, spec_decode_metadata):
        """Remember the generator state of each seeded request whose sample this step will
        discard (a prefill chunk that is not its last), before the sampler draws from it."""
        self._rng_before_discard = self._discarded_generator_states()
        return super()._sample(logits, spec_decode_metadata)

    def _discarded_generator_states(self) -> dict[int, torch.Tensor]:
        generators = self.input_batch.generators
        if not generators:
            return {}
        discarded = np.nonzero(self.discard_request_mask.np[: self.input_batch.num_reqs])[0]
        return {int(i): generators[int(i)].get_state() for i in discarded if int(i) in generators}

    def _bookkeeping_sync(self, *args, **kwargs):
        """Undo a discarded sample's draw by restoring the generator state from before it.
        vLLM rewinds a Philox offset (`set_offset(get_offset() - 4)`), which a CPU generator
        does not have: it raised and killed the engine at the first seeded request whose
        prompt was chunked. A restored state also keeps seeded output independent of how
        the prompt was chunked."""
        saved, self._rng_before_discard = getattr(self, "_rng_before_discard", {}), {}
        generators = self.input_batch.generators
        held = {i: generators.pop(i) for i in saved}  # vLLM's rewind skips requests with no generator
        try:
            return super()._bookkeeping_sync(*args, **kwargs)
        finally:
            for i, gen in held.items():
                gen.set_state(saved[i])
                generators[i] = gen

    def propose_draft_token_ids(self, scheduler_output, sampled_token_ids, *args, **kwargs):
        """With decode graphs, every request that sampled a token gets exactly k drafts:
        a proposer's shorter list (an n-gram miss) is padded by repeating its last
        token, so speculative steps stay uniform (k + 1 tokens per request) and replay
        a graph instead of running eagerly. Output is unchanged: a draft is accepted
        only where the model agrees with it (greedy), or by rejection sampling, which
        keeps the model's distribution for any draft."""
        drafts = super().propose_draft_token_ids(scheduler_output, sampled_token_ids, *args, **kwargs)
        if not isinstance(drafts, list) or not isinstance(self.model, NPUGraphWrapper):
            return drafts
        k = self.num_spec_tokens
        padded = []
        for draft, sampled in zip(drafts, sampled_token_ids):
            if sampled and len(draft) < k:
                self.padded_draft_tokens += k - len(draft)
                draft = list(draft) + [(draft or sampled)[-1]] * (k - len(draft))
            padded.append(draft)
        return padded

    def _copy_draft_token_ids_to_cpu(self, scheduler_output, zeros_only: bool = False) -> None:
        """Draft tokens proposed on the device, copied synchronously (vLLM overlaps the
        copy on a CUDA stream); an n-gram proposer's host lists need no copy."""
        self._draft_token_req_ids = self.input_batch.req_ids.copy()
        drafts = self._draft_token_ids
        if not torch.is_tensor(drafts):
            return
        self.prev_num_spec_tokens = drafts.shape[1]
        rows, cols = drafts.shape
        if zeros_only:
            self.draft_token_ids_cpu[:rows, :cols] = 0
        else:
            self.target.synchronize()
            self.draft_token_ids_cpu[:rows, :cols].copy_(drafts)

    def _sync_device(self) -> None:
        self.target.synchronize()

    def _to_list(self, sampled_token_ids: torch.Tensor) -> list[list[int]]:
        # vLLM copies through a pinned buffer + CUDA event; the target syncs instead.
        self.target.synchronize()
        return sampled_token_ids.tolist()

    def shutdown(self) -> None:
        logger.info("npu_graph: graph coverage: %s", self.graph_coverage.summary())
        if self.speculative_config is not None:
            logger.info(
                "npu_graph: speculative decoding: %d draft token(s) padded to keep steps uniform "
                "(counted in vLLM's spec-decode draft metrics)",
                self.padded_draft_tokens,
            )
        wrapper = self.model if isinstance(getattr(self, "model", None), NPUGraphWrapper) else None
        try:
            self.graph_coverage.save(
                last_run_report_path(),
                model=self.model_config.model,
                target=self.target.name,
                captured_sizes=wrapper.captured_sizes if wrapper else [],
                failed_sizes={str(k): v for k, v in wrapper.failed_sizes.items()} if wrapper else {},
            )
        except OSError as exc:
            logger.warning("npu_graph: could not write the run report: %s", exc)
        super().shutdown()
