"""The plugin's environment variables: one table of name -> parser, default, meaning and
whether the variable changes what is compiled (those are part of the compile-cache key).

Read a value as an attribute, parsed on each read: `envs.VLLM_NPU_GRAPH_TARGET`. A bad
value raises EnvError with one message format. vLLM checks every `VLLM_*` variable
against its own list (and refuses an unknown one in its strict mode); our platform's
`validate_environ` accepts these and names the valid ones for a misspelt one.
"""

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

PREFIX = "VLLM_NPU_GRAPH_"
TARGET = "VLLM_NPU_GRAPH_TARGET"
HOST_ISA = "VLLM_NPU_GRAPH_HOST_ISA"
STRICT_GRAPHS = "VLLM_NPU_GRAPH_STRICT_GRAPHS"
FAIL_CAPTURE_SIZES = "VLLM_NPU_GRAPH_FAIL_CAPTURE_SIZES"
FAIL_COMPILE = "VLLM_NPU_GRAPH_FAIL_COMPILE"
FAIL_STEP = "VLLM_NPU_GRAPH_FAIL_STEP"
HOST_VISIBLE_DEVICES = "VLLM_NPU_GRAPH_HOST_VISIBLE_DEVICES"
HOST_THREADS = "VLLM_NPU_GRAPH_HOST_THREADS"
CACHE = "VLLM_NPU_GRAPH_CACHE"
COMPILE_CACHE_DIR = "VLLM_NPU_GRAPH_COMPILE_CACHE_DIR"
DEMO_PORT = "VLLM_NPU_GRAPH_DEMO_PORT"


class EnvError(ValueError):
    """A variable's value can't be parsed; the message names the variable and what it takes."""


def choice(*values: str) -> Callable[[str], str]:
    def parse(text: str) -> str:
        value = text.strip().lower()
        if value not in values:
            raise ValueError(f"one of {', '.join(values)}")
        return value

    return parse


def flag(text: str) -> bool:
    value = text.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ValueError("1 or 0 (true/false, yes/no, on/off)")


def count(text: str) -> int:
    """A whole number >= 0."""
    try:
        value = int(text.strip())
    except ValueError:
        value = -1
    if value < 0:
        raise ValueError("a whole number >= 0")
    return value


def port(text: str) -> int:
    value = count(text)
    if not 0 < value < 65536:
        raise ValueError("a TCP port, 1-65535")
    return value


def capture_faults(text: str) -> tuple[frozenset[int], int | None]:
    """`4,8,oom:16`: sizes whose capture fails, and the size from which captures run out
    of memory (None: never)."""
    sizes, oom_from = set(), None
    for item in filter(None, (part.strip() for part in text.split(","))):
        number = item[len("oom:") :] if item.startswith("oom:") else item
        if not number.isdigit() or int(number) < 1:
            raise ValueError("comma-separated capture sizes >= 1, each optionally `oom:N`")
        if item.startswith("oom:"):
            oom_from = int(number)
        else:
            sizes.add(int(number))
    return frozenset(sizes), oom_from


@dataclass(frozen=True)
class EnvVar:
    name: str
    parse: Callable[[str], Any]
    default: str  # as it would be written in the environment
    description: str
    changes_compilation: bool = False


VARIABLES = {
    var.name: var
    for var in (
        EnvVar(
            TARGET,
            choice("auto", "npu", "host"),
            "auto",
            "which target the plugin drives: `auto` the NPU when one is present (else the plugin stays "
            "inactive), `npu`, or `host` (the CPU stand-in)",
            changes_compilation=True,
        ),
        EnvVar(
            HOST_ISA,
            choice("auto", "avx2", "avx512", "avx512_bf16"),
            "auto",
            "the host target's x86 CPU tier (vLLM's kernel build, our C++ op's instructions); a tier below "
            "the CPU's own runs that tier's code path, one above it is refused",
        ),
        EnvVar(
            STRICT_GRAPHS,
            flag,
            "0",
            "`1`: a host graph that would behave differently from a device graph is an error (tests)",
            changes_compilation=True,
        ),
        EnvVar(
            FAIL_CAPTURE_SIZES,
            capture_faults,
            "",
            "fault injection: comma-separated capture sizes whose capture fails; `oom:N`: every size of N "
            "tokens or more runs out of memory at capture",
            changes_compilation=True,
        ),
        EnvVar(FAIL_COMPILE, flag, "0", "fault injection: `1` makes compiling the decoder fail, so it runs uncompiled"),
        EnvVar(
            FAIL_STEP,
            count,
            "0",
            "fault injection: the model runner's N-th model step raises, a fatal engine-core error (0: never)",
        ),
        EnvVar(HOST_VISIBLE_DEVICES, str, "", "the host target's device-control variable (vLLM sets it per worker)"),
        EnvVar(
            HOST_THREADS,
            count,
            "0",
            "compute threads per rank on the host target when the `host_threads` option is unset "
            "(0: every usable CPU, shared among the ranks); e.g. 1 when several engines share a machine",
        ),
        EnvVar(
            CACHE,
            str,
            "",
            "folder for the embedded model, the host C++ op builds and run reports (default ~/.cache/vllm-npu-graph)",
        ),
        EnvVar(
            COMPILE_CACHE_DIR,
            str,
            "",
            "folder of our compile-cache entries (default $VLLM_CACHE_ROOT/npu_graph_compile_cache)",
        ),
        EnvVar(DEMO_PORT, port, "8765", "port of `vllm-npu-graph demo`'s server"),
    )
}
ENVIRONMENT_VARIABLES = {name: var.description for name, var in VARIABLES.items()}


def read(name: str) -> Any:
    """The variable's parsed value (its default when unset or empty)."""
    var = VARIABLES[name]
    text = os.environ.get(name, "").strip() or var.default
    try:
        return var.parse(text)
    except ValueError as exc:
        raise EnvError(f"{name}={os.environ.get(name)!r} is not valid: expected {exc}.") from None


def compile_factors() -> dict[str, str]:
    """The variables that change what is compiled, as set (part of the compile-cache key)."""
    return {name: os.environ.get(name, "") for name, var in VARIABLES.items() if var.changes_compilation}


def markdown_table() -> str:
    """The README's table of variables."""
    rows = ["| variable | default | meaning |", "| --- | --- | --- |"]
    rows += [f"| `{v.name}` | {f'`{v.default}`' if v.default else '-'} | {v.description} |" for v in VARIABLES.values()]
    return "\n".join(rows)


def __getattr__(name: str) -> Any:
    if name in VARIABLES:
        return read(name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


if __name__ == "__main__":
    print(markdown_table())
