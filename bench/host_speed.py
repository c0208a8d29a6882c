"""Host-target speed against the peer: vLLM's own CPU platform (our plugin inactive),
eager and compiled, and our plugin, eager and graph mode, on the embedded model.

One engine per mode, each in its own process (started one after another, cold compile
caches; the start time is the engine's construction time). Measurements are then
interleaved (mode A, B, C, D, then again) for --rounds rounds, so drift on a noisy
machine hits every mode alike. Only the engine being started or measured runs: the others
are paused (SIGSTOP to their process group), as a user runs one engine. An idle engine
is not quiet: vLLM's CPU worker keeps polling for a while after each batch, and took
0.1-0.4 s of a core during another engine's 1.4 s batch-1 run here. Medians are
reported with the ratios the host-speed goals are stated in. Decode tokens/s and time
per output token come from the time of N+1 new tokens minus the time of 1 (the
prefill). Greedy tokens of every mode are compared with our eager mode's. With batch 1,
the last line is its floor on this machine (roofline.py): weight bytes a token over the
read bandwidth measured each round (every engine paused) on 1 thread and on all.

`--host-isa avx2|avx512` runs every mode at that x86 tier on a CPU with a higher one:
ours through VLLM_NPU_GRAPH_HOST_ISA, the peer's kernel build through bench/peer_isa,
both with ATen and Inductor held to it. Each mode prints the vLLM kernel library its
engine processes really mapped.

    .venv/bin/python bench/host_speed.py [--rounds 3] [--tokens 64] [--batches 1,16] [--host-isa avx2]

`--quantized` measures the embedded model's W8A8 checkpoint (docs/w8a8.md): the peer and
our graph mode on it, and our graph mode on the float model (`ours-graph-float`):

    .venv/bin/python bench/host_speed.py --quantized

`--dtype bfloat16|float16` runs every engine in that dtype (default float32). `--model DIR`
measures another folder, e.g. the MoE of realistic proportions:

    .venv/bin/python -m vllm_npu_graph.models tiny qwen3_moe_bench ~/.cache/vllm-npu-graph/models/moe-bench
    .venv/bin/python bench/host_speed.py --model ~/.cache/vllm-npu-graph/models/moe-bench
"""

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import roofline  # bench/roofline.py (this script's folder is on sys.path)

MODES = {  # name -> (VLLM_NPU_GRAPH_TARGET, enforce_eager)
    "peer-eager": ("auto", True),
    "peer-compiled": ("auto", False),
    "ours-eager": ("host", True),
    "ours-graph": ("host", False),
    "ours-graph-float": ("host", False),  # --quantized: graph mode on the float model
}
PROMPT = "Write a short story about robot number {i}."


def serve(mode: str, max_num_seqs: int, ours_config: dict, model: str, dtype: str) -> None:
    """Child: build the engine, then answer {"batch", "tokens"} lines on stdin."""
    from vllm import LLM, SamplingParams

    from vllm_npu_graph.models import build_default_model

    target, eager = MODES[mode]
    start = time.perf_counter()
    llm = LLM(
        model=model or str(build_default_model()),
        dtype=dtype,
        max_model_len=1024,
        max_num_seqs=max_num_seqs,
        seed=0,
        kv_cache_memory_bytes=512 << 20,
        enforce_eager=eager,
        enable_prefix_caching=False,
        **({"additional_config": {"npu_graph": ours_config}} if target == "host" and ours_config else {}),
    )
    print(json.dumps({"start_s": time.perf_counter() - start}), flush=True)

    def run(prompts, n):
        params = SamplingParams(temperature=0.0, max_tokens=n, ignore_eos=True)
        t = time.perf_counter()
        outs = llm.generate(prompts, params, use_tqdm=False)
        return time.perf_counter() - t, [list(o.outputs[0].token_ids) for o in outs]

    for line in sys.stdin:
        ask = json.loads(line)
        prompts = [PROMPT.format(i=i) for i in range(ask["batch"])]
        run(prompts, 2)  # warm
        prefill, _ = run(prompts, 1)
        total, tokens = run(prompts, ask["tokens"] + 1)
        decode = max(total - prefill, 1e-9)
        print(
            json.dumps(
                {
                    "tok_s": ask["batch"] * ask["tokens"] / decode,
                    "tpot_ms": decode / ask["tokens"] * 1e3,
                    "tokens": tokens,
                }
            ),
            flush=True,
        )


