"""The host CPU's instruction-set tier: which of vLLM's kernel builds to load, and what
our own C++ op and Inductor may emit.

vLLM's CPU wheel for x86-64 carries its kernels three times, `_C` (AVX-512 + bf16),
`_C_AVX512` and `_C_AVX2`, and its CPU platform imports the one the CPU can run.
Importing a build for a tier the CPU lacks kills the process with SIGILL, so the host
target makes the same choice, and every native piece follows the tier: vLLM's kernels,
our op's compiler flags (never -march=native, so a forced lower tier emits nothing
above it) and, when a lower tier is forced, ATen's and Inductor's vector ISA.

`VLLM_NPU_GRAPH_HOST_ISA` forces a tier at or below the CPU's own (`avx2` on an AVX-512
machine runs the AVX2 path, which is how CI on one tier checks the other).
"""

import importlib
import logging
import os
import platform
from dataclasses import dataclass
from functools import cache

from vllm_npu_graph import envs
from vllm_npu_graph.targets.base import TargetError

AUTO = "auto"
X86_MACHINES = ("x86_64", "AMD64")  # platform.machine() on x86-64
TIERS = ("avx2", "avx512", "avx512_bf16")  # lowest first

# What each tier needs, in torch.cpu.get_capabilities() names (vLLM's own choice reads
# avx512_f and avx512_bf16; its AVX2 build is compiled with FMA).
NEEDS = {
    "avx2": ("avx2", "fma3"),
    "avx512": ("avx2", "fma3", "avx512_f"),
    "avx512_bf16": ("avx2", "fma3", "avx512_f", "avx512_bf16"),
}
VLLM_KERNELS = {"avx2": "vllm._C_AVX2", "avx512": "vllm._C_AVX512", "avx512_bf16": "vllm._C"}
# Our C++ op's flags: exactly the tier's instructions (its kernels use no more).
OP_FLAGS = {
    "avx2": ["-mavx2", "-mfma", "-mf16c"],
    "avx512": ["-mavx2", "-mfma", "-mf16c", "-mavx512f"],
    "avx512_bf16": ["-mavx2", "-mfma", "-mf16c", "-mavx512f", "-mavx512bf16"],
}
# A forced tier below the CPU's: ATen's kernel dispatch, Inductor's generated code
# (otherwise built with -march=native) and oneDNN (vLLM's and ATen's GEMMs, which
# otherwise pick VNNI, bf16 or AMX kernels by the CPU) held to it as well. oneDNN reads
# its cap when it first runs, so it must be in the environment the engine starts with.
FORCED_ENV = {
    "avx2": {"ATEN_CPU_CAPABILITY": "avx2", "TORCHINDUCTOR_CPP_MARCH": "x86-64-v3", "ONEDNN_MAX_CPU_ISA": "AVX2"},
    "avx512": {
        "ATEN_CPU_CAPABILITY": "avx512",
        "TORCHINDUCTOR_CPP_MARCH": "x86-64-v4",
        "ONEDNN_MAX_CPU_ISA": "AVX512_CORE",
    },
    "avx512_bf16": {},
}
# vLLM's loader raises this after loading a renamed build successfully (its module is
# named _C inside); vLLM's CPU platform ignores it the same way.
RENAMED_BUILD = "dynamic module does not define module export function"


class HostISAError(TargetError):
    """This CPU can't run the host target as asked; the message names what is missing."""


@dataclass(frozen=True)
class HostISA:
    machine: str  # platform.machine()
    detected: str | None  # the CPU's own tier (None: below vLLM's x86 floor, or not x86)
    tier: str | None  # the tier in use: detected, or the forced one
    forced: bool

    @property
    def is_x86(self) -> bool:
        return self.machine in X86_MACHINES

    @property
    def vllm_kernels(self) -> str:
        """The vLLM kernel module to import (other architectures have one build, `_C`)."""
        return VLLM_KERNELS[self.tier] if self.is_x86 else "vllm._C"

    @property
    def op_flags(self) -> list[str]:
        return ["-O3", "-fopenmp", *(OP_FLAGS[self.tier] if self.is_x86 else [])]

    def describe(self) -> str:
        if not self.is_x86:
            return f"{self.machine} (vLLM kernels {self.vllm_kernels}; our C++ op without x86 vector kernels)"
        how = f"forced by {envs.HOST_ISA}, the CPU has {self.detected}" if self.forced else "detected"
        return f"{self.tier} ({how}; vLLM kernels {self.vllm_kernels})"


