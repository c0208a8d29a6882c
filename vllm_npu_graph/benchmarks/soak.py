"""Bounded soak of a graph-mode `vllm serve`: 300+ mixed requests at concurrency 32, then
the checks a user relies on: no 5xx, no KV-cache block leaked, every greedy answer equal
to an eager server's, healthy afterwards, and a stop with no error in the log.

    flock /tmp/npu-graph-engine.lock .venv/bin/python -m vllm_npu_graph.benchmarks.soak [--quick]

One server at a time (2-core machines): the graph server serves the whole mix and is
stopped; then an eager server (`--enforce-eager`, otherwise the same flags) replays the
greedy requests. Writes soak.json and summary.md under bench/results/soak-<date>[-quick]/
(server logs under logs/, not committed). Exit status 1 when a check fails.
"""

import argparse
import asyncio
import datetime
import json
import os
import re
import shlex
import sys
import time
import urllib.request
from pathlib import Path

import psutil

from vllm_npu_graph.benchmarks import machine, online, procs
from vllm_npu_graph.benchmarks import soak_workload as workload
from vllm_npu_graph.benchmarks.modes import build_modes
from vllm_npu_graph.benchmarks.runner import RESULTS_DIR, first_mismatch, free_port
from vllm_npu_graph.files import write_json_atomic, write_text_atomic
from vllm_npu_graph.processes import wait_until_healthy

MAX_MODEL_LEN = 2048
CONCURRENCY = 32
REQUEST_TIMEOUT_S = 300
_SAMPLE = re.compile(r"^([a-zA-Z_:][\w:]*)(\{[^}]*\})?\s+(\S+)$")
_LABEL = re.compile(r'(\w+)="([^"]*)"')


# ---- the engine's own figures, from /metrics -------------------------------------------


def parse_metrics(text: str) -> dict[str, list[tuple[dict, float]]]:
    """Prometheus text -> {name: [(labels, value), ...]}."""
    out: dict[str, list[tuple[dict, float]]] = {}
    for line in text.splitlines():
        match = _SAMPLE.match(line.strip())
        if match and not line.startswith("#"):
            labels = dict(_LABEL.findall(match.group(2) or ""))
            out.setdefault(match.group(1), []).append((labels, float(match.group(3))))
    return out


def engine_figures(metrics: dict) -> dict:
    """KV-cache blocks in use/free (usage x the pool, less vLLM's one null block), running
    and waiting requests, prefix-cache queries and hits, preemptions."""

    def value(name: str) -> float | None:
        samples = metrics.get(name)
        return sum(v for _, v in samples) if samples else None

    info = metrics.get("vllm:cache_config_info", [({}, 0)])[0][0]
    blocks = int(info["num_gpu_blocks"]) - 1 if info.get("num_gpu_blocks", "None").isdigit() else None
    usage = value("vllm:kv_cache_usage_perc")
    used = round(usage * blocks) if usage is not None and blocks is not None else None
    return {
        "kv_usage": usage,
        "kv_blocks": blocks,
        "kv_blocks_used": used,
        "kv_blocks_free": blocks - used if used is not None else None,
        "running": value("vllm:num_requests_running"),
        "waiting": value("vllm:num_requests_waiting"),
        "prefix_cache_queries": value("vllm:prefix_cache_queries_total"),
        "prefix_cache_hits": value("vllm:prefix_cache_hits_total"),
        "preemptions": value("vllm:num_preemptions_total"),
    }


def read_figures(base: str) -> dict:
    with urllib.request.urlopen(f"{base}/metrics", timeout=30) as resp:
        return engine_figures(parse_metrics(resp.read().decode()))


def settled_figures(base: str, model: str, timeout_s: float = 120) -> dict:
    """Figures of an idle engine. vLLM refreshes the KV gauge at each engine step, so an
    abort on an idle engine (a dropped stream) is not in it until the next step: wait for
    no running or waiting request, then send a one-token probe and read after it."""
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        figures = read_figures(base)
        if not figures["running"] and not figures["waiting"]:
            break
        time.sleep(1)
    probe = {"model": model, "prompt": [1000], "max_tokens": 1, "temperature": 0}
    req = urllib.request.Request(
        f"{base}/v1/completions", json.dumps(probe).encode(), {"Content-Type": "application/json"}
    )
    urllib.request.urlopen(req, timeout=60).read()
    return read_figures(base)


