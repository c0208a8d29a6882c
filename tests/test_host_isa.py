"""The host target on each of vLLM's x86 CPU tiers (targets/host_isa.py).

CI runs on whatever CPU it gets, so the tiers below the machine's own are forced
(`VLLM_NPU_GRAPH_HOST_ISA`): our C++ op built for each, and a whole engine on the AVX2
tier (vLLM's `_C_AVX2`, our AVX2 op, ATen and Inductor held to AVX2) against Hugging Face.
"""

import os
import subprocess
import sys

import pytest
from helpers.engines import hf_greedy_ids
from helpers.graph_mode_driver import prompts_for
from helpers.graph_runs import run_driver
from helpers.replays import assert_graph_mode

from vllm_npu_graph import envs
from vllm_npu_graph.targets import host_isa

AVX2 = {"avx2": True, "fma3": True}
AVX512 = {**AVX2, "avx512_f": True}
AVX512_BF16 = {**AVX512, "avx512_bf16": True}


@pytest.mark.parametrize(
    "caps, tier",
    [
        (AVX2, "avx2"),
        (AVX512, "avx512"),
        (AVX512_BF16, "avx512_bf16"),
        ({**AVX512_BF16, "amx_tile": True}, "avx512_bf16"),
    ],
)
def test_each_cpu_gets_the_vllm_build_it_can_run(caps, tier):
    isa = host_isa.resolve(caps, "x86_64", "auto")
    assert (isa.tier, isa.forced) == (tier, False)
    assert isa.vllm_kernels == {"avx2": "vllm._C_AVX2", "avx512": "vllm._C_AVX512", "avx512_bf16": "vllm._C"}[tier]
    assert "-march=native" not in isa.op_flags
    assert ("-mavx512f" in isa.op_flags) == (tier != "avx2")


def test_a_lower_tier_can_be_forced_and_holds_aten_and_inductor_to_it(monkeypatch):
    isa = host_isa.resolve(AVX512_BF16, "x86_64", "avx2")
    assert (isa.tier, isa.detected, isa.forced, isa.vllm_kernels) == ("avx2", "avx512_bf16", True, "vllm._C_AVX2")
    assert not any(flag.startswith("-mavx512") for flag in isa.op_flags)
    for name in host_isa.FORCED_ENV["avx2"]:
        # set first, so monkeypatch records the original and undoes what apply sets: a
        # leaked ATEN_CPU_CAPABILITY=avx2 or ONEDNN_MAX_CPU_ISA=AVX2 would hold every later
        # engine in this worker to it (a bfloat16 engine then dies on oneDNN)
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)
    host_isa.apply_forced_tier(isa)
    assert os.environ["ATEN_CPU_CAPABILITY"] == "avx2"
    assert os.environ["TORCHINDUCTOR_CPP_MARCH"] == "x86-64-v3"
    assert os.environ["ONEDNN_MAX_CPU_ISA"] == "AVX2"


@pytest.mark.parametrize(
    "caps, machine, wanted, message",
    [
        ({"avx2": True}, "x86_64", "auto", "needs an x86-64 CPU with AVX2 and FMA .*; this CPU lacks fma3"),
        ({"avx": True}, "x86_64", "auto", "this CPU lacks avx2, fma3"),
        (AVX2, "x86_64", "avx512", "HOST_ISA=avx512 but this CPU lacks avx512_f; set one of: auto, avx2"),
        (AVX512, "x86_64", "avx512_bf16", "lacks avx512_bf16; set one of: auto, avx2, avx512"),
        ({}, "aarch64", "avx2", "names an x86-64 tier, but this CPU is aarch64"),
    ],
)
def test_a_cpu_that_cant_run_the_tier_is_named_with_what_it_lacks(caps, machine, wanted, message):
    with pytest.raises(host_isa.HostISAError, match=message):
        host_isa.resolve(caps, machine, wanted)


def test_a_bad_tier_name_is_refused(monkeypatch):
    monkeypatch.setenv("VLLM_NPU_GRAPH_HOST_ISA", "sse4")
    with pytest.raises(
        host_isa.HostISAError, match="HOST_ISA='sse4' is not valid: expected one of auto, avx2, avx512, avx512_bf16"
    ):
        host_isa.requested()


def test_other_architectures_load_vllm_s_single_build():
    isa = host_isa.resolve({}, "aarch64", "auto")
    assert (isa.tier, isa.vllm_kernels, isa.op_flags) == (None, "vllm._C", ["-O3", "-fopenmp"])


# Every tier this machine can run, its own and the ones below (a tier above can't run here).
MACHINE_TIERS = host_isa.TIERS[: host_isa.TIERS.index(host_isa.resolve(wanted="auto").detected) + 1]

