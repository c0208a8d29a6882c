"""vLLM freezes the GC heap once a server has started; at exit, Triton's nanobind
objects caught in frozen cycles used to outlive the interpreter and print ~40 lines of
"nanobind: leaked ...". The plugin's exit hook collects the frozen heap first."""

import os
import subprocess
import sys

FROZEN_THEN_EXIT = "import gc, triton; {hook}; gc.collect(); gc.freeze()"


def exit_output(hook: str) -> str:
    env = dict(os.environ, VLLM_NPU_GRAPH_TARGET="host")
    code = FROZEN_THEN_EXIT.format(hook=hook)
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout + done.stderr


def test_a_frozen_heap_leaks_triton_objects_without_the_hook():
    assert "nanobind: leaked" in exit_output("pass")


def test_the_plugin_collects_the_frozen_heap_at_exit():
    out = exit_output("import vllm_npu_graph; assert vllm_npu_graph.register()")
    assert "leaked" not in out, out[-2000:]
