"""The compile-cache key and store, without an engine: each key component we promise
(pass options, kernels choice, capture sizes, the source of one of our kernels) makes a
miss that names it; corrupt artifacts are detected and removed, never returned; writers
racing on one entry leave one valid entry; an unwritable folder warns and caches
nothing; --clear removes only our entries."""

import dataclasses
import json
import logging
import multiprocessing
import shutil

import pytest
import torch

from vllm_npu_graph.compilation import cache_key
from vllm_npu_graph.compilation.cache_store import MANIFEST, CompileCache, file_sha256
from vllm_npu_graph.config import NPUGraphConfig
from vllm_npu_graph.targets.host import HostTarget

ARTIFACT = "range_1_2048_abc.bin"


@pytest.fixture(scope="module")
def vllm_config(tiny_model):
    """The engine config `vllm serve` builds for the tiny model (no engine started)."""
    from vllm_npu_graph.compilation import warmup

    _, serve_args = warmup.parse(
        ["--model", str(tiny_model("qwen3")), "--dtype", "float32", "--max-model-len", "512", "--max-num-seqs", "4"]
    )
    return warmup.engine_config(serve_args)


@pytest.fixture(scope="module")
def base(vllm_config):
    sources = cache_key.source_hashes()
    return cache_key.key_components(vllm_config, HostTarget(), NPUGraphConfig(), sources), sources


def stored(tmp_path, components, sources, payload=b"compiled code" * 100) -> CompileCache:
    cache = CompileCache(tmp_path / "cache")

    def write(path):
        with open(path, "wb") as f:
            f.write(payload)
        return True

    assert cache.store(cache_key.digest(components), ARTIFACT, components, sources, write, {"range": "(1, 2048)"})
    return cache


def test_key_is_stable_and_the_store_hits(tmp_path, vllm_config, base):
    components, sources = base
    again = cache_key.key_components(vllm_config, HostTarget(), NPUGraphConfig(), cache_key.source_hashes())
    assert again == components
    cache = stored(tmp_path, components, sources)
    assert cache.status(components, sources)["warm"]
    assert cache.lookup(cache_key.digest(components), ARTIFACT) is not None


@pytest.mark.parametrize(
    "change,expected",
    [
        ("pass_option", "pass_options"),
        ("kernels", "kernels"),
        ("capture_size", "capture_sizes"),
        # an artifact built for AVX-512 vectors computed zeros under ATEN_CPU_CAPABILITY=avx2
        ("aten_capability", "target.aten_vectors"),
        ("kernel_source", "source.kernels (kernels/fused_triton.py)"),
    ],
)
def test_one_changed_component_is_a_miss_naming_it(tmp_path, monkeypatch, vllm_config, base, change, expected):
    components, sources = base
    cache = stored(tmp_path, components, sources)
    config, options = vllm_config, NPUGraphConfig()
    new_sources = sources
    if change == "pass_option":
        options = NPUGraphConfig(passes={"swiglu": True})
    elif change == "kernels":
        options = NPUGraphConfig(kernels="triton")
    elif change == "aten_capability":
        other = "AVX2" if torch.backends.cpu.get_cpu_capability() != "AVX2" else "AVX512"
        monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: other)
    elif change == "capture_size":
        compilation = dataclasses.replace(vllm_config.compilation_config)
        compilation.cudagraph_capture_sizes = [1, 4]
        config = dataclasses.replace(vllm_config, compilation_config=compilation)
    else:  # a copy of the package with one kernel edited
        package = tmp_path / "vllm_npu_graph"
        shutil.copytree(cache_key.PACKAGE_DIR, package)
        kernel = package / "kernels" / "fused_triton.py"
        kernel.write_text(kernel.read_text() + "\n# tuned\n")
        monkeypatch.setattr(cache_key, "PACKAGE_DIR", package)
        new_sources = cache_key.source_hashes()
    changed = cache_key.key_components(config, HostTarget(), options, new_sources)
    assert cache_key.digest(changed) != cache_key.digest(components)
    status = cache.status(changed, new_sources)
    assert not status["warm"]
    assert expected in status["differs"], status
    assert expected in status["reason"]
    if change != "capture_size":  # capture sizes also move vLLM's own config hash
        assert len(status["differs"]) <= 2, status


def test_corrupt_artifact_is_detected_removed_and_never_returned(tmp_path, base, caplog):
    components, sources = base
    cache = stored(tmp_path, components, sources)
    key = cache_key.digest(components)
    path = cache.entry(key) / ARTIFACT
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size, one byte flipped
    path.write_bytes(bytes(data))
    assert not cache.status(components, sources)["warm"]
    with caplog.at_level(logging.WARNING):
        assert cache.lookup(key, ARTIFACT) is None
    assert "corrupt" in caplog.text
    assert not path.exists()
    assert ARTIFACT not in json.loads((cache.entry(key) / MANIFEST).read_text())["artifacts"]
    path.write_bytes(b"trunc")  # an unlisted file is never served either
    assert cache.lookup(key, ARTIFACT) is None


def _race(root, components, sources, payload, barrier):
    cache = CompileCache(root)
    barrier.wait()

    def write(path):
        with open(path, "wb") as f:
            for _ in range(64):  # slow enough for the writers to overlap
                f.write(payload)
        return True

    assert cache.store(cache_key.digest(components), ARTIFACT, components, sources, write, {})


def test_concurrent_writers_leave_one_valid_entry(tmp_path, base):
    components, sources = base
    ctx = multiprocessing.get_context("fork")
    barrier = ctx.Barrier(4)
    procs = [
        ctx.Process(target=_race, args=(tmp_path / "cache", components, sources, bytes([i]) * 65536, barrier))
        for i in range(4)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    cache = CompileCache(tmp_path / "cache")
    entries = cache.entries()
    assert len(entries) == 1
    entry, manifest = entries[0]
    record = manifest["artifacts"][ARTIFACT]
    assert file_sha256(entry / ARTIFACT) == record["sha256"]
    assert cache.status(components, sources)["warm"]
    assert not [p for p in entry.iterdir() if p.name.endswith(".tmp")]


def test_unwritable_folder_warns_and_caches_nothing(tmp_path, base, caplog):
    components, sources = base
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    cache = CompileCache(blocker / "cache")  # can't be created, even by root
    with caplog.at_level(logging.WARNING):
        assert not cache.store(
            cache_key.digest(components), ARTIFACT, components, sources, lambda p: open(p, "wb").close() or True, {}
        )
    assert "not writable" in caplog.text
    assert cache.lookup(cache_key.digest(components), ARTIFACT) is None
    assert not cache.status(components, sources)["warm"]


def test_clear_removes_only_our_entries(tmp_path, base):
    components, sources = base
    cache = stored(tmp_path, components, sources)
    foreign = cache.root / "someone-elses"
    foreign.mkdir()
    (foreign / "data").write_text("keep me")
    removed, freed = cache.clear()
    assert removed == 1 and freed > 0
    assert foreign.is_dir() and (foreign / "data").read_text() == "keep me"
    assert not cache.entries()
