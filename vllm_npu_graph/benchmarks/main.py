"""`vllm-npu-graph bench`: compare eager, graph, pass ablations and the peer on one model
and machine; writes results.json, report.md and PNG plots under
bench/results/<date>-<machine>[-quick|-dry-run]/."""

import argparse
import datetime
import os
import shlex
import sys
from pathlib import Path

from vllm_npu_graph.benchmarks import machine, plots, report, runner, schema
from vllm_npu_graph.benchmarks.modes import BASE_MODES, build_modes
from vllm_npu_graph.benchmarks.settings import PRESETS, Settings
from vllm_npu_graph.files import read_json, write_json_atomic, write_text_atomic

SCHEMA = "vllm-npu-graph-bench/1"
RESULTS_DIR = runner.RESULTS_DIR


def parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="vllm-npu-graph bench", description=__doc__.splitlines()[0])
    p.add_argument(
        "--model",
        help="model folder, w8a8 (the embedded model's W8A8 checkpoint), or a seeded model's name "
        "(e.g. qwen3_moe_bench, a MoE of realistic proportions; "
        "see `python -m vllm_npu_graph.models tiny --help`); default: the embedded SmolLM2-135M-Instruct",
    )
    p.add_argument(
        "--modes",
        default=",".join(BASE_MODES),
        help="comma-separated: eager, graph, graph-no-<pass>, graph+<pass>, peer, peer-eager",
    )
    size = p.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="fewer sizes, one repeat: under 10 min on 2 cores")
    size.add_argument("--dry-run", action="store_true", help="smallest sizes that run every phase (tests, tiny models)")
    p.add_argument("--repeats", type=int, help="override the preset's repeats")
    p.add_argument("--phases", default="offline,online", help="offline, online or both")
    p.add_argument("--threads", type=int, help="OpenMP threads for every mode (default: usable CPUs minus one)")
    p.add_argument("--dtype", default=None, help="model dtype for every mode (default: float32 on the host)")
    p.add_argument("--out", type=Path, help="output folder (default: bench/results/<date>-<machine>[-preset])")
    p.add_argument("--notes", type=Path, help="markdown file appended to the report's explanation")
    p.add_argument(
        "--render", type=Path, metavar="DIR", help="only re-render report.md and plots from DIR/results.json"
    )
    p.add_argument("--no-progress", action="store_true")
    return p.parse_args(argv)


def write_outputs(results: dict, out_dir: Path, notes: str | None) -> None:
    title = f"{Path(results['settings']['model']).name}, {results['machine_label']}"
    write_json_atomic(out_dir / "results.json", results, indent=1)
    plots.all_plots(results["summary"], out_dir, title)
    write_text_atomic(out_dir / "report.md", report.render(results, notes))


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse(argv)
    notes = args.notes.read_text() if args.notes else None
    if args.render:
        results = read_json(args.render / "results.json", "bench results")
        if results is None:
            print(f"bench: no readable results.json in {args.render}", file=sys.stderr)
            return 2
        write_outputs(results, args.render, notes)
        print(f"bench: re-rendered {args.render}")
        return 0
    preset = "quick" if args.quick else "dry-run" if args.dry_run else "full"
    sizes = PRESETS[preset]
    if args.repeats:
        sizes.repeats = args.repeats
    info = machine.describe()
    on_npu = info["npu"] is not None
    modes = build_modes([m.strip() for m in args.modes.split(",") if m.strip()], on_npu)
    from vllm_npu_graph import models

    if args.model is None:
        args.model = str(models.build_default_model())
    elif args.model == "w8a8":
        from vllm_npu_graph.quantize import build_default_w8a8

        args.model = str(build_default_w8a8())
    elif args.model in models.TINY_ARCHS:
        args.model = str(models.build_tiny_model(args.model, models.cache_dir() / "models" / f"{args.model}-seed0"))
    settings = Settings(
        model=str(Path(args.model).resolve()),
        preset=preset,
        sizes=sizes,
        dtype=args.dtype or ("auto" if on_npu else "float32"),
        phases=[p.strip() for p in args.phases.split(",") if p.strip()],
    )
    if args.threads:
        settings.threads = args.threads
    label = machine.machine_label(info)
    created = datetime.datetime.now(datetime.timezone.utc)
    suffix = "" if preset == "full" else f"-{preset}"
    out_dir = args.out or RESULTS_DIR / f"{created:%Y-%m-%d}-{label}{suffix}"
    out_dir.mkdir(parents=True, exist_ok=True)
    for mode in modes:
        if mode.skipped:
            print(f"bench: {mode.name} skipped: {mode.skipped}", flush=True)
    print(f"bench: {preset} run of {', '.join(m.name for m in modes)} on {settings.model} -> {out_dir}", flush=True)
    load_before = os.getloadavg()
    records = runner.run_all(settings, modes, out_dir, progress=not args.no_progress)
    results = {
        "schema": SCHEMA,
        "created": created.isoformat(timespec="seconds"),
        "finished": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": shlex.join(["vllm-npu-graph", "bench", *argv]),
        "machine": info,
        "machine_label": label,
        "load_average": {"before": list(load_before), "after": list(os.getloadavg())},
        "versions": machine.versions(),
        "settings": settings.as_dict(),
        "modes": [
            {
                "name": m.name,
                "description": m.description,
                "env": {**settings.thread_env(), **m.env},
                "engine_args": m.engine_args,
                "skipped": m.skipped,
            }
            for m in modes
        ],
        "runs": records,
        "summary": runner.summarize(modes, records),
    }
    for problem in schema.problems(results):
        print(f"bench: results.json does not follow its schema: {problem}", flush=True)
    write_outputs(results, out_dir, notes)
    print(f"bench: wrote {out_dir}/results.json, report.md, throughput.png, serving.png, startup.png", flush=True)
    failed = [n for n, e in results["summary"].items() if e["status"] in ("failed", "partial")]
    if failed:
        print(f"bench: modes with failed runs: {', '.join(failed)} (see the report and {out_dir}/logs)", flush=True)
    return 1 if failed else 0