def tier_env(mode: str, tier: str | None) -> dict:
    """The environment that holds a mode to a forced x86 tier (none: the CPU's own)."""
    if not tier:
        return {}
    from vllm_npu_graph.targets.host_isa import FORCED_ENV

    if MODES[mode][0] == "host":
        return {"VLLM_NPU_GRAPH_HOST_ISA": tier, **FORCED_ENV[tier]}
    shim = str(Path(__file__).with_name("peer_isa"))
    path = os.pathsep.join(p for p in (shim, os.environ.get("PYTHONPATH")) if p)
    return {"NPU_GRAPH_BENCH_PEER_ISA": tier, "PYTHONPATH": path, **FORCED_ENV[tier]}


def mapped_vllm_kernels(proc: subprocess.Popen) -> list[str]:
    """vLLM kernel libraries mapped by any process of the engine's process group."""
    found = set()
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if os.getpgid(int(pid)) != proc.pid:
                continue
            with open(f"/proc/{pid}/maps") as f:
                found |= {Path(line.split()[-1]).name.split(".")[0] for line in f if "/vllm/_C" in line}
        except OSError:
            continue
    return sorted(found)


def start(
    mode: str, max_num_seqs: int, cache: str, ours_config: str, tier: str | None, model: str, dtype: str
) -> tuple[subprocess.Popen, float]:
    env = dict(
        os.environ,
        VLLM_NPU_GRAPH_TARGET=MODES[mode][0],
        VLLM_CACHE_ROOT=os.path.join(cache, "vllm"),
        TORCHINDUCTOR_CACHE_DIR=os.path.join(cache, "inductor"),
        **tier_env(mode, tier),
    )
    proc = subprocess.Popen(
        [sys.executable, __file__, "--serve", mode, "--max-num-seqs", str(max_num_seqs), "--ours-config", ours_config]
        + ["--model", model, "--dtype", dtype],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=env,
        text=True,
        start_new_session=True,
    )
    started = _reply(proc)["start_s"]
    _signal(proc, signal.SIGSTOP)
    return proc, started


def _signal(proc: subprocess.Popen, sig: int) -> None:
    """To the engine's whole process group (its engine-core and worker processes too)."""
    os.killpg(proc.pid, sig)


def _reply(proc) -> dict:
    for line in proc.stdout:
        if line.startswith("{"):
            return json.loads(line)
    raise RuntimeError(f"engine process exited with {proc.wait()}")


