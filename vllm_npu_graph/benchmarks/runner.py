"""Runs every mode on the same settings, interleaved: each repeat runs every mode once
(the order rotated per repeat), so drift on a noisy machine hits every mode alike; the
summary keeps the median of the repeats. Per mode and repeat: an offline engine started
on empty compile caches (the cold start), then a server on the caches it left (the warm
start) under `vllm bench serve`."""

import json
import os
import shutil
import socket
import statistics
import sys
import tempfile
import time
import traceback
from pathlib import Path

from vllm_npu_graph.benchmarks import online, procs
from vllm_npu_graph.files import write_json_atomic

RESULTS_DIR = Path("bench") / "results"  # committed runs, relative to the checkout the bench runs in


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def mode_env(mode, settings, cache: Path) -> dict[str, str]:
    return {
        **settings.thread_env(),
        **mode.env,
        "VLLM_CACHE_ROOT": str(cache / "vllm"),
        "TORCHINDUCTOR_CACHE_DIR": str(cache / "inductor"),
        "TRITON_CACHE_DIR": str(cache / "triton"),
    }


def run_offline(mode, settings, env: dict, logs: Path, tag: str, timeout_s: float = 1800) -> dict:
    sizes = settings.sizes
    spec = {
        "engine_args": settings.mode_engine_args(mode),
        "seed": settings.seed,
        "batches": sizes.batches,
        "prefill_lens": sizes.prefill_lens,
        "decode_prompt_len": sizes.decode_prompt_len,
        "decode_new_tokens": sizes.decode_new_tokens,
        "greedy_new_tokens": sizes.greedy_new_tokens,
    }
    spec_path, out_path = logs / f"{tag}-offline-spec.json", logs / f"{tag}-offline-out.json"
    write_json_atomic(spec_path, spec)
    launched = time.time()
    log = logs / f"{tag}-offline.log"
    proc, rss = procs.launch(
        [sys.executable, "-m", "vllm_npu_graph.benchmarks.offline_worker", str(spec_path), str(out_path)], env, log
    )
    try:
        proc.wait(timeout=timeout_s)
    finally:
        procs.stop(proc)
        peak = rss.stop()
    if proc.returncode != 0 or not out_path.exists():
        raise RuntimeError(f"offline run failed (exit {proc.returncode}), {log}:\n{procs.tail(log)}")
    out = json.loads(out_path.read_text())
    out["start_s"] = out.pop("ready_at") - launched
    out["peak_rss_bytes"] = peak
    out["log"] = procs.scan_engine_log(log)
    return out


def schedule(modes: list, repeats: int) -> list[tuple[int, object]]:
    """(repeat, mode) in run order: every mode once per repeat, order rotated."""
    order = []
    for r in range(repeats):
        shift = r % len(modes)
        order += [(r, m) for m in modes[shift:] + modes[:shift]]
    return order


def run_all(settings, modes: list, out_dir: Path, progress: bool = True) -> list[dict]:
    """Every run's record (mode, repeat, phase, status, numbers or error)."""
    from tqdm import tqdm

    logs = out_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="npu_graph_bench_"))
    runnable = [m for m in modes if not m.skipped]
    steps = [(r, m, phase) for r, m in schedule(runnable, settings.sizes.repeats) for phase in settings.phases]
    records, failed = [], set()
    bar = tqdm(steps, desc="bench", unit="run", disable=not progress, file=sys.stderr)
    try:
        for repeat, mode, phase in bar:
            bar.set_postfix_str(f"{mode.name} {phase} r{repeat}")
            # Load from outside the bench (other users' jobs) is recorded, not controlled.
            record = {"mode": mode.name, "repeat": repeat, "phase": phase, "load_1m": os.getloadavg()[0]}
            if (mode.name, phase) in failed:
                records.append({**record, "status": "skipped", "error": "failed in an earlier repeat"})
                continue
            cache = work / f"{mode.name}-r{repeat}"  # empty for the offline (cold) start
            env = mode_env(mode, settings, cache)
            tag = f"{mode.name}-r{repeat}"
            engine_args = settings.mode_engine_args(mode)
            try:
                if phase == "offline":
                    data = run_offline(mode, settings, env, logs, tag)
                else:
                    data = online.run(mode, engine_args, env, settings, free_port(), logs, tag)
                data["cache"] = "warm" if phase == "online" and "offline" in settings.phases else "cold"
                records.append({**record, "status": "ok", **data})
            except Exception as exc:  # one failing mode must not lose the others' numbers
                failed.add((mode.name, phase))
                records.append(
                    {
                        **record,
                        "status": "failed",
                        "error": f"{type(exc).__name__}: {exc}",
                        "trace": traceback.format_exc(limit=3),
                    }
                )
                tqdm.write(f"bench: {mode.name} {phase} repeat {repeat} failed: {exc}", file=sys.stderr)
            if phase == settings.phases[-1]:
                shutil.rmtree(cache, ignore_errors=True)
    finally:
        bar.close()
        shutil.rmtree(work, ignore_errors=True)
    return records