def tree_rss(pid: int) -> int:
    root = psutil.Process(pid)
    total = 0
    for p in [root, *root.children(recursive=True)]:
        try:
            total += p.memory_info().rss
        except psutil.Error:
            pass
    return total


def health(base: str) -> int | None:
    try:
        with urllib.request.urlopen(f"{base}/health", timeout=10) as resp:
            return resp.status
    except OSError as exc:
        return getattr(exc, "code", None)


def stop_report(proc, log: Path) -> dict:
    """Stop with SIGTERM (what `make demo` and service managers do); the exit code and the
    ERROR / traceback lines the log has from the stop on."""
    procs.stop(proc)
    text = log.read_text(errors="replace")
    at = text.find("shutdown triggered")
    tail = text[at:] if at >= 0 else ""
    bad = [ln for ln in tail.splitlines() if "ERROR" in ln or "Traceback" in ln or "EngineDeadError" in ln]
    return {
        "exit_code": proc.returncode,
        "stop_logged": at >= 0,
        "error_lines_at_stop": bad[:20],
        "error_lines_while_serving": sum("ERROR" in ln for ln in text[: at if at >= 0 else None].splitlines()),
        "clean": at >= 0 and not bad,
    }


# ---- the run ---------------------------------------------------------------------------


def start_server(mode, model: str, port: int, log: Path, extra: dict):
    args = {
        "model": model,
        "dtype": "float32",
        "max_model_len": MAX_MODEL_LEN,
        "seed": 0,
        "enable_prefix_caching": True,
        **mode.engine_args,
        **extra,
    }
    proc, peak = procs.launch(online.serve_command(args, port), mode.env, log)
    try:
        wait_until_healthy(f"http://127.0.0.1:{port}", proc, timeout_s=900)
    except Exception as exc:
        procs.stop(proc)
        peak.stop()
        raise RuntimeError(f"the {mode.name} server did not start; its log: {log}\n{procs.tail(log)}") from exc
    return proc, peak


def soak_graph(model: str, plan, burst, logs: Path, engine_extra: dict) -> dict:
    graph = build_modes(["graph"])[0]
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = logs / "graph-serve.log"
    started = time.time()
    proc, peak = start_server(graph, model, port, log, engine_extra)
    record: dict = {"start_s": round(time.time() - started, 1)}
    try:
        record["before"] = settled_figures(base, online.SERVED_NAME)
        record["rss_before_mib"] = round(tree_rss(proc.pid) / 2**20)
        began = time.time()
        mixed = asyncio.run(workload.run_specs(base, plan, CONCURRENCY, REQUEST_TIMEOUT_S))
        burst_results = asyncio.run(workload.run_specs(base, burst, len(burst), REQUEST_TIMEOUT_S))
        record["soak_s"] = round(time.time() - began, 1)
        record["after"] = settled_figures(base, online.SERVED_NAME)
        record["rss_after_mib"] = round(tree_rss(proc.pid) / 2**20)
        record["health_after"] = health(base)
        record["results"] = workload.as_dicts(mixed + burst_results)
    finally:
        record["stop"] = stop_report(proc, log)
        record["peak_rss_mib"] = round(peak.stop() / 2**20)
    return record


def replay_eager(model: str, greedy: list, logs: Path, engine_extra: dict) -> dict:
    eager = build_modes(["eager"])[0]
    port = free_port()
    log = logs / "eager-serve.log"
    proc, peak = start_server(eager, model, port, log, engine_extra)
    try:
        results = asyncio.run(workload.run_specs(f"http://127.0.0.1:{port}", greedy, CONCURRENCY, REQUEST_TIMEOUT_S))
    finally:
        stop = stop_report(proc, log)
        peak.stop()
    return {"results": workload.as_dicts(results), "stop": stop}


# ---- checks and report -----------------------------------------------------------------


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    values = sorted(values)
    return values[min(len(values) - 1, max(0, round(q / 100 * (len(values) - 1))))]


