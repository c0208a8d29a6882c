"""Collect the heap vLLM froze before the interpreter tears itself down.

vLLM's API server and engine core call `gc.freeze()` once started, so serving does not
pay for collecting start-up objects. Frozen objects are never collected again, not
even at exit: reference cycles holding Triton's nanobind objects (Triton comes in with
torch's Dynamo in every vLLM process) then outlive the interpreter, and nanobind prints
~40 lines of "leaked instances/types/functions" on every stop. Unfreezing and
collecting from an exit hook frees those cycles, and runs their finalizers, as Python
does for any other garbage.
"""

import atexit
import gc

_installed = False


def _collect_frozen_heap() -> None:
    gc.unfreeze()
    gc.collect()


def install() -> None:
    """Register the exit hook once per process (vLLM calls the plugin twice)."""
    global _installed
    if not _installed:
        atexit.register(_collect_frozen_heap)
        _installed = True
