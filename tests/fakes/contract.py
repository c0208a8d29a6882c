"""The torch-npu 2.13.0 contract, read from the wheel's own files: op schemas (the
codegen YAML, parsed by torch._C.parse_schema) and the graph API signatures (graphs.py,
read with ast). The fake checks every call against these, not against copies."""

import ast
import inspect
import os
from functools import cache
from pathlib import Path

import torch
import yaml

CONTRACT_DIR = Path(
    os.environ.get("VLLM_NPU_GRAPH_NPU_CONTRACT", Path(__file__).parents[2] / ".cache/torch-npu-contract")
)


@cache
def op_schemas() -> dict[str, torch._C.FunctionSchema]:
    funcs: list[str] = []

    def walk(node):
        if isinstance(node, dict):
            for key, value in node.items():
                funcs.append(value) if key == "func" and isinstance(value, str) else walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(yaml.safe_load((CONTRACT_DIR / "npu_native_functions_by_codegen.yaml").read_text()))
    schemas = {}
    for func in funcs:
        try:
            schema = torch._C.parse_schema(func)
        except RuntimeError:
            continue  # a handful use syntax this torch can't parse
        if not schema.overload_name:
            schemas[schema.name] = schema
    return schemas


@cache
def graph_api_signatures() -> dict[str, inspect.Signature]:
    """'graph_pool_handle', 'NPUGraph.capture_begin', 'graph.__init__', ... -> signature."""
    tree = ast.parse((CONTRACT_DIR / "graphs.py").read_text())
    sigs = {}

    def signature(fn: ast.FunctionDef) -> inspect.Signature:
        args = fn.args
        defaults = [None] * (len(args.args) - len(args.defaults)) + list(args.defaults)
        params = []
        for arg, default in zip(args.args, defaults):
            value = inspect.Parameter.empty if default is None else ast.literal_eval(default)
            params.append(inspect.Parameter(arg.arg, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=value))
        return inspect.Signature(params)

    for node in tree.body:
        if isinstance(node, ast.FunctionDef):
            sigs[node.name] = signature(node)
        elif isinstance(node, ast.ClassDef):
            for item in node.body:
                if isinstance(item, ast.FunctionDef):
                    sigs[f"{node.name}.{item.name}"] = signature(item)
    return sigs


_TYPES = {"Tensor": torch.Tensor, "float": (float, int), "int": int, "SymInt": int, "bool": bool, "str": str}


def bind(schema: torch._C.FunctionSchema, args, kwargs) -> dict:
    """Bind a call to the schema the way the real op would, or raise TypeError."""
    positional = [a for a in schema.arguments if not a.kwarg_only]
    if len(args) > len(positional):
        raise TypeError(f"{schema.name}() takes {len(positional)} positional arguments, got {len(args)}")
    names = {a.name for a in schema.arguments}
    unknown = set(kwargs) - names
    if unknown:
        raise TypeError(f"{schema.name}() got unexpected keyword argument(s) {sorted(unknown)}")
    bound = dict(zip((a.name for a in positional), args))
    for arg in schema.arguments:
        if arg.name in kwargs:
            if arg.name in bound:
                raise TypeError(f"{schema.name}() got multiple values for {arg.name!r}")
            bound[arg.name] = kwargs[arg.name]
        elif arg.name not in bound:
            if not arg.has_default_value():
                raise TypeError(f"{schema.name}() missing required argument {arg.name!r}")
            bound[arg.name] = arg.default_value
        _check_type(schema.name, arg, bound[arg.name])
    return bound


def _check_type(op: str, arg, value) -> None:
    type_str = str(arg.type)
    optional = type_str.endswith("?")
    base = type_str.rstrip("?")
    if value is None and optional:
        return
    if base == "int" and arg.name.endswith("dtype") and isinstance(value, torch.dtype):
        return  # torch_npu's documented calls pass a torch.dtype to its `int? *_dtype` arguments
    expected = _TYPES.get(base)
    if expected is not None and (not isinstance(value, expected) or (expected is int and isinstance(value, bool))):
        raise TypeError(f"{op}(): argument {arg.name!r} must be {type_str}, got {type(value).__name__}")
