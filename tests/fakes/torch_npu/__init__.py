"""A fake `torch_npu` for tests (put tests/fakes on sys.path; never installed).

Every op call is bound against the real torch-npu 2.13.0 schemas (contract.py) and
recorded in CALLS; a wrong argument name, type or arity raises TypeError as the real op
would. A few ops our NPU target uses also compute their documented result on CPU
tensors. Importing it installs a fake `torch.npu` namespace (devices, memory, NPUGraph,
graph, graph_pool_handle with the wheel's signatures, npugraph_ex)."""

import sys

import torch

_FAKES = __path__[0].rsplit("/", 1)[0]
if _FAKES not in sys.path:
    sys.path.insert(0, _FAKES)
import contract  # noqa: E402
import fake_npu_runtime  # noqa: E402

CALLS: list[tuple[str, dict]] = []


def _rms(x, gamma, eps):
    xf = x.float()
    rstd = torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps)
    return (xf * rstd * gamma.float()).to(x.dtype), rstd


def _npu_rms_norm(self, gamma, epsilon):
    return _rms(self, gamma, epsilon)


def _npu_add_rms_norm(x1, x2, gamma, epsilon):
    x_sum = (x1.float() + x2.float()).to(x1.dtype)
    y, rstd = _rms(x_sum, gamma, epsilon)
    return y, rstd, x_sum


def _npu_swiglu(self, dim):
    gate, up = self.chunk(2, dim=dim)
    return (torch.nn.functional.silu(gate.float()) * up.float()).to(self.dtype)


NUMERIC = {"npu_rms_norm": _npu_rms_norm, "npu_add_rms_norm": _npu_add_rms_norm, "npu_swiglu": _npu_swiglu}


class FakeOp:
    def __init__(self, schema):
        self.schema = schema

    def __call__(self, *args, **kwargs):
        bound = contract.bind(self.schema, args, kwargs)
        CALLS.append((self.schema.name, bound))
        impl = NUMERIC.get(self.schema.name)
        if impl is None:
            raise NotImplementedError(f"the fake torch_npu computes no result for {self.schema.name}")
        return impl(**bound)


def __getattr__(name: str):
    schema = contract.op_schemas().get(name)
    if schema is None:
        raise AttributeError(f"torch_npu has no attribute {name!r} (not in the torch-npu 2.13.0 schemas)")
    return FakeOp(schema)


fake_npu_runtime.install(CALLS)