def analyse(specs: dict, graph: dict, eager: dict | None) -> dict:
    results = graph["results"]
    statuses: dict[str, int] = {}
    for r in results:
        key = str(r["status"]) if r["status"] is not None else ("dropped" if r["dropped"] else "no-response")
        statuses[key] = statuses.get(key, 0) + 1
    served = [r for r in results if r["status"] == 200 and not r["dropped"]]
    failures = [
        r
        for r in results
        if not r["dropped"]
        and (r["status"] is None or r["status"] >= 500 or (r["status"] != 200 and r["kind"] != "overlong"))
    ]
    overlong_bad = [
        r["id"]
        for r in results
        if r["kind"] == "overlong"
        and not (
            r["status"] == 400
            or (
                r["status"] == 200
                and r["finish_reasons"] == ["length"]
                and (r["prompt_tokens"] or 0) + len(r["token_ids"][0]) <= MAX_MODEL_LEN
            )
        )
    ]
    n_bad = [
        r["id"]
        for r in results
        if r["kind"] == "n"
        and r["status"] == 200
        and (len(r["token_ids"]) != specs[r["id"]].body["n"] or not all(r["token_ids"]))
    ]
    pairs: dict[int, list] = {}
    for r in results:
        if r["kind"] == "seeded":
            pairs.setdefault(specs[r["id"]].pair, []).append(r["texts"])
    seeded_bad = [p for p, texts in pairs.items() if len(texts) != 2 or texts[0] != texts[1]]
    burst = [r["token_ids"] for r in results if r["kind"] == "burst"]
    before, after = graph["before"], graph["after"]
    leaked = (
        after["kv_blocks_used"] - before["kv_blocks_used"]
        if None not in (after["kv_blocks_used"], before["kv_blocks_used"])
        else None
    )
    latencies = [r["latency_s"] for r in served]
    ttfts = [r["ttft_s"] for r in served if r["ttft_s"] is not None]
    out = {
        "requests_sent": len(results),
        "served": len(served),
        "dropped_on_purpose": sum(r["dropped"] for r in results),
        "status_counts": statuses,
        "server_errors_5xx": sum(1 for r in results if (r["status"] or 0) >= 500),
        "client_errors": [
            {"id": r["id"], "kind": r["kind"], "status": r["status"], "error": r["error"]} for r in failures
        ][:20],
        "overlong": {
            "status_400": sum(r["kind"] == "overlong" and r["status"] == 400 for r in results),
            "truncated_200": sum(r["kind"] == "overlong" and r["status"] == 200 for r in results),
            "bad": overlong_bad,
        },
        "n_bad": n_bad,
        "seeded_pairs": len(pairs),
        "seeded_pairs_differing": seeded_bad,
        "burst": {
            "requests": len(burst),
            "all_identical": len(burst) > 0 and all(b == burst[0] for b in burst),
            "prefix_cache_hits_gained": (after["prefix_cache_hits"] or 0) - (before["prefix_cache_hits"] or 0),
        },
        "kv_blocks": {
            "total": before["kv_blocks"],
            "used_before": before["kv_blocks_used"],
            "used_after": after["kv_blocks_used"],
            "free_before": before["kv_blocks_free"],
            "free_after": after["kv_blocks_free"],
            "usage_before": before["kv_usage"],
            "usage_after": after["kv_usage"],
            "leaked": leaked,
        },
        "preemptions": (after["preemptions"] or 0) - (before["preemptions"] or 0),
        "latency_s": {
            "p50": percentile(latencies, 50),
            "p99": percentile(latencies, 99),
            "max": max(latencies) if latencies else None,
        },
        "ttft_s_streams": {"p50": percentile(ttfts, 50), "p99": percentile(ttfts, 99)},
        "rss_mib": {
            "peak_server_tree": graph["peak_rss_mib"],
            "idle_before": graph["rss_before_mib"],
            "idle_after": graph["rss_after_mib"],
        },
        "health_after": graph["health_after"],
        "stop": graph["stop"],
    }
    if eager is not None:
        by_id = {r["id"]: r for r in results}
        mismatches, compared = [], 0
        for e in eager["results"]:
            g = by_id[e["id"]]
            if e["status"] != 200:
                mismatches.append({"id": e["id"], "kind": e["kind"], "eager_status": e["status"]})
                continue
            compared += 1
            where = first_mismatch(g["token_ids"], e["token_ids"])
            if where is not None:
                mismatches.append(
                    {
                        "id": e["id"],
                        "kind": e["kind"],
                        "first_difference": {"choice": where[0], "token": where[1]},
                        "prompt_len": specs[e["id"]].prompt_len,
                    }
                )
        out["greedy_vs_eager"] = {
            "compared": compared,
            "equal": compared - sum("first_difference" in m for m in mismatches),
            "mismatches": mismatches,
            "eager_stop": eager["stop"],
        }
    out["checks"] = {
        "no_5xx_or_failed_requests": out["server_errors_5xx"] == 0 and not failures,
        "overlong_400_or_truncated": not overlong_bad,
        "n_choices_complete": not n_bad,
        "seeded_pairs_identical": not seeded_bad,
        "burst_identical_and_prefix_cached": out["burst"]["all_identical"]
        and out["burst"]["prefix_cache_hits_gained"] > 0,
        "no_leaked_kv_blocks": leaked == 0,
        "healthy_after": graph["health_after"] == 200,
        "stop_clean": graph["stop"]["clean"] and graph["stop"]["exit_code"] == 0,
    }
    if eager is not None:
        g = out["greedy_vs_eager"]
        out["checks"]["greedy_equals_eager"] = not g["mismatches"] and g["compared"] > 0
    return out


