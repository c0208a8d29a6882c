"""Subprocesses of a bench run: launched with one mode's environment and a log file,
watched for peak memory (RSS summed over the process tree: the engine core and workers
are children), and their logs scanned for compile and capture times."""

import os
import re
import subprocess
import threading
import time
from pathlib import Path

import psutil


class PeakRSS:
    """Samples the summed RSS of a process and its descendants until stopped."""

    def __init__(self, pid: int, every_s: float = 0.2):
        self.peak = 0
        self._stop = threading.Event()
        self._root = psutil.Process(pid)
        self._thread = threading.Thread(target=self._loop, args=(every_s,), daemon=True)
        self._thread.start()

    def _loop(self, every_s: float) -> None:
        while not self._stop.is_set():
            try:
                procs = [self._root, *self._root.children(recursive=True)]
                total = 0
                for p in procs:
                    try:
                        total += p.memory_info().rss
                    except psutil.Error:
                        pass
                self.peak = max(self.peak, total)
            except psutil.Error:
                return
            self._stop.wait(every_s)

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.peak


def launch(cmd: list[str], env_overrides: dict[str, str], log_path: Path) -> tuple[subprocess.Popen, PeakRSS]:
    env = dict(os.environ)
    env.update(env_overrides)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log = open(log_path, "w")
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    log.close()  # the child holds its own descriptor
    return proc, PeakRSS(proc.pid)


def stop(proc: subprocess.Popen, grace_s: float = 60) -> None:
    """SIGTERM to the process (vLLM shuts its engine down), SIGKILL to the group after
    the grace period so no engine process outlives its mode."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(proc.pid, 9)
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait()


def tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


_COMPILE = re.compile(r"torch\.compile took ([0-9.]+) s in total")
_CAPTURE_OURS = re.compile(r"npu_graph: captured .* in ([0-9.]+) s")
_CAPTURE_VLLM = re.compile(r"Graph capturing finished in ([0-9.]+) secs")
_INIT = re.compile(r"init engine \(profile, create kv cache, warmup model\) took ([0-9.]+) s")
_STAMP = re.compile(r"(\d\d-\d\d \d\d:\d\d:\d\d)")
_CPU_WARMUP = ("Warming up model for the compilation", "Warming up done")


def _cpu_warmup_s(lines: list[str]) -> float | None:
    """vLLM's CPU runner compiles inside its warm-up and logs no compile time: the
    span between its two log lines (whole-second stamps)."""
    stamps = []
    for marker in _CPU_WARMUP:
        line = next((ln for ln in lines if marker in ln), None)
        match = _STAMP.search(line) if line else None
        if not match:
            return None
        stamps.append(time.strptime("2000-" + match.group(1), "%Y-%m-%d %H:%M:%S"))
    return max(time.mktime(stamps[1]) - time.mktime(stamps[0]), 0.0)


def scan_engine_log(path: Path) -> dict:
    """Compile, capture and engine-init seconds from an engine's log (None: not logged)."""
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return {}
    text = "\n".join(lines)
    compile_s = sum(float(m) for m in _COMPILE.findall(text)) or _cpu_warmup_s(lines)
    captures = [float(m) for m in _CAPTURE_OURS.findall(text)] or [float(m) for m in _CAPTURE_VLLM.findall(text)]
    init = _INIT.findall(text)
    return {
        "compile_s": compile_s,
        "capture_s": sum(captures) if captures else None,
        "captured_graphs": len(_CAPTURE_OURS.findall(text)) or None,
        "engine_init_s": float(init[-1]) if init else None,
    }