def cpu_capabilities() -> dict:
    import torch

    return dict(torch.cpu.get_capabilities())


def cpu_flag_line() -> bytes:
    """The CPU's instruction-set flags as the kernel lists them (part of build keys)."""
    try:
        with open("/proc/cpuinfo", "rb") as f:
            return next((line for line in f if line.startswith(b"flags")), b"")
    except OSError:
        return platform.processor().encode()


def tier_of(capabilities: dict) -> str | None:
    """The highest tier whose every need the CPU has; None below AVX2 + FMA."""
    have = [t for t in TIERS if all(capabilities.get(flag, False) for flag in NEEDS[t])]
    return have[-1] if have else None


def requested() -> str:
    try:
        return envs.read(envs.HOST_ISA)
    except envs.EnvError as exc:
        raise HostISAError(str(exc)) from None


def resolve(capabilities: dict | None = None, machine: str | None = None, wanted: str | None = None) -> HostISA:
    """The tier the host target runs at; HostISAError when the CPU can't run it."""
    machine = machine or platform.machine()
    wanted = wanted or requested()
    if machine not in X86_MACHINES:
        if wanted != AUTO:
            raise HostISAError(f"{envs.HOST_ISA}={wanted} names an x86-64 tier, but this CPU is {machine}; unset it.")
        return HostISA(machine, None, None, False)
    capabilities = cpu_capabilities() if capabilities is None else capabilities
    detected = tier_of(capabilities)
    if detected is None:
        missing = [flag for flag in NEEDS["avx2"] if not capabilities.get(flag, False)]
        raise HostISAError(
            f"the host target needs an x86-64 CPU with AVX2 and FMA (the lowest tier of vLLM's CPU "
            f"kernels); this CPU lacks {', '.join(missing)}."
        )
    if wanted == AUTO:
        return HostISA(machine, detected, detected, False)
    if TIERS.index(wanted) > TIERS.index(detected):
        missing = [flag for flag in NEEDS[wanted] if not capabilities.get(flag, False)]
        raise HostISAError(
            f"{envs.HOST_ISA}={wanted} but this CPU lacks {', '.join(missing)}; set one of: "
            f"{', '.join((AUTO, *TIERS[: TIERS.index(detected) + 1]))}."
        )
    return HostISA(machine, detected, wanted, wanted != detected)


@cache
def current() -> HostISA:
    return resolve()


def apply_forced_tier(isa: HostISA) -> None:
    """A forced lower tier reaches ATen and Inductor through their own variables; set in
    the process that starts the engine, so the engine's processes inherit them."""
    if isa.forced:
        for name, value in FORCED_ENV[isa.tier].items():
            os.environ.setdefault(name, value)


def loaded_vllm_kernels() -> list[str]:
    """The vLLM kernel libraries mapped into this process (what was really loaded)."""
    try:
        with open("/proc/self/maps") as f:
            paths = {line.split()[-1] for line in f if "/vllm/_C" in line}
    except OSError:
        return []
    return sorted(os.path.basename(p).split(".")[0] for p in paths)


def load_vllm_kernels(logger: logging.Logger) -> None:
    """Import vLLM's kernel build for this CPU (the platform's import_kernels hook). A CPU
    the host target can't run imports nothing: the config check then refuses it."""
    try:
        isa = current()
    except HostISAError:
        return
    try:
        importlib.import_module(isa.vllm_kernels)
    except ImportError as exc:
        if RENAMED_BUILD not in str(exc):
            logger.warning("npu_graph: could not import vLLM's CPU kernels %s: %r", isa.vllm_kernels, exc)
