"""`vllm-npu-graph warmup`: prepare a configuration's compile cache before deployment.

    vllm-npu-graph warmup --model M [vllm serve engine args] [--check] [--clear] [--json FILE]

The engine configuration is built by vLLM's own `vllm serve` parser and config path,
so it is the one `vllm serve` with the same arguments builds (same VllmConfig hash).
The warm-up starts that engine once: it compiles (or loads) the whole decoder and
captures every size once, which validates and measures each size, then exits.
Captured graphs are not kept: device graphs can't be saved, so every start pays capture;
only compiled code is cached.

`--check` says, without compiling, whether the cache is warm for the configuration
(exit 0), cold (exit 1, naming the key components that differ from the nearest
entry), or that something failed (exit 2). `--clear` removes our entries, only ours.
"""

import argparse
import sys
import time

from vllm_npu_graph.compilation import cache_key
from vllm_npu_graph.compilation.cache_store import CompileCache
from vllm_npu_graph.files import write_json_atomic

WARM, COLD, ERROR = 0, 1, 2


def parse(argv: list[str]) -> tuple[argparse.Namespace, argparse.Namespace]:
    """Our flags, then the rest through `vllm serve`'s own parser."""
    ours = argparse.ArgumentParser(prog="vllm-npu-graph warmup", add_help=False)
    ours.add_argument("--check", action="store_true")
    ours.add_argument("--clear", action="store_true")
    ours.add_argument("--json", default=None)
    flags, rest = ours.parse_known_args(argv)
    from vllm.entrypoints.launchers.cli_args import make_arg_parser, validate_parsed_serve_args
    from vllm.utils.argparse_utils import FlexibleArgumentParser

    parser = make_arg_parser(FlexibleArgumentParser(prog="vllm-npu-graph warmup"))
    serve_args = parser.parse_args(rest)
    if getattr(serve_args, "model_tag", None) is not None:
        serve_args.model = serve_args.model_tag  # as `vllm serve` does
    validate_parsed_serve_args(serve_args)
    return flags, serve_args


def engine_config(serve_args):
    from vllm.engine.arg_utils import AsyncEngineArgs
    from vllm.entrypoints.launchers.cli_args import propagate_flash_late_interaction
    from vllm.usage.usage_lib import UsageContext

    engine_args = AsyncEngineArgs.from_cli_args(serve_args)
    propagate_flash_late_interaction(serve_args, engine_args)
    return engine_args.create_engine_config(usage_context=UsageContext.OPENAI_API_SERVER)


def key_for(vllm_config) -> tuple[dict, dict]:
    from vllm_npu_graph.config import plugin_config
    from vllm_npu_graph.targets import get_target

    sources = cache_key.source_hashes()
    return cache_key.key_components(vllm_config, get_target(), plugin_config(vllm_config), sources), sources


def run_engine(vllm_config) -> dict:
    """Start the engine once (compile or load, capture every size), collect rank 0's
    report, shut it down."""
    from vllm.usage.usage_lib import UsageContext
    from vllm.v1.engine.llm_engine import LLMEngine

    start = time.perf_counter()
    engine = LLMEngine.from_vllm_config(
        vllm_config, usage_context=UsageContext.OPENAI_API_SERVER, disable_log_stats=True
    )
    startup_s = time.perf_counter() - start
    try:
        reports = engine.collective_rpc("warmup_report")
    finally:
        engine.engine_core.shutdown()
    report = min(reports, key=lambda r: r["rank"])
    report["engine_startup_s"] = startup_s
    return report


