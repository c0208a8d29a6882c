"""The pass pipeline runs passes in order, records their match counts, and dumps the
graph before and after when asked."""

import pytest
import torch
import torch.fx as fx

from vllm_npu_graph.compilation.pass_manager import NPUGraphPassManager


def relu_to_abs(graph: fx.Graph) -> int:
    n = 0
    for node in graph.nodes:
        if node.op == "call_function" and node.target is torch.relu:
            node.target = torch.abs
            n += 1
    return n


def test_passes_run_in_order_with_counts_and_dumps(tmp_path):
    gm = fx.symbolic_trace(lambda x: torch.relu(x) + torch.relu(-x))
    order = []
    manager = NPUGraphPassManager(
        [("first", lambda g: order.append("first") or 0), ("relu_to_abs", relu_to_abs)], dump_dir=str(tmp_path)
    )
    manager(gm.graph)
    gm.recompile()
    assert order == ["first"]
    assert manager.last_counts == {"first": 0, "relu_to_abs": 2}
    assert set(manager.last_times_ms) == {"first", "relu_to_abs"}
    x = torch.tensor([-2.0, 3.0])
    assert torch.equal(gm(x), torch.tensor([4.0, 6.0]))
    before, after = sorted(tmp_path.iterdir())[1], sorted(tmp_path.iterdir())[0]
    assert "target=torch.relu" in before.read_text()
    assert "target=torch.relu" not in after.read_text() and "target=torch.abs" in after.read_text()


def test_default_passes_per_target_and_switches():
    from vllm_npu_graph.passes import PASS_NAMES, enabled_passes

    def names(target, switches):
        return [p.NAME for p in enabled_passes(target, switches)]

    fusions = [n for n in PASS_NAMES if n != "linear"]
    assert names("npu", {}) == fusions
    assert names("host", {}) == ["attention", "linear"]
    assert names("host", {"qkv_rope": True, "linear": False}) == ["qkv_rope", "attention"]
    assert names("npu", {"swiglu": False}) == [n for n in fusions if n != "swiglu"]


def test_a_pass_that_matches_another_pass_s_output_must_run_after_it():
    from types import SimpleNamespace

    from vllm_npu_graph.passes import PASS_NAMES, check_order

    assert PASS_NAMES.index("qkv_rope") < PASS_NAMES.index("rope_kv_write")
    first, second = SimpleNamespace(NAME="qkv_rope"), SimpleNamespace(NAME="rope_kv_write", AFTER=("qkv_rope",))
    check_order([first, second])
    with pytest.raises(RuntimeError, match="rope_kv_write matches the output of qkv_rope, which must run before it"):
        check_order([second, first])
