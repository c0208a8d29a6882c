"""Sampling faithfulness on SmolLM2, the table of README's speculative-decoding rows:
for each configuration, the sampling harness's continuations (tests/helpers/
sampling_runs.py: 96 seeded requests of 16 tokens after a prompt that quotes itself, at
temperature 1) scored by Hugging Face's float32 model: the PIT uniformity p-value, the
mean log-probability of the sampled tokens and the share of tokens that repeat the one
before. Configurations: ours (host target) and the peer (vLLM's CPU platform), graph
and eager, with and without n-gram speculation (k = 3).

    .venv/bin/python bench/sampling.py [--configs ours-graph-ngram,peer-eager-ngram,...]
"""

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

NGRAM = {"method": "ngram", "num_speculative_tokens": 3, "prompt_lookup_max": 3, "prompt_lookup_min": 1}
CONFIGS = ("ours-graph-none", "ours-graph-ngram", "ours-eager-ngram", "peer-eager-none", "peer-eager-ngram")
DRIVER = """
import json, sys
from helpers.engines import finish_driver, make_llm
from helpers import sampling_runs as runs
model, eager, spec = sys.argv[1], sys.argv[2] == "eager", json.loads(sys.argv[3])
llm = make_llm(model, enforce_eager=eager, **({"speculative_config": spec} if spec else {}))
ids = runs.prompt_ids(model, runs.CONTINUATION_PROMPT)
finish_driver(llm, runs.seeded(llm, ids, runs.CONTINUATIONS, runs.CONTINUATION_TOKENS, temperature=1.0))
"""


def run(model, config: str) -> list[list[int]]:
    who, mode, spec = config.split("-")
    env = dict(os.environ, VLLM_NPU_GRAPH_TARGET="host" if who == "ours" else "auto")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT / "tests"), env.get("PYTHONPATH")]))
    args = [sys.executable, "-c", DRIVER, str(model), mode, json.dumps(NGRAM if spec == "ngram" else None)]
    proc = subprocess.run(args, env=env, capture_output=True, text=True, timeout=1800)
    if proc.returncode != 0:
        raise RuntimeError(f"{config} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    from helpers import sampling_runs, sampling_stats

    from vllm_npu_graph.models import build_default_model

    parser = argparse.ArgumentParser()
    parser.add_argument("--configs", default=",".join(CONFIGS))
    args = parser.parse_args()
    model = build_default_model()
    hf = sampling_stats.load_hf(model)
    ids = sampling_runs.prompt_ids(model, sampling_runs.CONTINUATION_PROMPT)
    print("| configuration | PIT p-value | mean logprob of sampled tokens | repeat share |")
    print("| --- | --- | --- | --- |")
    for config in args.configs.split(","):
        conts = run(model, config)
        p = sampling_stats.continuation_p_value(hf, ids, conts, temperature=1.0)
        lp, rep = sampling_stats.mean_logprob(hf, ids, conts), sampling_stats.repeat_share(conts)
        print(f"| {config} | {p:.3g} | {lp:.3f} | {100 * rep:.1f}% |", flush=True)


if __name__ == "__main__":
    main()
