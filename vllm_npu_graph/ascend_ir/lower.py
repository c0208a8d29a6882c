"""Lower one recorded launch through triton-ascend's front end and read what it made.

`triton.compile` runs TTIR -> `triton-adapter-opt` (Linalg/HIVM, the `.ttadapter` file)
and then stops at the binary stage, which needs CANN's bishengir. Reaching that stage
with a `.ttadapter` on disk means triton-ascend's own front end accepted the kernel.
From the IR we read the core kinds it targets (`mix_mode`), whether `tl.dot` became a
cube matmul, and every access the adapter could not keep structured:
- "unstructured": a load/store turned into a scalar loop (`ExtractedLoadOrStore`);
- "discrete mask": a mask it could not see as a range, turned into a full-tile access
  plus select (`--discrete-mask-access-conversion`).
Each is named by its source line.
"""

import contextlib
import io
import os
import re
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

BINARY_STAGE_ERROR = "ASCEND_HOME_PATH is not set"


@dataclass
class Lowered:
    ok: bool
    error: str = ""
    mix_mode: str = ""
    matmuls: int = 0
    unstructured: list = field(default_factory=list)  # "file:line: source" of scalar-loop accesses
    discrete_masks: list = field(default_factory=list)  # same, for masks turned into selects
    ttadapter: str = ""


def lower(launch) -> Lowered:
    """Compile in a private cache dir (this process's only compile at a time)."""
    import triton
    from triton.compiler import ASTSource

    from vllm_npu_graph.ascend_ir.record import npu_target

    with tempfile.TemporaryDirectory(prefix="ascend-ir-") as cache:
        os.environ["TRITON_CACHE_DIR"] = cache
        os.environ["TRITON_DISABLE_LINE_INFO"] = "0"  # keep source locations in the IR
        try:  # (the binary stage prints about the missing bishengir: not our finding)
            with contextlib.redirect_stdout(io.StringIO()):
                triton.compile(
                    ASTSource(launch.kernel, launch.signature, launch.constants, launch.attrs),
                    target=npu_target(),
                    options=launch.options,
                )
            error = "compiled to a binary: unexpected without CANN"
        except Exception as exc:  # noqa: BLE001 - any front-end failure is the finding
            error = f"{type(exc).__name__}: {exc}"
        adapter = next(Path(cache).rglob("*.ttadapter"), None)
        if adapter is None or BINARY_STAGE_ERROR not in error:
            return Lowered(ok=False, error=_short(error))
        text = adapter.read_text()
        ttir = next(Path(cache).rglob("*.ttir")).read_text()
        return Lowered(
            ok=True,
            mix_mode=re.search(r'mix_mode = "(\w+)"', text).group(1),
            matmuls=len(re.findall(r"\blinalg\.(?:batch_)?matmul\b", text)),
            unstructured=_scalar_loop_sites(text),
            discrete_masks=_discrete_mask_sites(ttir, cache),
            ttadapter=text,
        )


def _short(error: str) -> str:
    lines = [ln.strip() for ln in error.splitlines() if ln.strip() and "///" not in ln]
    return " | ".join(lines)[:600]


def _locations(text: str) -> dict:
    """#locN -> (file, line) of the innermost source position (callee of a callsite)."""
    raw = dict(re.findall(r"^#(loc\d*) = loc\((.*)\)\s*$", text, re.M))

    def resolve(name, depth=0):
        body = raw.get(name, "")
        if depth > 50:
            return None
        m = re.match(r'"([^"]+)":(\d+):\d+', body)
        if m:
            return m.group(1), int(m.group(2))
        m = re.match(r"callsite\(#(loc\d*) at", body)
        return resolve(m.group(1), depth + 1) if m else None

    return {name: resolve(name) for name in raw}


def _describe(site) -> str:
    path, line = site
    try:
        source = Path(path).read_text().splitlines()[line - 1].strip()
    except (OSError, IndexError):
        source = ""
    return f"{Path(path).name}:{line}: {source}"


def _scalar_loop_sites(text: str) -> list:
    locs = _locations(text)
    sites = {locs.get(m) for m in re.findall(r"\{[^}]*ExtractedLoadOrStore[^}]*\} loc\(#(loc\d*)\)", text)}
    return sorted(_describe(s) for s in sites if s)


_MEM_OP = re.compile(r"\btt\.(load|store) ([^:]*?) : .*loc\(#(loc\d*)\)")


def _masked_sites(text: str) -> set:
    """Source sites of masked tt.load (2+ operands) / tt.store (3 operands)."""
    locs = _locations(text)
    sites = set()
    for op, operands, loc in _MEM_OP.findall(text):
        if operands.count(",") >= (1 if op == "load" else 2):
            sites.add((op, locs.get(loc)))
    return sites


def _discrete_mask_sites(ttir: str, workdir: str) -> list:
    """Masked accesses that lose their mask in the adapter's discrete-mask pass."""
    from triton.backends.ascend.utils import _get_triton_adapter_opt_path

    src, dst = Path(workdir, "in.ttir"), Path(workdir, "out.ttir")
    src.write_text(ttir)
    subprocess.run(
        [
            _get_triton_adapter_opt_path(),
            str(src),
            "--discrete-mask-access-conversion",
            "--mlir-print-debuginfo",
            "-o",
            str(dst),
        ],
        check=True,
        capture_output=True,
    )
    lost = _masked_sites(ttir) - _masked_sites(dst.read_text())
    return sorted(f"{op} {_describe(site)}" for op, site in lost if site)
