"""`vllm-npu-graph bench`: a dry run on a tiny model writes results.json of the documented
schema, a report with every mode's row and the plots; the peer (vLLM's own CPU platform,
our plugin inactive) starts, generates and serves `vllm bench serve`'s requests in this
venv. Plus the report's and the mode parser's behaviour without engines."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from vllm_npu_graph.benchmarks import report, schema
from vllm_npu_graph.benchmarks.modes import build_modes, server_flags

REPO = Path(__file__).resolve().parents[1]

MODES = ["eager", "peer"]


@pytest.fixture(scope="module")
def dry_run(tiny_model, tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "run"
    cmd = [
        sys.executable,
        "-m",
        "vllm_npu_graph.cli",
        "bench",
        "--model",
        str(tiny_model("llama")),
        "--dry-run",
        "--modes",
        ",".join(MODES),
        "--out",
        str(out),
        "--no-progress",
    ]
    proc = subprocess.run(cmd, cwd=REPO, env=dict(os.environ), capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return out, json.loads((out / "results.json").read_text())


@pytest.mark.engine
def test_results_follow_the_documented_schema(dry_run):
    out, results = dry_run
    assert schema.problems(results) == []
    assert results["command"].startswith("vllm-npu-graph bench ") and "--dry-run" in results["command"]
    assert results["machine"]["npu"] is None and results["machine"]["cores"] >= 1
    assert "cpu" in results["versions"]["vllm"]
    envs = [{k: m["env"][k] for k in results["settings"]["thread_env"]} for m in results["modes"]]
    assert all(e == results["settings"]["thread_env"] for e in envs)  # same threads for every mode


@pytest.mark.engine
def test_every_mode_measured_offline_and_online(dry_run):
    _, results = dry_run
    sizes = results["settings"]["sizes"]
    for mode in MODES:
        entry = results["summary"][mode]
        assert entry["status"] == "ok", entry.get("note")
        assert sorted(int(b) for b in entry["decode"]) == sizes["batches"]
        assert all(v["tok_s"] > 0 and v["tpot_ms"] > 0 for v in entry["decode"].values())
        assert all(v["tok_s"] > 0 for v in entry["prefill"].values())
        level = entry["online"]["1"]
        assert level["completed"] == max(sizes["prompts_per_client"], sizes["min_prompts"]) and level["failed"] == 0
        assert level["p50_ttft_ms"] > 0 and level["p99_tpot_ms"] >= level["p50_tpot_ms"] > 0
        assert entry["startup"]["cold_s"] > 0 and entry["startup"]["warm_s"] > 0
        assert entry["startup"]["peak_rss_mib_offline"] > 100
        assert entry["greedy"]["matches_eager"] is True  # every mode's greedy tokens equal eager's


@pytest.mark.engine
def test_peer_is_vllms_own_cpu_platform(dry_run):
    out, results = dry_run
    assert results["modes"][1]["env"]["VLLM_NPU_GRAPH_TARGET"] == "auto"
    # `vllm serve` logs no platform line; the workers' log lines say who served.
    peer, ours = ((out / "logs" / f"{m}-r0-serve.log").read_text() for m in ("peer", "eager"))
    assert "cpu_worker" in peer and "npu_graph:" not in peer  # vLLM's CPU worker, none of our log lines
    assert "npu_graph:" in ours and "cpu_worker" not in ours


@pytest.mark.engine
def test_report_has_every_mode_and_both_references(dry_run):
    out, _ = dry_run
    text = (out / "report.md").read_text()
    for section in (
        "## Offline decode",
        "## Offline prefill",
        "## Serving",
        "## Start-up and memory",
        "## Greedy outputs",
    ):
        assert section in text
        table = text.split(section, 1)[1].split("\n## ", 1)[0]
        for mode in MODES:
            assert f"| {mode} |" in table, (section, mode)
    assert "vs eager" in text and "vs peer" in text
    for png in ("throughput.png", "serving.png", "startup.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _summary(tokens_graph):
    entry = lambda tok_s, tokens: {  # noqa: E731
        "description": "",
        "status": "ok",
        "repeats": {},
        "prefill": {},
        "online": {},
        "startup": {},
        "decode": {"1": {"tok_s": tok_s, "tpot_ms": 1000 / tok_s}},
        "greedy": {
            "tokens": tokens,
            "matches_eager": tokens == [[1, 2, 3]],
            "first_mismatch_vs_eager": None if tokens == [[1, 2, 3]] else [0, 2],
            "same_every_repeat": True,
        },
    }
    return {"eager": entry(10.0, [[1, 2, 3]]), "graph": entry(5.0, tokens_graph), "peer": entry(20.0, [[1, 2, 3]])}


def _results(summary):
    return {
        "settings": {
            "model": "/m/x",
            "preset": "full",
            "engine_args": {},
            "thread_env": {},
            "seed": 0,
            "sizes": {"repeats": 3, "decode_prompt_len": 32, "decode_new_tokens": 32},
        },
        "machine": {"npu": None, "cpu_model": "c", "usable_cpus": 2, "cores": 2, "memory_gib": 1, "os": "x"},
        "versions": {"vllm": "v", "vllm_distribution": "d", "torch": "t", "plugin": "p", "triton": "tr"},
        "created": "now",
        "command": "vllm-npu-graph bench",
        "summary": summary,
    }


def test_report_ratios_and_a_losing_graph_mode_shown():
    text = report.render(_results(_summary([[1, 2, 3]])))
    row = next(line for line in text.splitlines() if line.startswith("| graph | 5.0 |"))
    assert [c.strip() for c in row.split("|")[3:5]] == [
        "0.50x",
        "0.25x",
    ]  # vs eager, vs peer: slower, and shown as such
    assert "`graph` vs `eager`: decode throughput 0.50x" in text
    assert "Greedy outputs differ" not in text


def test_report_flags_tokens_that_differ_from_eager():
    text = report.render(_results(_summary([[1, 2, 4]])))
    assert "Greedy outputs differ from `eager` for: `graph`" in text
    assert "| graph | **NO** | [0, 2] |" in text


def test_modes_change_only_what_defines_them():
    eager, graph, no_swiglu, plus_attention, peer = build_modes(
        ["eager", "graph", "graph-no-swiglu", "graph+attention", "peer"], on_npu=False
    )
    assert eager.engine_args == {"enforce_eager": True} and graph.engine_args == {}
    assert {m.env["VLLM_NPU_GRAPH_TARGET"] for m in (eager, graph, no_swiglu)} == {"host"}
    assert no_swiglu.engine_args["additional_config"]["npu_graph"]["passes"] == {"swiglu": False}
    assert plus_attention.engine_args["additional_config"]["npu_graph"]["passes"] == {"attention": True}
    assert peer.env == {"VLLM_NPU_GRAPH_TARGET": "auto"} and not peer.skipped
    with pytest.raises(ValueError, match="unknown pass 'fuse_all'"):
        build_modes(["graph-no-fuse_all"], on_npu=False)
    with pytest.raises(ValueError, match="unknown mode"):
        build_modes(["turbo"], on_npu=False)


def test_npu_host_without_vllm_ascend_skips_the_peer_with_a_note():
    (peer,) = build_modes(["peer"], on_npu=True)
    assert peer.skipped == "vllm-ascend is not installed on this NPU host: no peer to run"


def test_server_flags_mirror_engine_args():
    flags = server_flags(
        {
            "model": "m",
            "enforce_eager": True,
            "enable_prefix_caching": False,
            "max_model_len": 64,
            "additional_config": {"npu_graph": {"passes": {"swiglu": True}}},
        }
    )
    assert flags == [
        "--enforce-eager",
        "--no-enable-prefix-caching",
        "--max-model-len",
        "64",
        "--additional-config",
        '{"npu_graph": {"passes": {"swiglu": true}}}',
    ]
