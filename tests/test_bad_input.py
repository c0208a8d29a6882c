"""Bad configurations are refused before any weights load, with one clear line that
names the fix; their valid neighbours are accepted. The cases live in
helpers/bad_input_cases.py, which also writes bad_input_table.md from their real messages."""

import logging
import re

import pytest
from helpers.bad_input_cases import CASES, TABLE, outcome, render_table


@pytest.mark.parametrize("case", [c for c in CASES if c.rejected], ids=lambda c: c.id)
def test_bad_input_is_refused_with_one_line_naming_the_fix(case):
    raised, message = outcome(case.id)
    assert raised, f"{case.id} was accepted: {message}"
    assert re.search(case.expect, message), f"{case.id}: {raised}: {message}"
    assert "\n" not in message
    assert raised.startswith("vllm_npu_graph.") != case.by_vllm, f"{case.id} was refused by {raised}"


@pytest.mark.parametrize("case", [c for c in CASES if not c.rejected], ids=lambda c: c.id)
def test_valid_neighbours_are_accepted(case):
    raised, message = outcome(case.id)
    assert not raised, f"{case.id} was refused: {raised}: {message}"
    assert re.search(case.expect, message), message


def test_the_committed_table_holds_the_messages_the_cases_produce_now():
    assert TABLE.read_text() == render_table(), (
        "tests/bad_input_table.md is stale: run "
        "`PYTHONPATH=tests VLLM_NPU_GRAPH_TARGET=host python -m helpers.bad_input_cases`"
    )


def test_default_mode_maps_to_decode_graphs_with_a_log_line(tiny_model):
    from vllm.engine.arg_utils import EngineArgs

    records = []
    handler = logging.Handler()
    handler.emit = records.append
    logger = logging.getLogger("vllm.npu_graph.platform")
    logger.addHandler(handler)
    try:
        config = EngineArgs(model=str(tiny_model("llama")), dtype="float32", max_model_len=256).create_engine_config()
    finally:
        logger.removeHandler(handler)
    assert config.compilation_config.cudagraph_mode.name == "FULL_DECODE_ONLY"
    assert any("cudagraph_mode FULL_AND_PIECEWISE maps to FULL_DECODE_ONLY" in r.getMessage() for r in records)


def test_valid_config_wires_our_worker(tiny_model):
    from vllm.engine.arg_utils import EngineArgs

    config = EngineArgs(
        model=str(tiny_model("llama")),
        dtype="float32",
        max_model_len=256,
        additional_config={"npu_graph": {"host_kv_cache_gib": 0.5}},
    ).create_engine_config()
    assert config.parallel_config.worker_cls == "vllm_npu_graph.worker.worker.NPUGraphWorker"