def summarize(report: dict) -> dict:
    capture = report["capture"]
    return {
        "engine_startup_s": round(report["engine_startup_s"], 2),
        "compilation_s": round(report["compilation_time_s"], 2),
        "compile_source": ",".join(sorted({e["source"] for e in report["compile"]})) or "none",
        "capture_s": round(sum(c["capture_s"] for c in capture), 3),
        "capture_phase_s": round(report.get("capture_phase_s", 0.0), 3),
        "first_runs_s": round(sum(c["warmup_s"] for c in capture), 3),
        "graph_bytes": sum(c["graph_bytes"] for c in capture),
        "sizes": len(capture),
        "failed_sizes": [c["size"] for c in capture if not c["captured"]],
    }


def table(result: dict) -> str:
    lines = [f"{'size':>6} {'reqs':>5} {'first run (compile/load) s':>27} {'capture s':>10} {'graph MiB':>10}"]
    for c in sorted(result["capture"], key=lambda c: c["size"]):
        note = "" if c["captured"] else f"  FAILED: {c['error']}"
        lines.append(
            f"{c['size']:>6} {c['requests']:>5} {c['warmup_s']:>27.3f} {c['capture_s']:>10.3f} "
            f"{c['graph_bytes'] / 2**20:>10.1f}{note}"
        )
    t, cache = result["totals"], result["cache"]
    lines += [
        f"decoder compile: {t['compilation_s']:.2f} s ({t['compile_source']}); "
        f"engine start {t['engine_startup_s']:.2f} s",
        f"totals: {t['sizes']} sizes, first runs {t['first_runs_s']:.2f} s, captures {t['capture_s']:.2f} s "
        f"(capture step {t['capture_phase_s']:.2f} s), "
        f"graph memory {t['graph_bytes'] / 2**20:.1f} MiB (captured graphs are not cached: every start captures)",
        f"cache: {cache['entry']} ({'warm' if cache['warm'] else 'cold: ' + cache.get('reason', '')}); "
        f"folder {cache['folder']} holds {cache['bytes'] / 2**20:.1f} MiB",
    ]
    return "\n".join(lines)


def write_json(path: str | None, data: dict) -> None:
    if path:
        write_json_atomic(path, data, default=str)


def main(argv: list[str]) -> int:
    if argv and argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0
    try:
        flags, serve_args = parse(argv)
        cache = CompileCache()
        if flags.clear:
            removed, freed = cache.clear()
            print(
                f"vllm-npu-graph warmup: removed {removed} compile-cache entr{'y' if removed == 1 else 'ies'} "
                f"({freed / 2**20:.1f} MiB) from {cache.root}"
            )
            write_json(flags.json, {"cleared_entries": removed, "freed_bytes": freed, "folder": str(cache.root)})
            return 0
        vllm_config = engine_config(serve_args)
        components, sources = key_for(vllm_config)
        status = cache.status(components, sources)
        base = {
            "model": vllm_config.model_config.model,
            "vllm_config_hash": vllm_config.compute_hash(),
            "key": status["digest"],
            "components": components,
        }
        if flags.check:
            word = "warm" if status["warm"] else "cold"
            print(
                f"vllm-npu-graph warmup --check: {word} ({status['entry']})"
                + ("" if status["warm"] else f": {status['reason']}")
            )
            write_json(flags.json, {**base, "status": status})
            return WARM if status["warm"] else COLD
        print(
            f"vllm-npu-graph warmup: cache {'warm' if status['warm'] else 'cold'} before start"
            + ("" if status["warm"] else f" ({status['reason']})"),
            flush=True,
        )
        report = run_engine(vllm_config)
        after = cache.status(components, sources)
        result = {
            **base,
            "compile": report["compile"],
            "capture": report["capture"],
            "totals": summarize(report),
            "cache": {
                "folder": str(cache.root),
                "entry": after["entry"],
                "warm": after["warm"],
                "reason": after.get("reason", ""),
                "bytes": cache.size_bytes(),
            },
        }
        print(table(result), flush=True)
        write_json(flags.json, result)
        return 0
    except SystemExit as exc:  # argparse errors
        return ERROR if exc.code else 0
    except Exception as exc:
        print(f"vllm-npu-graph warmup: error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return ERROR