def median(values: list) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def first_mismatch(a: list[list[int]], b: list[list[int]]) -> list[int] | None:
    """[prompt, token] of the first differing greedy token, None when equal."""
    for i, (x, y) in enumerate(zip(a, b)):
        for j, (p, q) in enumerate(zip(x, y)):
            if p != q:
                return [i, j]
        if len(x) != len(y):
            return [i, min(len(x), len(y))]
    return None


def summarize(modes: list, records: list[dict]) -> dict:
    """Per mode: medians over repeats, start-up, memory, greedy agreement with eager."""
    ok = [r for r in records if r["status"] == "ok"]
    by = lambda name, phase: [r for r in ok if r["mode"] == name and r["phase"] == phase]  # noqa: E731
    eager_greedy = next((r["greedy"] for r in by("eager", "offline")), None)
    summary = {}
    for mode in modes:
        off, on = by(mode.name, "offline"), by(mode.name, "online")
        errors = [r["error"] for r in records if r["mode"] == mode.name and r["status"] == "failed"]
        entry = {"description": mode.description, "repeats": {"offline": len(off), "online": len(on)}}
        if mode.skipped:
            entry["status"], entry["note"] = "skipped", mode.skipped
        elif errors:
            entry["status"], entry["note"] = ("failed" if not (off or on) else "partial"), errors[0]
        else:
            entry["status"] = "ok"
        entry["decode"] = {
            str(d["batch"]): {
                "tok_s": median([x["tok_s"] for r in off for x in r["decode"] if x["batch"] == d["batch"]]),
                "tpot_ms": median([x["tpot_ms"] for r in off for x in r["decode"] if x["batch"] == d["batch"]]),
            }
            for d in (off[0]["decode"] if off else [])
        }
        entry["prefill"] = {
            str(p["prompt_len"]): {
                "tok_s": median([x["tok_s"] for r in off for x in r["prefill"] if x["prompt_len"] == p["prompt_len"]])
            }
            for p in (off[0]["prefill"] if off else [])
        }
        levels = on[0]["levels"] if on else []
        entry["online"] = {
            str(lv["concurrency"]): {
                k: median([x.get(k) for r in on for x in r["levels"] if x["concurrency"] == lv["concurrency"]])
                for k in lv
                if k not in ("concurrency", "num_prompts")
            }
            for lv in levels
        }
        entry["startup"] = {
            "cold_s": median([r["start_s"] for r in off]),
            "warm_s": median([r["start_s"] for r in on]),
            "engine_start_cold_s": median([r["engine_start_s"] for r in off]),
            "compile_s": median([r["log"].get("compile_s") for r in off]),
            "capture_s": median([r["log"].get("capture_s") for r in off]),
            "captured_graphs": median([r["log"].get("captured_graphs") for r in off]),
            "peak_rss_mib_offline": median([r["peak_rss_bytes"] / 2**20 for r in off]),
            "peak_rss_mib_server": median([r["peak_rss_bytes"] / 2**20 for r in on]),
        }
        greedy = [r["greedy"] for r in off]
        entry["greedy"] = {
            "tokens": greedy[0] if greedy else None,
            "matches_eager": None
            if not greedy or eager_greedy is None
            else first_mismatch(greedy[0], eager_greedy) is None,
            "first_mismatch_vs_eager": None
            if not greedy or eager_greedy is None
            else first_mismatch(greedy[0], eager_greedy),
            "same_every_repeat": all(g == greedy[0] for g in greedy) if greedy else None,
        }
        summary[mode.name] = entry
    return summary
