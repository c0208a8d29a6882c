"""report.md from results.json: tables with each mode's ratio to `eager` and to `peer`,
the greedy-output check, and a paragraph on what the numbers mean."""

REFS = ("eager", "peer")


def _fmt(value, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _ratio(value, ref, higher_is_better: bool) -> str:
    """Speed-up over the reference: >1 means this mode is faster, whatever the unit."""
    if value is None or ref is None or value == 0 or ref == 0:
        return "-"
    return f"{(value / ref if higher_is_better else ref / value):.2f}x"


def _get(summary: dict, mode: str, section: str, key: str, field: str):
    return summary.get(mode, {}).get(section, {}).get(key, {}).get(field)


def _refs(summary: dict) -> list[str]:
    return [r for r in REFS if summary.get(r, {}).get("status") in ("ok", "partial")]


def _table(
    summary: dict, section: str, keys: list[str], field: str, head: str, higher: bool, digits: int = 1
) -> list[str]:
    refs = _refs(summary)
    cols = [f"{head} {k}" + "".join(f" | vs {r}" for r in refs) for k in keys]
    lines = ["| mode | " + " | ".join(cols) + " |", "|---" * (1 + len(keys) * (1 + len(refs))) + "|"]
    for mode in summary:
        cells = []
        for k in keys:
            value = _get(summary, mode, section, k, field)
            cells.append(_fmt(value, digits))
            cells += [_ratio(value, _get(summary, r, section, k, field), higher) for r in refs]
        lines.append(f"| {mode} | " + " | ".join(cells) + " |")
    return lines


def _keys(summary: dict, section: str) -> list[str]:
    keys = {k for e in summary.values() for k in e.get(section, {})}
    return sorted(keys, key=int)


def _online_table(summary: dict) -> list[str]:
    refs = _refs(summary)
    head = (
        "| concurrency | mode | req/s"
        + "".join(f" | vs {r}" for r in refs)
        + " | TTFT p50 | TTFT p99 | TPOT p50"
        + "".join(f" | vs {r}" for r in refs)
        + " | TPOT p99 | ITL p50 | ITL p99 | failed |"
    )
    lines = [head, "|---" * (head.count("|") - 1) + "|"]
    for c in _keys(summary, "online"):
        for mode in summary:
            level = summary[mode].get("online", {}).get(c)
            if not level:
                continue
            rps, tpot = level.get("request_throughput"), level.get("p50_tpot_ms")
            row = [c, mode, _fmt(rps, 2)]
            row += [_ratio(rps, _get(summary, r, "online", c, "request_throughput"), True) for r in refs]
            row += [_fmt(level.get("p50_ttft_ms")), _fmt(level.get("p99_ttft_ms")), _fmt(tpot)]
            row += [_ratio(tpot, _get(summary, r, "online", c, "p50_tpot_ms"), False) for r in refs]
            row += [
                _fmt(level.get("p99_tpot_ms")),
                _fmt(level.get("p50_itl_ms")),
                _fmt(level.get("p99_itl_ms")),
                _fmt(level.get("failed"), 0),
            ]
            lines.append("| " + " | ".join(row) + " |")
    return lines


def _startup_table(summary: dict) -> list[str]:
    lines = [
        "| mode | cold start s | warm start s | engine init (cold) s | compile s | capture s (graphs) | "
        "peak RSS offline MiB | peak RSS server MiB |",
        "|---" * 8 + "|",
    ]
    for mode, entry in summary.items():
        s = entry.get("startup", {})
        graphs = s.get("captured_graphs")
        capture = _fmt(s.get("capture_s")) + (f" ({graphs:.0f})" if graphs else "")
        lines.append(
            f"| {mode} | {_fmt(s.get('cold_s'))} | {_fmt(s.get('warm_s'))} | {_fmt(s.get('engine_start_cold_s'))} | "
            f"{_fmt(s.get('compile_s'))} | {capture} | {_fmt(s.get('peak_rss_mib_offline'), 0)} | "
            f"{_fmt(s.get('peak_rss_mib_server'), 0)} |"
        )
    return lines


def _greedy_lines(summary: dict) -> list[str]:
    lines = [
        "| mode | greedy tokens equal eager's | first difference [prompt, token] | same in every repeat |",
        "|---|---|---|---|",
    ]
    for mode, entry in summary.items():
        g = entry.get("greedy", {})
        flag = {True: "yes", False: "**NO**", None: "-"}[g.get("matches_eager")]
        lines.append(
            f"| {mode} | {flag} | {g.get('first_mismatch_vs_eager') or '-'} | "
            f"{ {True: 'yes', False: '**no**', None: '-'}[g.get('same_every_repeat')] } |"
        )
    return lines


def _range(summary: dict, mode: str, ref: str, section: str, field: str, higher: bool) -> str | None:
    ratios = []
    for k in _keys(summary, section):
        a, b = _get(summary, mode, section, k, field), _get(summary, ref, section, k, field)
        if a and b:
            ratios.append(a / b if higher else b / a)
    if not ratios:
        return None
    lo, hi = min(ratios), max(ratios)
    return f"{lo:.2f}x" if abs(hi - lo) < 0.005 else f"{lo:.2f}x-{hi:.2f}x"


def meaning(results: dict) -> list[str]:
    """The generated paragraph: ratios of graph to eager and to the peer, where graph
    mode loses, and any greedy mismatch."""
    summary = results["summary"]
    facts = []
    for mode, ref in (("graph", "eager"), ("graph", "peer"), ("eager", "peer"), ("peer", "peer-eager")):
        if mode not in summary or ref not in summary:
            continue
        parts = [
            f"{what} {r}"
            for what, r in (
                ("decode throughput", _range(summary, mode, ref, "decode", "tok_s", True)),
                ("prefill throughput", _range(summary, mode, ref, "prefill", "tok_s", True)),
                ("serving request rate", _range(summary, mode, ref, "online", "request_throughput", True)),
                ("serving TPOT p50 (speed-up)", _range(summary, mode, ref, "online", "p50_tpot_ms", False)),
            )
            if r
        ]
        if parts:
            facts.append(f"`{mode}` vs `{ref}`: " + ", ".join(parts) + ".")
    flagged = [m for m, e in summary.items() if e.get("greedy", {}).get("matches_eager") is False]
    text = [
        "Ratios are speed-ups: above 1 the row's mode is faster than the reference (for times, the "
        "reference's time divided by the row's). Every number is the median over the repeats; modes ran "
        "interleaved with the same prompts, seeds, engine sizes, KV cache and threads.",
        "",
        *[f"- {f}" for f in facts],
    ]
    if flagged:
        text += [
            "",
            "Greedy outputs differ from `eager` for: "
            + ", ".join(f"`{m}`" for m in flagged)
            + " (see the table below; float32 kernels that sum in another order can flip a near-tie, "
            "a real bug changes tokens early and everywhere).",
        ]
    not_ok = {m: e.get("note") for m, e in summary.items() if e.get("status") != "ok"}
    if not_ok:
        text += ["", "Not measured in full: " + "; ".join(f"`{m}`: {n}" for m, n in not_ok.items()) + "."]
    return text


def _load_line(results: dict) -> list[str]:
    """The machine's load while the bench ran (other jobs on a shared machine slow every
    mode; interleaving spreads that over the modes, it does not remove it)."""
    loads = [r["load_1m"] for r in results.get("runs", []) if r.get("load_1m") is not None]
    if not loads:
        return []
    cpus = results["machine"]["usable_cpus"]
    return [
        f"- load average (1 min) at each run's start: {min(loads):.1f}-{max(loads):.1f} on {cpus} CPUs "
        f"(median {sorted(loads)[len(loads) // 2]:.1f}; above {cpus} means other jobs shared the CPUs)"
    ]


def render(results: dict, notes: str | None = None) -> str:
    s, m, v = results["settings"], results["machine"], results["versions"]
    summary, sizes = results["summary"], results["settings"]["sizes"]
    device = m["npu"] or f"{m['cpu_model']}, {m['usable_cpus']} usable CPUs ({m['cores']} cores), {m['memory_gib']} GiB"
    lines = [
        f"# vllm-npu-graph bench: {s['model'].rstrip('/').split('/')[-1]} ({s['preset']})",
        "",
        f"- date: {results['created']}",
        f"- machine: {device}; {m['os']}",
        *_load_line(results),
        f"- versions: vLLM {v['vllm']} ({v['vllm_distribution']}), torch {v['torch']}, plugin {v['plugin']}, "
        f"Triton {v['triton']}" + (f", torch_npu {v['torch_npu']}" if v.get("torch_npu") else ""),
        f"- command: `{results['command']}`",
        f"- engine (every mode): {', '.join(f'{k}={val}' for k, val in s['engine_args'].items() if k != 'model')}",
        f"- threads (every mode): {', '.join(f'{k}={val}' for k, val in s['thread_env'].items())}",
        f"- repeats: {sizes['repeats']}, interleaved (order rotated per repeat); medians reported",
        "",
        "## What the numbers mean",
        "",
        *meaning(results),
    ]
    if notes:
        lines += ["", notes.strip()]
    lines += ["", "## Modes", "", "| mode | what | status | note |", "|---|---|---|---|"]
    lines += [f"| {n} | {e['description']} | {e['status']} | {e.get('note') or ''} |" for n, e in summary.items()]
    if _keys(summary, "decode"):
        lines += [
            "",
            f"## Offline decode ({sizes['decode_prompt_len']}-token prompts, "
            f"{sizes['decode_new_tokens']} new tokens, greedy)",
            "",
            "Throughput (output tokens/s):",
            "",
        ]
        lines += _table(summary, "decode", _keys(summary, "decode"), "tok_s", "b", True)
        lines += ["", "Time per output token (ms):", ""]
        lines += _table(summary, "decode", _keys(summary, "decode"), "tpot_ms", "b", False, 2)
    if _keys(summary, "prefill"):
        lines += ["", "## Offline prefill (one prompt, tokens/s)", ""]
        lines += _table(summary, "prefill", _keys(summary, "prefill"), "tok_s", "len", True)
    if _keys(summary, "online"):
        lines += [
            "",
            f"## Serving (`vllm bench serve`, random dataset, {sizes['online_input_len']} in / "
            f"{sizes['online_output_len']} out tokens, seed {s['seed']}; times in ms)",
            "",
        ]
        lines += _online_table(summary)
    lines += [
        "",
        "## Start-up and memory",
        "",
        "Cold: offline engine on empty compile caches, process launch to `LLM(...)` ready. Warm: "
        "`vllm serve` on the caches the cold start left, launch to `/health`. Compile: vLLM's "
        "`torch.compile took` (our graph mode) or the CPU runner's compile warm-up (peer). Capture: "
        "our runner's graph captures. RSS: whole process tree.",
        "",
    ]
    lines += _startup_table(summary)
    lines += ["", "## Greedy outputs", ""] + _greedy_lines(summary)
    lines += [
        "",
        "## Plots",
        "",
        "![throughput](throughput.png)",
        "",
        "![serving](serving.png)",
        "",
        "![start-up](startup.png)",
        "",
    ]
    return "\n".join(lines)