def summary_md(report: dict) -> str:
    a = report["analysis"]
    kv, lat, rss = a["kv_blocks"], a["latency_s"], a["rss_mib"]
    g = a.get("greedy_vs_eager", {})
    fmt = lambda v: "n/a" if v is None else f"{v:.2f}"  # noqa: E731
    rows = [
        ("requests sent / served (200, complete)", f"{a['requests_sent']} / {a['served']}"),
        ("dropped mid-stream on purpose", a["dropped_on_purpose"]),
        ("status codes", ", ".join(f"{k}: {v}" for k, v in sorted(a["status_counts"].items()))),
        ("5xx", a["server_errors_5xx"]),
        (
            "max_tokens past the context",
            f"{a['overlong']['status_400']} x 400, {a['overlong']['truncated_200']} x "
            f"200 truncated, bad: {a['overlong']['bad'] or 'none'}",
        ),
        ("seeded pairs identical", f"{a['seeded_pairs'] - len(a['seeded_pairs_differing'])} / {a['seeded_pairs']}"),
        (
            "burst of identical prompts",
            f"{a['burst']['requests']} requests, identical: {a['burst']['all_identical']}, "
            f"prefix-cache hits gained: {a['burst']['prefix_cache_hits_gained']:.0f} tokens",
        ),
        ("KV blocks used before / after (of total)", f"{kv['used_before']} / {kv['used_after']} (of {kv['total']})"),
        ("KV blocks leaked", kv["leaked"]),
        ("preemptions during the soak", f"{a['preemptions']:.0f}"),
        ("latency p50 / p99 / max (s)", f"{fmt(lat['p50'])} / {fmt(lat['p99'])} / {fmt(lat['max'])}"),
        ("stream TTFT p50 / p99 (s)", f"{fmt(a['ttft_s_streams']['p50'])} / {fmt(a['ttft_s_streams']['p99'])}"),
        ("peak RSS, server process tree (MiB)", rss["peak_server_tree"]),
        ("idle RSS before / after the soak (MiB)", f"{rss['idle_before']} / {rss['idle_after']}"),
        ("greedy == eager", f"{g.get('equal')} / {g.get('compared')}" if g else "not run"),
        ("/health after", a["health_after"]),
        (
            "stop (SIGTERM): exit code, ERROR lines",
            f"{a['stop']['exit_code']}, {len(a['stop']['error_lines_at_stop'])}",
        ),
        ("soak wall time (s)", report["graph"]["soak_s"]),
    ]
    lines = [
        f"# Soak: {Path(report['settings']['model']).name}, graph mode, {report['settings']['preset']}",
        "",
        f"`{report['command']}` on {report['machine']['cpu_model']} ({report['machine']['usable_cpus']} "
        f"usable CPUs), plugin {report['versions']['plugin']}, vLLM {report['versions']['vllm']}, "
        f"{report['created']}.",
        "",
        "| figure | value |",
        "| --- | --- |",
    ]
    lines += [f"| {k} | {v} |" for k, v in rows]
    lines += ["", "| check | result |", "| --- | --- |"]
    lines += [f"| {k} | {'pass' if ok else 'FAIL'} |" for k, ok in a["checks"].items()]
    if g.get("mismatches"):
        lines += ["", "Greedy mismatches vs eager (first differing token):", ""]
        lines += [f"- request {m['id']} ({m['kind']}): {m.get('first_difference') or m}" for m in g["mismatches"]]
    return "\n".join(lines) + "\n"


