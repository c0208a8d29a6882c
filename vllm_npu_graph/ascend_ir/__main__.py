"""`python -m vllm_npu_graph.ascend_ir [--out DIR] [--json FILE]`: lower every kernel
specialisation (see `shapes`) through triton-ascend's front end, in parallel, and
report per kernel x specialisation: lowered or the error, mix_mode, cube matmuls, and
accesses the adapter could not keep structured. Exit status 1 when a check fails."""

import argparse
import os
import sys
import time
import warnings
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

from vllm_npu_graph.files import write_json_atomic, write_text_atomic

# torch without numpy warns at import; this venv needs no numpy.
warnings.filterwarnings("ignore", message="Failed to initialize NumPy")

_UNIQUE: list = []  # (key, Launch), inherited by the forked workers


def _key(launch):
    return (
        launch.name,
        tuple(sorted(launch.signature.items())),
        tuple(sorted((k, repr(v)) for k, v in launch.constants.items())),
        launch.attrs.hash(),
    )


def _lower(index):
    from vllm_npu_graph.ascend_ir.lower import lower

    start = time.perf_counter()
    return lower(_UNIQUE[index][1]), time.perf_counter() - start


def _spec(launch) -> str:
    """The constexpr choices, plus integers the JIT specialised because they were 1."""
    return " ".join(f"{k}={v}" for k, v in launch.constants.items() if v is not None)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, help="write table.md, results.json and representative IR here")
    parser.add_argument("--json", type=Path, help="write the full result (rows, failures) as JSON here")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args(argv)

    import triton

    from vllm_npu_graph.ascend_ir import checks, report, shapes
    from vllm_npu_graph.ascend_ir.record import TARGET_ARCH

    start = time.perf_counter()
    labels = defaultdict(list)
    for label, launch in shapes.launches():
        key = _key(launch)
        if key not in labels:
            _UNIQUE.append((key, launch))
        labels[key].append(label)
    keep = {}  # kernel name -> index of the specialisation whose IR is kept
    for i, (key, launch) in enumerate(_UNIQUE):
        if any(r in label for label in labels[key] for r in shapes.REPRESENTATIVE):
            keep.setdefault(launch.name, i)

    with ProcessPoolExecutor(max_workers=args.jobs, mp_context=get_context("fork")) as pool:
        results = list(pool.map(_lower, range(len(_UNIQUE)), chunksize=4))

    rows, kept_ir = [], {}
    for i, ((key, launch), (res, seconds)) in enumerate(zip(_UNIQUE, results)):
        uses_dot = any("tl.dot(" in fn.src for fn in [launch.kernel, *checks.called_jit(launch.kernel)])
        rows.append(
            {
                "kernel": launch.name,
                "spec": _spec(launch),
                "from": labels[key],
                "uses_dot": uses_dot,
                "lowered": res.ok,
                "error": res.error,
                "mix_mode": res.mix_mode,
                "matmuls": res.matmuls,
                "unstructured": res.unstructured,
                "discrete_masks": res.discrete_masks,
                "seconds": round(seconds, 2),
            }
        )
        if keep.get(launch.name) == i:
            kept_ir[launch.name] = res.ttadapter
    failures = [p for row in rows for p in checks.row_problems(row)]
    failures += [
        f"{name} is never launched by the check (add its wrapper to ascend_ir/shapes.py)"
        for name in checks.unlaunched([launch.kernel for _, launch in _UNIQUE])
    ]
    wall = time.perf_counter() - start
    header = (
        f"triton-ascend {triton.__version__} front end (TTIR -> Linalg/HIVM), target {TARGET_ARCH}: "
        f"{len(rows)} kernel specialisations from {sum(len(r['from']) for r in rows)} launches, "
        f"{sum(r['lowered'] for r in rows)} lowered"
    )
    summary = report.summary(rows, header, failures)
    print(summary + f"({wall:.0f} s, {args.jobs} jobs)")
    if args.json:
        write_json_atomic(args.json, {"rows": rows, "failures": failures, "seconds": wall}, indent=1)
    if args.out:
        (args.out / "ir").mkdir(parents=True, exist_ok=True)
        root = str(Path(__file__).resolve().parents[2]) + "/"
        for name, text in kept_ir.items():  # source paths relative to the checkout
            write_text_atomic(args.out / "ir" / f"{name}.ttadapter.mlir", text.replace(root, ""))
        stable = [{k: v for k, v in r.items() if k != "seconds"} for r in rows]
        write_json_atomic(args.out / "results.json", stable, indent=1)
        write_text_atomic(args.out / "table.md", summary + "\n" + report.table(rows))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
