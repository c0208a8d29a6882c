"""The results.json schema (documented in bench/README.md), checked in code so a test
can hold every run to it."""

REQUIRED = {
    "schema": str,
    "created": str,
    "finished": str,
    "command": str,
    "machine": dict,
    "machine_label": str,
    "versions": dict,
    "settings": dict,
    "modes": list,
    "runs": list,
    "summary": dict,
}
MACHINE = {
    "hostname": str,
    "cpu_model": str,
    "cores": int,
    "logical_cpus": int,
    "usable_cpus": int,
    "memory_gib": float,
    "os": str,
}
VERSIONS = ("vllm", "torch", "plugin", "triton", "python")
SETTINGS = {
    "model": str,
    "preset": str,
    "sizes": dict,
    "dtype": str,
    "seed": int,
    "threads": int,
    "phases": list,
    "engine_args": dict,
    "thread_env": dict,
}
MODE_SUMMARY = {
    "description": str,
    "status": str,
    "repeats": dict,
    "decode": dict,
    "prefill": dict,
    "online": dict,
    "startup": dict,
    "greedy": dict,
}
STATUSES = ("ok", "partial", "failed", "skipped")


def problems(results: dict) -> list[str]:
    """Every way results differs from the schema (empty: it conforms)."""
    found = []

    def check(obj: dict, spec: dict, where: str) -> None:
        for key, kind in spec.items():
            if key not in obj:
                found.append(f"{where}.{key} is missing")
            elif not isinstance(obj[key], kind) and not (kind is float and isinstance(obj[key], int)):
                found.append(f"{where}.{key} is {type(obj[key]).__name__}, not {kind.__name__}")

    check(results, REQUIRED, "results")
    if found:
        return found
    check(results["machine"], MACHINE, "machine")
    if "npu" not in results["machine"]:
        found.append("machine.npu is missing (null on the host)")
    found += [f"versions.{k} is empty" for k in VERSIONS if not results["versions"].get(k)]
    check(results["settings"], SETTINGS, "settings")
    names = [m.get("name") for m in results["modes"]]
    if sorted(names) != sorted(results["summary"]):
        found.append(f"summary modes {sorted(results['summary'])} differ from modes {names}")
    for name, entry in results["summary"].items():
        check(entry, MODE_SUMMARY, f"summary.{name}")
        if entry.get("status") not in STATUSES:
            found.append(f"summary.{name}.status {entry.get('status')!r} is not one of {STATUSES}")
    for i, run in enumerate(results["runs"]):
        for key in ("mode", "repeat", "phase", "status"):
            if key not in run:
                found.append(f"runs[{i}].{key} is missing")
    return found
