"""The house rules a newcomer relies on, checked: the package's rooms (sub-packages and
top-level modules) import each other without circles, lazy imports included; nothing in
the package edits sys.path; no test imports another test module."""

import ast
from itertools import permutations
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "vllm_npu_graph"


def room(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def imported_modules(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("vllm_npu_graph"):
            if node.module == "vllm_npu_graph":
                found |= {f"vllm_npu_graph.{alias.name}" for alias in node.names}
            else:
                found.add(node.module)
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.startswith("vllm_npu_graph.")}
    return found


def room_edges() -> dict[tuple[str, str], set[str]]:
    edges: dict[tuple[str, str], set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        module = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        for target in imported_modules(path):
            if room(target) != room(module):
                edges.setdefault((room(module), room(target)), set()).add(module)
    return edges


def test_no_two_rooms_of_the_package_import_each_other():
    edges = room_edges()
    circles = {
        (a, b): (sorted(edges[a, b]), sorted(edges[b, a]))
        for a, b in permutations({r for e in edges for r in e}, 2)
        if a < b and (a, b) in edges and (b, a) in edges
    }
    assert not circles, circles


def test_the_package_never_edits_sys_path():
    offenders = [str(p.relative_to(ROOT)) for p in PACKAGE.rglob("*.py") if "sys.path" in p.read_text()]
    assert not offenders


def test_no_test_imports_another_test_module():
    tests = {p.stem for p in (ROOT / "tests").glob("test_*.py")} | {"conftest"}
    offenders = {p.name: sorted(m for m in imported_names(p) if m in tests) for p in (ROOT / "tests").rglob("*.py")}
    assert not {name: found for name, found in offenders.items() if found}


def imported_names(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module.split(".")[0])
        elif isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
    return found
