"""vLLM's check of VLLM_* variables, through our platform: our documented variables
pass even its strict mode, a misspelt one of ours is named with the valid ones."""

import logging

import pytest

from vllm_npu_graph import envs


@pytest.fixture
def platform():
    from vllm_npu_graph.platform import NPUGraphPlatform

    return NPUGraphPlatform


def test_our_documented_variables_pass_the_strict_check(platform, monkeypatch):
    for name in envs.ENVIRONMENT_VARIABLES:
        monkeypatch.setenv(name, "1" if name != envs.TARGET else "host")
    platform.validate_environ(hard_fail=True)


def test_a_misspelt_variable_of_ours_is_named_with_the_valid_ones(platform, monkeypatch, caplog):
    monkeypatch.setenv("VLLM_NPU_GRAPH_TARGTE", "host")
    with pytest.raises(ValueError, match="VLLM_NPU_GRAPH_TARGTE; valid ones: .*VLLM_NPU_GRAPH_TARGET"):
        platform.validate_environ(hard_fail=True)
    with caplog.at_level(logging.WARNING, logger="vllm"):
        platform.validate_environ(hard_fail=False)
    assert "VLLM_NPU_GRAPH_TARGTE" in caplog.text


def test_other_unknown_vllm_variables_are_still_reported(platform, monkeypatch):
    monkeypatch.setenv("VLLM_NO_SUCH_SETTING", "1")
    with pytest.raises(ValueError, match="Unknown vLLM environment variable detected: VLLM_NO_SUCH_SETTING"):
        platform.validate_environ(hard_fail=True)
