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


@pytest.mark.parametrize(
    "name, raw, value",
    [
        (envs.TARGET, " HOST ", "host"),
        (envs.STRICT_GRAPHS, "yes", True),
        (envs.STRICT_GRAPHS, "", False),
        (envs.FAIL_STEP, "7", 7),
        (envs.FAIL_CAPTURE_SIZES, "4, oom:8", (frozenset({4}), 8)),
        (envs.DEMO_PORT, "", 8765),
    ],
)
def test_each_variable_is_parsed_by_its_table_entry(monkeypatch, name, raw, value):
    monkeypatch.setenv(name, raw)
    assert getattr(envs, name) == value


@pytest.mark.parametrize(
    "name, raw, expected",
    [
        (envs.STRICT_GRAPHS, "maybe", "1 or 0"),
        (envs.FAIL_STEP, "-3", "a whole number >= 0"),
        (envs.FAIL_CAPTURE_SIZES, "4,oom:x", "comma-separated capture sizes >= 1"),
        (envs.DEMO_PORT, "99999", "a TCP port"),
        (envs.HOST_ISA, "sse", "one of auto, avx2, avx512, avx512_bf16"),
    ],
)
def test_a_bad_value_is_one_message_naming_the_variable_and_what_it_takes(monkeypatch, name, raw, expected):
    monkeypatch.setenv(name, raw)
    with pytest.raises(envs.EnvError, match=rf"^{name}='{raw}' is not valid: expected {expected}"):
        envs.read(name)


def test_the_compile_key_takes_exactly_the_variables_marked_as_changing_compilation(monkeypatch):
    monkeypatch.setenv(envs.FAIL_CAPTURE_SIZES, "4")
    monkeypatch.setenv(envs.DEMO_PORT, "9000")
    factors = envs.compile_factors()
    assert set(factors) == {envs.TARGET, envs.STRICT_GRAPHS, envs.FAIL_CAPTURE_SIZES}
    assert factors[envs.FAIL_CAPTURE_SIZES] == "4"
