"""Host-target decode benchmark of the fusion passes on the embedded default model:
all passes on, none, and each one off, measured in this one run (graph mode, cold
compile caches). Prints decode tokens/s and TPOT at batch 1 and 16.

    VLLM_NPU_GRAPH_TARGET=host .venv/bin/python bench/passes.py [--alone attention,...]

--alone NAMES runs no passes, all passes and each named pass alone instead.
"""

import sys
import time

from decode_graph_vs_eager import BATCHES, NEW_TOKENS, measure  # also points caches at a fresh folder

from vllm_npu_graph.passes import PASS_NAMES


def configs(alone: list[str]):
    yield "all passes", dict.fromkeys(PASS_NAMES, True)
    yield "no passes", dict.fromkeys(PASS_NAMES, False)
    for name in alone:
        yield f"only {name}", {n: n == name for n in PASS_NAMES}
    for name in PASS_NAMES if not alone else ():
        yield f"all but {name}", {n: n != name for n in PASS_NAMES}


def main() -> int:
    import argparse

    from vllm import LLM

    parser = argparse.ArgumentParser()
    parser.add_argument("--alone", default="", help="comma-separated pass names to measure alone")
    alone = [n for n in parser.parse_args().alone.split(",") if n]

    from vllm_npu_graph.models import build_default_model

    model = str(build_default_model())
    rows = []
    for label, switches in configs(alone):
        start = time.perf_counter()
        llm = LLM(
            model=model,
            dtype="float32",
            max_model_len=1024,
            max_num_seqs=16,
            seed=0,
            kv_cache_memory_bytes=512 << 20,
            compilation_config={"cudagraph_capture_sizes": [1, 2, 4, 8, 16]},
            additional_config={"npu_graph": {"passes": switches}},
        )
        startup = time.perf_counter() - start
        rows.append((label, startup, [measure(llm, b) for b in BATCHES]))
        llm.llm_engine.engine_core.shutdown()
        del llm

    print(f"\nhost target, SmolLM2-135M-Instruct float32, graph mode, {NEW_TOKENS} new tokens per request")
    head = " | ".join(f"b{b} tok/s  TPOT" for b in BATCHES)
    print(f"{'config':<22} | {head} | start s")
    base = {b: rows[1][2][i][0] for i, b in enumerate(BATCHES)}
    for label, startup, results in rows:
        cells = " | ".join(f"{tps:>7.1f} {tpot:>5.1f}ms" for tps, tpot in results)
        ratio = " ".join(f"{results[i][0] / base[b]:.2f}x" for i, b in enumerate(BATCHES))
        print(f"{label:<22} | {cells} | {startup:>6.1f}  (vs no passes: {ratio})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
