"""Validation of additional_config["npu_graph"]."""

import pytest

from vllm_npu_graph.config import NPUGraphConfig, PluginConfigError


def test_defaults_and_other_plugins_keys_are_ignored():
    assert NPUGraphConfig.from_additional_config(None) == NPUGraphConfig()
    assert NPUGraphConfig.from_additional_config({"other_plugin": {"x": 1}}) == NPUGraphConfig()


def test_valid_option_is_read():
    cfg = NPUGraphConfig.from_additional_config({"npu_graph": {"host_kv_cache_gib": 2}})
    assert cfg.host_kv_cache_gib == 2.0
    assert cfg.max_graph_sizes is None  # absent: the target's default
    assert NPUGraphConfig.from_additional_config({"npu_graph": {"max_graph_sizes": 1}}).max_graph_sizes == 1


@pytest.mark.parametrize(
    "raw, message",
    [
        ({"npu_graph": {"bogus": 1}}, "Unknown option(s) 'bogus'"),
        ({"npu_graph": {"host_kv_cache_gib": "big"}}, "must be a number, got 'big'"),
        ({"npu_graph": {"host_kv_cache_gib": True}}, "must be a number, got True"),
        ({"npu_graph": {"host_kv_cache_gib": -1}}, "must be > 0"),
        ({"npu_graph": [1]}, "must be a JSON object"),
        ({"npu_graph": {"kernels": "cuda"}}, "must be one of auto, native, reference, triton"),
        ({"npu_graph": {"host_threads": -1}}, "must be >= 0"),
        ({"npu_graph": {"max_graph_sizes": 0}}, "must be >= 1, got 0"),
        ({"npu_graph": {"max_graph_sizes": None}}, "must be an integer, got None"),
    ],
)
def test_invalid_options_name_the_fix(raw, message):
    with pytest.raises(PluginConfigError) as err:
        NPUGraphConfig.from_additional_config(raw)
    assert message in str(err.value)
    assert "npu_graph" in str(err.value)
