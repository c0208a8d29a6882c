"""N-gram speculative decoding on the host target, graph mode: batch-1 tokens/s with
and without speculation on prompts that quote their own text (the case n-gram lookup
serves), and the acceptance rate from vLLM's spec-decode counters.

One engine per mode, each in its own process; runs interleaved (a round runs every
prompt on each mode in turn, the other engine paused with SIGSTOP), medians over
rounds. Greedy tokens of both modes are compared.

    .venv/bin/python bench/spec_decode.py [--rounds 3] [--tokens 96] [--k 3]
"""

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import time

from host_speed import _reply as reply  # bench/ is the script's folder: an engine process's next JSON line

# Paragraphs of CPython's LICENSE.txt (ships with every Python), each to be quoted back.
PROMPT = "{text}\n\nCopy the paragraph above exactly, word for word:\n\n"


def paragraphs(n: int) -> list[str]:
    path = os.path.join(sys.base_prefix, "lib", f"python{sys.version_info.major}.{sys.version_info.minor}")
    text = open(os.path.join(path, "LICENSE.txt"), encoding="utf-8").read()
    paras = [" ".join(p.split()) for p in text.split("\n\n") if len(p.split()) > 40]
    return paras[:n]


def counters(llm) -> dict:
    return {
        m.name.removeprefix("vllm:spec_decode_"): m.value
        for m in llm.get_metrics()
        if m.name.startswith("vllm:spec_decode_num_") and hasattr(m, "value")
    }


def serve(k: int) -> None:
    """Child: one engine (k = 0: no speculation); answers {"prompt", "tokens"} lines."""
    from vllm import LLM, SamplingParams

    from vllm_npu_graph.models import build_default_model

    spec = {"method": "ngram", "num_speculative_tokens": k, "prompt_lookup_max": 4, "prompt_lookup_min": 2}
    llm = LLM(
        model=str(build_default_model()),
        dtype="float32",
        max_model_len=2048,
        max_num_seqs=4,
        seed=0,
        kv_cache_memory_bytes=256 << 20,
        enable_prefix_caching=False,
        disable_log_stats=False,
        **({"speculative_config": spec} if k else {}),
    )
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        ask = json.loads(line)
        params = SamplingParams(temperature=0.0, max_tokens=ask["tokens"], ignore_eos=True)
        before, t = counters(llm), time.perf_counter()
        out = llm.generate([ask["prompt"]], params, use_tqdm=False)[0]
        elapsed, after = time.perf_counter() - t, counters(llm)
        delta = {name: after[name] - before.get(name, 0) for name in after}
        print(json.dumps({"s": elapsed, "tokens": list(out.outputs[0].token_ids), "counters": delta}), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--serve", type=int)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--tokens", type=int, default=96)
    parser.add_argument("--prompts", type=int, default=4)
    parser.add_argument("--k", type=int, default=3)
    args = parser.parse_args()
    if args.serve is not None:
        return serve(args.serve)
    env = dict(os.environ, VLLM_NPU_GRAPH_TARGET="host")
    modes = {"graph": 0, f"graph+ngram(k={args.k})": args.k}
    procs = {}
    for name, k in modes.items():
        procs[name] = subprocess.Popen(
            [sys.executable, __file__, "--serve", str(k)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=env,
            text=True,
            start_new_session=True,
        )
        reply(procs[name])
        os.killpg(procs[name].pid, signal.SIGSTOP)
    prompts = [PROMPT.format(text=p) for p in paragraphs(args.prompts)]
    rates = {name: [] for name in modes}
    tokens, spec = {}, {"num_draft_tokens": 0, "num_accepted_tokens": 0, "num_drafts": 0}
    for r in range(args.rounds):
        for name, proc in procs.items():
            os.killpg(proc.pid, signal.SIGCONT)
            took = 0.0
            for i, prompt in enumerate(prompts):
                proc.stdin.write(json.dumps({"prompt": prompt, "tokens": args.tokens}) + "\n")
                proc.stdin.flush()
                answer = reply(proc)
                took += answer["s"]
                tokens[(name, i)] = answer["tokens"]
                for key in spec:
                    spec[key] += answer["counters"].get(key, 0)
            os.killpg(proc.pid, signal.SIGSTOP)
            rates[name].append(len(prompts) * args.tokens / took)
            print(f"round {r + 1} {name:18s}: {rates[name][-1]:6.1f} tok/s at batch 1", flush=True)
    for proc in procs.values():
        os.killpg(proc.pid, signal.SIGCONT)
        proc.stdin.close()
        proc.wait()
    med = {name: statistics.median(v) for name, v in rates.items()}
    plain, fast = list(modes)
    same = all(tokens[(plain, i)] == tokens[(fast, i)] for i in range(len(prompts)))
    print(
        f"\nmedians at batch 1: {plain} {med[plain]:.1f} tok/s, {fast} {med[fast]:.1f} tok/s: "
        f"{med[fast] / med[plain]:.2f}x"
    )
    print(
        f"acceptance: {spec['num_accepted_tokens']} of {spec['num_draft_tokens']} draft tokens "
        f"({spec['num_accepted_tokens'] / max(spec['num_draft_tokens'], 1):.0%}, drafts padded to k included); "
        f"mean accepted per step {spec['num_accepted_tokens'] / max(spec['num_drafts'], 1):.2f}"
    )
    print(f"greedy tokens equal with and without speculation: {same}")


if __name__ == "__main__":
    main()