def print_floor(model: str, dtype: str, bandwidth: dict[int, float], peer: str, peer_med: dict) -> None:
    """Batch 1's floor on this machine (roofline.py): weight bytes a token over the
    measured read bandwidth, and the lowest time-per-token ratio it leaves."""
    from vllm_npu_graph.models import build_default_model

    weights = roofline.weight_bytes_per_token(model or build_default_model(), 4 if dtype == "float32" else 2)
    ordered = sorted(bandwidth.items())
    rates = ", ".join(f"{bw / 1e9:.1f} GB/s on {t} thread(s)" for t, bw in ordered)
    least = ", ".join(f"{weights / bw * 1e3:.1f} ms on {t}" for t, bw in ordered)
    ratios = " / ".join(f"{weights / bw * 1e3 / peer_med['tpot_ms']:.2f}x" for _, bw in ordered)
    print(
        f"batch 1 floor (bench/roofline.py): {weights / 1e6:.0f} MB of weights read a token; read bandwidth "
        f"{rates} (medians) -> at least {least}: {ratios} of {peer}'s {peer_med['tpot_ms']:.1f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--serve")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--batches", default="1,16")
    parser.add_argument("--max-num-seqs", type=int, default=16)
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument(
        "--ours-config", default="{}", help="our options for ours-* modes, e.g. '{\"host_threads\": 1}'"
    )
    parser.add_argument("--host-isa", choices=["avx2", "avx512"], help="force every mode to this x86 tier")
    parser.add_argument("--model", default="", help="a model folder (default: the embedded SmolLM2)")
    parser.add_argument("--quantized", action="store_true", help="the embedded model's W8A8 checkpoint")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    args = parser.parse_args()
    if args.serve:
        return serve(args.serve, args.max_num_seqs, json.loads(args.ours_config), args.model, args.dtype)
    float_model = args.model
    if args.quantized:
        from vllm_npu_graph.models import build_default_model
        from vllm_npu_graph.quantize import build_default_w8a8

        args.model, float_model = str(build_default_w8a8()), str(build_default_model())
        if args.modes == ",".join(MODES):
            args.modes = "peer-eager,peer-compiled,ours-graph,ours-graph-float"
    modes, batches = args.modes.split(","), [int(b) for b in args.batches.split(",")]
    procs, starts, results = {}, {}, {m: {b: [] for b in batches} for m in modes}
    cpus = len(os.sched_getaffinity(0))
    bandwidth = {1: [], cpus: []}  # threads -> bytes/s, once a round with every engine paused
    tokens = {}
    for mode in modes:  # cold: each mode its own empty compile caches
        procs[mode], starts[mode] = start(
            mode,
            max(batches),
            tempfile.mkdtemp(prefix=f"host_speed_{mode}_"),
            args.ours_config,
            args.host_isa,
            float_model if mode == "ours-graph-float" else args.model,
            args.dtype,
        )
        print(
            f"{mode}: engine ready in {starts[mode]:.1f} s (cold); vLLM kernels mapped: "
            f"{', '.join(mapped_vllm_kernels(procs[mode])) or 'none'}",
            flush=True,
        )
    for r in range(args.rounds):
        for threads, rates in bandwidth.items() if 1 in batches else ():
            rates.append(roofline.read_bandwidth(threads))
        for mode in modes:
            _signal(procs[mode], signal.SIGCONT)
            for b in batches:
                procs[mode].stdin.write(json.dumps({"batch": b, "tokens": args.tokens}) + "\n")
                procs[mode].stdin.flush()
                reply = _reply(procs[mode])
                results[mode][b].append(reply)
                tokens[(mode, b)] = reply["tokens"]
                print(
                    f"round {r + 1} {mode:14s} batch {b:3d}: {reply['tok_s']:7.1f} tok/s, "
                    f"TPOT {reply['tpot_ms']:6.1f} ms",
                    flush=True,
                )
            _signal(procs[mode], signal.SIGSTOP)
    for proc in procs.values():
        _signal(proc, signal.SIGCONT)
        proc.stdin.close()
        proc.wait()
    med = {
        m: {b: {k: statistics.median(x[k] for x in results[m][b]) for k in ("tok_s", "tpot_ms")} for b in batches}
        for m in modes
    }
    print("\nmedians (tok/s | TPOT ms) and engine start:")
    for m in modes:
        row = "  ".join(f"b{b}: {med[m][b]['tok_s']:7.1f} | {med[m][b]['tpot_ms']:6.1f}" for b in batches)
        print(f"  {m:14s} {row}  start {starts[m]:6.1f} s")
    peers = [m for m in modes if m.startswith("peer")]
    if "ours-graph" in modes and peers:
        best = {b: max(peers, key=lambda m: med[m][b]["tok_s"]) for b in batches}
        for b in batches:
            g, p = med["ours-graph"][b], med[best[b]][b]
            print(
                f"batch {b}: graph/peer({best[b]}) throughput {g['tok_s'] / p['tok_s']:.2f}x, "
                f"TPOT {g['tpot_ms'] / p['tpot_ms']:.2f}x"
            )
        if "ours-eager" in modes:
            for b in batches:
                print(
                    f"batch {b}: graph/eager throughput "
                    f"{med['ours-graph'][b]['tok_s'] / med['ours-eager'][b]['tok_s']:.2f}x"
                )
        print(f"start: graph {starts['ours-graph']:.1f} s vs peer-compiled {starts.get('peer-compiled', 0):.1f} s")
        if 1 in batches:
            print_floor(
                args.model,
                args.dtype,
                {t: statistics.median(r) for t, r in bandwidth.items()},
                best[1],
                med[best[1]][1],
            )
    if "ours-graph" in modes and "ours-graph-float" in modes:
        for b in batches:
            q, f = med["ours-graph"][b], med["ours-graph-float"][b]
            print(f"batch {b}: W8A8 graph / float graph TPOT {q['tpot_ms'] / f['tpot_ms']:.2f}x")
    if "ours-eager" in modes:
        for m in modes:
            same = all(tokens[(m, b)] == tokens[("ours-eager", b)] for b in batches)
            print(f"greedy tokens {m} == ours-eager: {same}")
    Path("/tmp/host_speed_last.json").write_text(json.dumps({"medians": med, "starts": starts}, indent=1))


if __name__ == "__main__":
    main()
