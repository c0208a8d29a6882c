"""The soak bench (vllm_npu_graph/benchmarks/soak.py) without an engine: the plan covers
every kind within the bounds the soak promises, the engine's KV figures are read right from /metrics text, and each check
fails on the fault it is there for (a 5xx, a leaked block, a seeded pair that differs,
a greedy answer that differs from eager's)."""

import copy

import pytest

from vllm_npu_graph.benchmarks import soak
from vllm_npu_graph.benchmarks import soak_workload as workload

METRICS = """\
# HELP vllm:kv_cache_usage_perc KV-cache usage. 1 means 100 percent usage.
# TYPE vllm:kv_cache_usage_perc gauge
vllm:kv_cache_usage_perc{engine="0",model_name="bench-model"} 0.25
vllm:cache_config_info{block_size="16",cache_dtype="auto",engine="0",num_gpu_blocks="1457",prefix_caching_hash_algo="sha256"} 1.0
vllm:num_requests_running{engine="0",model_name="bench-model"} 3.0
vllm:num_requests_waiting{engine="0",model_name="bench-model"} 0.0
vllm:prefix_cache_queries_total{engine="0",model_name="bench-model"} 5000.0
vllm:prefix_cache_hits_total{engine="0",model_name="bench-model"} 1200.0
vllm:num_preemptions_total{engine="0",model_name="bench-model"} 2.0
"""


def test_plan_covers_every_kind_within_bounds():
    plan, burst = workload.build_plan("full", "m", 2048, seed=0)
    kinds = {s.kind for s in plan}
    assert kinds == set(workload.COUNTS["full"]) - {"burst"}
    assert len(plan) + len(burst) >= 300 and len(burst) == 32
    lengths = [s.prompt_len for s in plan if s.prompt_len and s.kind != "overlong"]
    assert min(lengths) == 1 and max(lengths) == 1500
    overlong = [s for s in plan if s.kind == "overlong"]
    assert any(s.body["max_tokens"] > 2048 for s in overlong)  # a 400
    assert any(s.body["max_tokens"] <= 2048 and s.prompt_len <= 2040 for s in overlong)  # cut at the context
    for s in plan:
        if s.kind == "overlong":
            assert s.prompt_len < 2048 and s.prompt_len + s.body["max_tokens"] > 2048
        elif s.prompt_len:
            assert s.prompt_len + s.body["max_tokens"] <= 2048
            assert s.body["max_tokens"] <= 64
    assert len({s.id for s in plan + burst}) == len(plan) + len(burst)
    pairs = {}
    for s in plan:
        if s.kind == "seeded":
            pairs.setdefault(s.pair, []).append(s.body)
    assert all(len(b) == 2 and b[0] == b[1] and "seed" in b[0] for b in pairs.values())
    assert len({str(s.body["prompt"]) for s in burst}) == 1
    quick, quick_burst = workload.build_plan("quick", "m", 2048, seed=0)
    assert 25 <= len(quick) + len(quick_burst) <= 45
    assert workload.build_plan("full", "m", 2048, seed=0)[0][5].body == plan[5].body  # seeded plan


def test_engine_figures_from_metrics_text():
    fig = soak.engine_figures(soak.parse_metrics(METRICS))
    assert fig["kv_blocks"] == 1456  # less vLLM's null block
    assert fig["kv_blocks_used"] == 364 and fig["kv_blocks_free"] == 1092
    assert fig["running"] == 3 and fig["waiting"] == 0
    assert fig["prefix_cache_hits"] == 1200 and fig["preemptions"] == 2


def result(spec, status=200, tokens=(1, 2, 3), **extra):
    r = workload.Result(spec.id, spec.kind, status=status, latency_s=0.5)
    choices = spec.body.get("n", 1)
    r.token_ids = [list(tokens) for _ in range(choices)]
    r.texts = ["x" for _ in range(choices)]
    r.finish_reasons = ["length"] * choices
    r.prompt_tokens = spec.prompt_len
    for k, v in extra.items():
        setattr(r, k, v)
    return r


@pytest.fixture
def healthy_run():
    plan, burst = workload.build_plan("quick", "m", 2048, seed=0)
    specs = {s.id: s for s in plan + burst}
    results = [
        result(s, status=400 if s.kind == "overlong" else 200, dropped=s.kind == "disconnect") for s in plan + burst
    ]
    figures = soak.engine_figures(soak.parse_metrics(METRICS))
    before = dict(figures, kv_blocks_used=0, prefix_cache_hits=0)
    after = dict(figures, kv_blocks_used=0, prefix_cache_hits=500)
    graph = {
        "results": workload.as_dicts(results),
        "before": before,
        "after": after,
        "peak_rss_mib": 900,
        "rss_before_mib": 800,
        "rss_after_mib": 810,
        "health_after": 200,
        "stop": {"clean": True, "exit_code": 0, "error_lines_at_stop": []},
        "soak_s": 10,
    }
    greedy = [r for r in graph["results"] if r["kind"] in workload.GREEDY_KINDS and r["status"] == 200]
    eager = {"results": copy.deepcopy(greedy), "stop": graph["stop"]}
    return specs, graph, eager


def test_a_healthy_run_passes_every_check(healthy_run):
    analysis = soak.analyse(*healthy_run)
    assert all(analysis["checks"].values()), analysis["checks"]
    assert analysis["greedy_vs_eager"]["compared"] > 0
    assert analysis["kv_blocks"]["leaked"] == 0


def test_each_fault_fails_its_check(healthy_run):
    specs, graph, eager = healthy_run
    graph["results"][0]["status"] = 503
    graph["after"]["kv_blocks_used"] = 2
    seeded = [r for r in graph["results"] if r["kind"] == "seeded"]
    seeded[0]["texts"] = ["something else"]
    eager["results"][0]["token_ids"] = [[1, 9, 3]]
    checks = soak.analyse(specs, graph, eager)
    assert not checks["checks"]["no_5xx_or_failed_requests"]
    assert checks["kv_blocks"]["leaked"] == 2 and not checks["checks"]["no_leaked_kv_blocks"]
    assert not checks["checks"]["seeded_pairs_identical"]
    assert not checks["checks"]["greedy_equals_eager"]
    assert checks["greedy_vs_eager"]["mismatches"][0]["first_difference"] == {"choice": 0, "token": 1}


def test_overlong_may_be_truncated_but_not_past_the_context(healthy_run):
    specs, graph, eager = healthy_run
    overlong = [r for r in graph["results"] if r["kind"] == "overlong"]
    overlong[0].update(status=200, token_ids=[[7] * 5], finish_reasons=["length"], prompt_tokens=2040)
    assert soak.analyse(specs, graph, eager)["checks"]["overlong_400_or_truncated"]
    overlong[0]["token_ids"] = [[7] * 20]  # 2060 tokens: past max_model_len
    assert not soak.analyse(specs, graph, eager)["checks"]["overlong_400_or_truncated"]
