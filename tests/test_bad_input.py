"""Bad configurations fail fast with one clear error that names the fix."""

import pytest
from transformers import AutoTokenizer, GPT2Config, GPT2LMHeadModel


def engine_config(model, **kwargs):
    from vllm.engine.arg_utils import EngineArgs

    return EngineArgs(model=str(model), dtype="float32", max_model_len=256, **kwargs).create_engine_config()


@pytest.fixture(scope="module")
def gpt2_model(tmp_path_factory, default_model):
    out = tmp_path_factory.mktemp("gpt2")
    GPT2LMHeadModel(GPT2Config(n_layer=1, n_head=2, n_embd=32, vocab_size=49152)).save_pretrained(out)
    AutoTokenizer.from_pretrained(str(default_model)).save_pretrained(out)
    return out


def test_unsupported_architecture_is_rejected(gpt2_model):
    # vLLM's pydantic config wraps our ValueError; the message is ours, unchanged.
    with pytest.raises(ValueError) as err:
        engine_config(gpt2_model)
    assert "vllm-npu-graph does not support the architecture 'GPT2LMHeadModel'; supported: LlamaForCausalLM" in str(err.value)


def test_unknown_plugin_option_is_rejected(tiny_model):
    with pytest.raises(ValueError, match=r"Unknown option\(s\) 'capture_everything'.*valid options: dump_graph_dir, host_kv_cache_gib"):
        engine_config(tiny_model("llama"), additional_config={"npu_graph": {"capture_everything": True}})


def test_valid_config_wires_our_worker(tiny_model):
    config = engine_config(tiny_model("llama"), additional_config={"npu_graph": {"host_kv_cache_gib": 0.5}})
    assert config.parallel_config.worker_cls == "vllm_npu_graph.worker.worker.NPUGraphWorker"
