"""Our hot custom ops, defined straight on the dispatcher.

`torch.library.custom_op` wraps every call in Python layers (~7 µs here); a decode
step calls our ops ~250 times, so the ops on that path are defined with a schema and a
kernel per device key instead (~1 µs). The fake impl is what Dynamo, Inductor and
npugraph_ex see. Ops taking a layer name (an opaque object) stay `custom_op`s.
"""

from collections.abc import Callable

import torch

_LIB = torch.library.Library("npu_graph", "FRAGMENT")
DEVICE_KEYS = ("CPU", "PrivateUse1")  # host target; NPU (torch_npu's tensors)


def op(schema: str, fake: Callable) -> Callable:
    """Decorator: define `npu_graph::<schema>` with the function as its kernel on every
    target's device; returns the op overload packet."""

    def define(fn: Callable):
        name = schema.split("(", 1)[0]
        _LIB.define(schema)
        for key in DEVICE_KEYS:
            _LIB.impl(name, fn, key)
        torch.library.register_fake(f"npu_graph::{name}", fake, lib=_LIB)
        return getattr(torch.ops.npu_graph, name)

    return define