def chat_words(model: str) -> list[str]:
    """Plain words from the model's vocabulary, for chat prompts in ordinary text."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model)
    words = [
        t[1:] for t in tok.convert_ids_to_tokens(list(range(1000, 20000))) if t.startswith("Ġ") and t[1:].isalpha()
    ]
    return words or [f"w{i}" for i in range(500)]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="~40 requests: a smoke version of the soak")
    p.add_argument("--model", help="model folder (default: the embedded SmolLM2-135M-Instruct)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-eager", action="store_true", help="skip the eager replay of the greedy requests")
    p.add_argument("--out", type=Path, help="output folder (default: bench/results/soak-<date>[-quick])")
    args = p.parse_args(argv)
    os.environ.setdefault("VLLM_NPU_GRAPH_TARGET", "host")
    if args.model is None:
        from vllm_npu_graph.models import build_default_model

        args.model = str(build_default_model())
    preset = "quick" if args.quick else "full"
    created = datetime.datetime.now(datetime.timezone.utc)
    out = args.out or RESULTS_DIR / f"soak-{created:%Y-%m-%d}{'-quick' if args.quick else ''}"
    logs = out / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    plan, burst = workload.build_plan(
        preset, online.SERVED_NAME, MAX_MODEL_LEN, args.seed, words=chat_words(args.model)
    )
    print(
        f"soak: {len(plan)} mixed requests + a burst of {len(burst)} at concurrency {CONCURRENCY} -> {out}", flush=True
    )
    began = time.time()
    graph = soak_graph(args.model, plan, burst, logs, {})
    print(
        f"soak: graph server done in {graph['soak_s']} s; replaying the greedy requests on an eager server", flush=True
    )
    specs = {s.id: s for s in plan + burst}
    served = {r["id"] for r in graph["results"] if r["status"] == 200 and not r["dropped"]}
    greedy = [workload.greedy_replay(s) for s in plan + burst[:1] if s.kind in workload.GREEDY_KINDS and s.id in served]
    eager = None if args.no_eager else replay_eager(args.model, greedy, logs, {})
    if eager is not None:  # every burst answer is compared with the eager answer to the one prompt
        first = next((r for r in eager["results"] if r["kind"] == "burst"), None)
        if first is not None:
            eager["results"] += [{**first, "id": s.id} for s in burst[1:] if s.id in served]
    report = {
        "schema": "vllm-npu-graph-soak/1",
        "created": created.isoformat(timespec="seconds"),
        "command": "python -m vllm_npu_graph.benchmarks.soak " + shlex.join(argv if argv is not None else sys.argv[1:]),
        "machine": machine.describe(),
        "versions": machine.versions(),
        "settings": {
            "model": args.model,
            "preset": preset,
            "seed": args.seed,
            "concurrency": CONCURRENCY,
            "max_model_len": MAX_MODEL_LEN,
            "request_timeout_s": REQUEST_TIMEOUT_S,
            "counts": workload.COUNTS[preset],
        },
        "graph": {k: v for k, v in graph.items() if k != "results"},
        "wall_s": None,
    }
    report["analysis"] = analyse(specs, graph, eager)
    report["wall_s"] = round(time.time() - began, 1)
    report["requests"] = [
        {
            "id": r["id"],
            "kind": r["kind"],
            "status": r["status"],
            "dropped": r["dropped"],
            "latency_s": r["latency_s"],
            "ttft_s": r["ttft_s"],
            "prompt_tokens": r["prompt_tokens"],
            "tokens": [len(t) for t in r["token_ids"]],
            "finish": r["finish_reasons"],
            "error": r["error"],
        }
        for r in graph["results"]
    ]
    write_json_atomic(out / "soak.json", report, indent=1)
    write_text_atomic(out / "summary.md", summary_md(report))
    print(summary_md(report), flush=True)
    return 0 if all(report["analysis"]["checks"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
