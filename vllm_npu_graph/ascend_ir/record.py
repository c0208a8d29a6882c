"""Record the kernel launches a wrapper makes, with the exact signature and constants
triton-ascend's JIT would compile for them, without compiling or launching.

A stand-in active driver answers the JIT's device questions with an Ascend target, and
Triton's pre-compile `cache_hook` captures each specialisation and vetoes the compile.
So the specialisations come from the real wrappers and the real binder (dtypes,
constexprs, value-1 and divisible-by-16 integer specialisation), not from a hand list.
"""

import contextlib
import types
from dataclasses import dataclass

# The arch string only matters to the bishengir back end, which we cannot run.
TARGET_ARCH = "Ascend910B2"


@dataclass
class Launch:
    kernel: object  # the JITFunction
    signature: dict
    constants: dict
    attrs: object
    options: dict

    @property
    def name(self) -> str:
        return self.kernel.fn.__name__


def npu_target():
    from triton.backends.compiler import GPUTarget

    return GPUTarget("npu", TARGET_ARCH, 0)


@contextlib.contextmanager
def recording():
    """Yields a list that collects a Launch per kernel call made inside the block."""
    from triton.runtime import driver
    from triton.runtime.jit import JITFunction

    launches: list[Launch] = []

    def hook(*, compile, fn, **_):
        options = {k: compile[k] for k in ("num_warps", "num_stages", "num_ctas") if compile.get(k) is not None}
        launches.append(
            Launch(
                fn.jit_function, dict(compile["signature"]), dict(compile["constants"]), compile["configs"][0], options
            )
        )
        fn.jit_function.cache[0].clear()  # record every call, even a repeated specialisation
        return True  # skip compile and launch

    fake = types.SimpleNamespace(
        get_current_device=lambda: 0, get_current_stream=lambda device=None: 0, get_current_target=npu_target
    )
    previous_driver, previous_hook = driver.active, JITFunction.cache_hook
    driver.set_active(fake)
    JITFunction.cache_hook = hook
    try:
        yield launches
    finally:
        JITFunction.cache_hook = previous_hook
        driver.set_active(previous_driver)
