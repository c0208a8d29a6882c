"""Fetch the torch-npu 2.13.0 wheel (never installed or imported) and unpack the files
that carry its API contract: the op schemas and the graph API source.

    python tests/fakes/fetch_contract.py [DEST]   (default: .cache/torch-npu-contract)
"""

import subprocess
import sys
import zipfile
from pathlib import Path

WHEEL = "torch-npu==2.13.0"
FILES = ("torch_npu/csrc/aten/npu_native_functions_by_codegen.yaml", "torch_npu/npu/graphs.py")


def fetch(dest: Path) -> Path:
    if all((dest / Path(f).name).is_file() for f in FILES):
        return dest
    wheels = dest / "wheel"
    wheels.mkdir(parents=True, exist_ok=True)
    if not list(wheels.glob("torch_npu-*.whl")):
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "-q", "--no-deps", WHEEL, "-d", str(wheels)], check=True
        )
    with zipfile.ZipFile(next(wheels.glob("torch_npu-*.whl"))) as wheel:
        for name in FILES:
            (dest / Path(name).name).write_bytes(wheel.read(name))
    return dest


if __name__ == "__main__":
    print(fetch(Path(sys.argv[1] if len(sys.argv) > 1 else ".cache/torch-npu-contract")))
