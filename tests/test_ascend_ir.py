"""Every Triton kernel of ours, in every specialisation the NPU launch table gives the
supported model shapes, lowers through triton-ascend's own front end (TTIR ->
Linalg/HIVM) with dot kernels on the cube cores and no unstructured access on the
decode path. Runs `python -m vllm_npu_graph.ascend_ir` in `.venv-ascend` (where
triton-ascend is the `triton` package; `make ascend-venv` builds it)."""

import json
import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PYTHON = ROOT / ".venv-ascend" / "bin" / "python"


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    assert PYTHON.exists(), "no .venv-ascend: run `make ascend-venv` (make test builds it)"
    out = tmp_path_factory.mktemp("ascend-ir") / "result.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRITON_")}  # no interpreter there
    env["PYTHONPATH"] = str(ROOT)
    proc = subprocess.run(
        [str(PYTHON), "-m", "vllm_npu_graph.ascend_ir", "--json", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    tail = f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    assert out.exists(), f"the check did not finish (rc {proc.returncode}):\n{tail}"
    data = json.loads(out.read_text())
    data["rc"], data["stdout"] = proc.returncode, proc.stdout
    return data


def test_every_kernel_specialisation_lowers(result):
    failed = [f"{r['kernel']} [{r['spec']}] ({r['from'][0]}): {r['error']}" for r in result["rows"] if not r["lowered"]]
    assert not failed, "triton-ascend rejects:\n" + "\n".join(failed)


def test_check_covers_every_kernel_and_the_shape_range(result):
    rows = result["rows"]
    kernels = {r["kernel"] for r in rows}
    assert {
        "_decode_kernel",
        "_decode_reduce_kernel",
        "_prefill_kernel",
        "_kv_write_kernel",
        "_rms_norm_kernel",
        "_swiglu_kernel",
        "_qkv_rope_kernel",
    } <= kernels
    assert not [f for f in result["failures"] if "never launched" in f], result["failures"]
    decode = [r["spec"] for r in rows if r["kernel"] == "_decode_kernel"]
    for needle in (
        "D=64 ",
        "D=96 ",
        "D=128 ",
        "GROUP=1 ",
        "GROUP=4 ",
        "GROUP=8 ",
        "BLOCK=16 ",
        "BLOCK=128 ",
        "SPLITS=1 ",
        "SPLITS=8 ",
    ):
        assert any(needle in s + " " for s in decode), f"no decode specialisation with {needle.strip()}"
    assert {r["spec"].split("SPLITS=")[1].split()[0] for r in rows if r["kernel"] == "_decode_kernel"} > {"1"}
    assert any(sig.endswith("bf16") for r in rows for sig in r["from"])
    assert any(sig.endswith("fp16") for r in rows for sig in r["from"])


def test_dot_kernels_reach_the_cube_cores_and_vector_kernels_stay_on_vector_cores(result):
    for r in (r for r in result["rows"] if r["lowered"]):  # failures: the test above
        if r["uses_dot"]:
            assert r["mix_mode"] in ("aic", "mix") and r["matmuls"] > 0, r
        else:
            assert r["mix_mode"] == "aiv", r


def test_no_unstructured_access_on_the_decode_path(result):
    bad = [f for f in result["failures"] if "unstructured" in f or "discrete mask" in f]
    assert not bad, "\n".join(bad)


def test_the_check_itself_passes(result):
    assert result["rc"] == 0 and not result["failures"], result["stdout"][-3000:]