OP_CHECK = """
import math, sys, torch
from vllm_npu_graph.targets import host_isa, host_ops
assert host_ops.load(), "the C++ op did not build"
op = torch.ops.npu_graph_host.linear.default
for n, k in [(1001, 600), (7, 20), (49152, 576)]:
    w, b = torch.randn(n, k) / math.sqrt(k), torch.randn(n)
    wide = torch.randn(3, 2 * k)
    # 1-4 rows (our few-rows kernel; rows apart in memory, strided rows), 5 rows (oneDNN),
    # then a transposed weight
    for x in (wide[:1, :k], wide[:2, :k], wide[:1, ::2], wide[:, ::2], torch.randn(2, 2, k), torch.randn(5, k)):
        for bias in (None, b):
            torch.testing.assert_close(op(x, w, bias), torch.nn.functional.linear(x, w, bias), atol=1e-4, rtol=1e-4)
    w_t = torch.randn(k, n).t()
    torch.testing.assert_close(op(wide[:1, :k], w_t, None), torch.nn.functional.linear(wide[:1, :k], w_t),
                               atol=1e-4, rtol=1e-4)
print(host_isa.current().tier, *host_isa.loaded_vllm_kernels())
"""


@pytest.mark.parametrize("tier", MACHINE_TIERS)
def test_our_cpp_op_built_for_each_tier_equals_f_linear(tier):
    env = dict(os.environ, VLLM_NPU_GRAPH_HOST_ISA=tier, VLLM_NPU_GRAPH_TARGET="host")
    proc = subprocess.run([sys.executable, "-c", OP_CHECK], env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.split() == [tier, host_isa.VLLM_KERNELS[tier].split(".")[1]]


INT8_CHECK = """
import torch
from vllm_npu_graph.targets import host_isa, host_ops
host_isa.apply_forced_tier(host_isa.current())  # oneDNN's cap, before oneDNN first runs
assert host_ops.load(), "the C++ op did not build"
op = torch.ops.npu_graph_host.int8_linear.default
g = torch.Generator().manual_seed(0)
worst = 0
for m in (1, 4, 16, 64):  # one row (our matrix-vector kernel) and several (ours or oneDNN's)
    for k, n in ((1024, 96), (64, 33)):
        # +-127 everywhere: pairs of u8 x s8 products overflow int16 (oneDNN's non-VNNI path)
        x = (torch.randint(0, 2, (m, k), generator=g) * 254 - 127).to(torch.int8)
        w = (torch.randint(0, 2, (n, k), generator=g) * 254 - 127).to(torch.int8)
        x[:, : k // 2] = 127
        w[:, : k // 2] = 127
        exact = (x.long() @ w.long().t()).double()  # |sum| < 2**24: exact in float32 too
        got = op(x, torch.ones(m, 1), w, torch.ones(n), None, torch.float32).double()
        worst = max(worst, (got - exact).abs().max().item())
print(host_isa.current().tier, worst)
"""


@pytest.mark.parametrize("tier", MACHINE_TIERS)
def test_int8_linear_is_exact_on_each_tier(tier):
    """Integer sums are exact: our int8 op equals an int64 matmul on every tier, at values
    where a saturating int16 multiply-add (oneDNN without VNNI) goes wrong."""
    env = dict(os.environ, VLLM_NPU_GRAPH_HOST_ISA=tier, VLLM_NPU_GRAPH_TARGET="host")
    env.pop("ONEDNN_MAX_CPU_ISA", None)
    proc = subprocess.run([sys.executable, "-c", INT8_CHECK], env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    tier_run, worst = proc.stdout.split()
    assert tier_run == tier and float(worst) == 0, proc.stdout


@pytest.mark.engine
def test_engine_forced_to_avx2_gives_hugging_face_tokens_in_eager_and_graph_mode(tiny_model):
    """Tiny Qwen3 keeps the two engine starts short; our C++ op's AVX2 build is checked
    per shape above, SmolLM2 on the machine's own tier by the parity tests."""
    model = tiny_model("qwen3")
    batches = "1,3,16"
    hf = hf_greedy_ids(model, prompts_for(str(model), "16"), max_tokens=12)
    for mode in ("eager", "graph"):
        tokens, log = run_driver(model, mode, batches, **{envs.HOST_ISA: "avx2"})
        line = next(line for line in log.splitlines() if "kernels (attention and fused ops)" in line)
        assert "CPU tier avx2" in line and "vllm._C_AVX2" in line, line
        assert "loaded: _C_AVX2," in line and "ATen vectors: AVX2, oneDNN ISA cap: AVX2" in line, line  # one tier only
        for spec in batches.split(","):
            assert tokens[spec] == hf[: int(spec)], f"{mode}, batch {spec} diverged from Hugging Face"
    assert "captured 5 graph(s) [1, 2, 4, 8, 16]" in log
    assert_graph_mode(log)


@pytest.mark.engine
def test_moe_engine_forced_to_avx2_gives_hugging_face_tokens_in_graph_mode(tiny_model):
    """The MoE experts' host kernel (vLLM CPU's fused MoE) from the AVX2 build."""
    model = tiny_model("qwen3_moe")
    hf = hf_greedy_ids(model, prompts_for(str(model), "3"), max_tokens=12)
    tokens, log = run_driver(model, "graph", "1,3", **{envs.HOST_ISA: "avx2"})
    line = next(line for line in log.splitlines() if "kernels (attention and fused ops)" in line)
    assert "loaded: _C_AVX2," in line, line
    assert "2 MoE layers" in log
    assert_graph_mode(log)
    assert tokens == {"1": hf[:1], "3": hf}
