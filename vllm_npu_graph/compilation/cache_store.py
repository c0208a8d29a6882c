"""Our compile-cache folder: one entry per key digest, each a manifest (the key's
components, per-file source hashes, each artifact's checksum) beside the artifacts.

Why our own folder rather than only vLLM's: `--check` must diff a configuration against
the nearest entry without compiling, `--clear` must remove our entries and nothing else,
and a truncated or corrupt artifact must be detected (checksum) before it is loaded.

Writes are atomic (temp file + rename); the rename of an artifact and the manifest
update happen together under a file lock on the entry, so two processes filling one
entry at once leave one valid entry. An artifact counts only once the manifest lists
it (the manifest is the ready marker). A writer killed mid-write leaves only a temp
file, which readers never see and the next writer of the entry removes. A folder we
can't write gives one warning and an uncached run, never a crash.
"""

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import time
from pathlib import Path

from vllm_npu_graph import envs
from vllm_npu_graph.compilation import cache_key
from vllm_npu_graph.files import write_json_atomic
from vllm_npu_graph.log import get_logger

logger = get_logger(__name__)

FORMAT = 1
SUBDIR = "npu_graph_compile_cache"
MANIFEST = "manifest.json"


def default_root() -> Path:
    """VLLM_NPU_GRAPH_COMPILE_CACHE_DIR, else vLLM's cache root (VLLM_CACHE_ROOT)."""
    configured = os.environ.get(envs.COMPILE_CACHE_DIR)
    if configured:
        return Path(configured).expanduser()
    from vllm import envs as vllm_envs

    return Path(vllm_envs.VLLM_CACHE_ROOT) / SUBDIR


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's live process
    return True


def remove_dead_writers_temps(entry: Path) -> None:
    """Temp files (`.<name>.<pid>.tmp`) of writers on this machine that died mid-write."""
    for tmp in entry.glob(".*.tmp"):
        pid = tmp.name.rsplit(".", 2)[-2]
        if pid.isdigit() and int(pid) != os.getpid() and not _process_alive(int(pid)):
            with contextlib.suppress(OSError):
                tmp.unlink()


def read_manifest(entry: Path) -> dict | None:
    try:
        data = json.loads((entry / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("format") == FORMAT else None


class CompileCache:
    def __init__(self, root: Path | None = None) -> None:
        self.root = Path(root) if root is not None else default_root()
        self.writable = True

    def _disable(self, action: str, exc: OSError) -> None:
        if self.writable:
            logger.warning(
                "npu_graph: the compile cache folder %s is not writable (%s: %s); running "
                "without caching compiled code (set %s to a writable folder).",
                self.root,
                action,
                exc,
                envs.COMPILE_CACHE_DIR,
            )
        self.writable = False

    def entry(self, key_digest: str) -> Path:
        return self.root / key_digest

    @contextlib.contextmanager
    def _locked(self, entry: Path):
        with open(entry / ".lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def lookup(self, key_digest: str, name: str) -> Path | None:
        """The artifact's path if the manifest lists it and its checksum matches; a
        missing or corrupt one is logged, removed from the entry, and None returned."""
        entry = self.entry(key_digest)
        manifest = read_manifest(entry)
        if manifest is None and (entry / MANIFEST).exists():
            logger.warning(
                "npu_graph: compile-cache manifest %s is truncated or corrupt; ignoring the entry "
                "(the next compile rewrites it).",
                entry / MANIFEST,
            )
        record = (manifest or {}).get("artifacts", {}).get(name)
        if record is None:
            return None
        path = entry / name
        try:
            ok = path.stat().st_size == record["bytes"] and file_sha256(path) == record["sha256"]
        except OSError:
            ok = False
        if ok:
            return path
        logger.warning(
            "npu_graph: compile-cache artifact %s is missing, truncated or corrupt (checksum "
            "mismatch); removing it and compiling again.",
            path,
        )
        self.forget(key_digest, name)
        return None

    def forget(self, key_digest: str, name: str) -> None:
        entry = self.entry(key_digest)
        try:
            with self._locked(entry):
                (entry / name).unlink(missing_ok=True)
                manifest = read_manifest(entry)
                if manifest and manifest.get("artifacts", {}).pop(name, None) is not None:
                    write_json_atomic(entry / MANIFEST, manifest)
        except OSError as exc:
            self._disable("removing a corrupt artifact", exc)

    def store(self, key_digest: str, name: str, components: dict, sources: dict, write, meta: dict) -> bool:
        """write(tmp_path) -> bool writes the artifact (False: nothing to save); it is
        renamed into the entry and listed in the manifest under the entry's lock.
        False (logged) when the folder is not writable."""
        if not self.writable:
            return False
        entry = self.entry(key_digest)
        tmp = entry / f".{name}.{os.getpid()}.tmp"
        try:
            entry.mkdir(parents=True, exist_ok=True)
            remove_dead_writers_temps(entry)
            if not write(str(tmp)):
                return False
            record = {**meta, "bytes": tmp.stat().st_size, "sha256": file_sha256(tmp)}
            with self._locked(entry):
                os.replace(tmp, entry / name)
                manifest = read_manifest(entry) or {
                    "format": FORMAT,
                    "digest": key_digest,
                    "components": components,
                    "sources": sources,
                    "created": time.time(),
                    "artifacts": {},
                }
                manifest["artifacts"][name] = record
                manifest["updated"] = time.time()
                write_json_atomic(entry / MANIFEST, manifest)
            return True
        except OSError as exc:
            self._disable("writing an artifact", exc)
            with contextlib.suppress(OSError):
                tmp.unlink(missing_ok=True)
            return False

    def entries(self) -> list[tuple[Path, dict]]:
        if not self.root.is_dir():
            return []
        found = [(d, read_manifest(d)) for d in sorted(self.root.iterdir()) if d.is_dir()]
        return [(d, m) for d, m in found if m is not None]

    def status(self, components: dict, sources: dict) -> dict:
        """Whether the entry for these components is warm (listed artifacts all present
        with matching checksums), else which components differ from the nearest entry."""
        key_digest = cache_key.digest(components)
        entry = self.entry(key_digest)
        manifest = read_manifest(entry)
        if manifest and manifest.get("artifacts"):
            bad = [
                n
                for n, r in manifest["artifacts"].items()
                if not (entry / n).is_file() or file_sha256(entry / n) != r["sha256"]
            ]
            if not bad:
                return {
                    "warm": True,
                    "digest": key_digest,
                    "entry": str(entry),
                    "artifacts": sorted(manifest["artifacts"]),
                }
            return {
                "warm": False,
                "digest": key_digest,
                "entry": str(entry),
                "reason": f"corrupt or missing artifact(s): {', '.join(bad)}",
            }
        candidates = [
            (
                cache_key.differing(m.get("components", {}), components, m.get("sources"), sources),
                -m.get("updated", 0),
                str(d),
            )
            for d, m in self.entries()
            if m.get("artifacts")
        ]
        if not candidates:
            return {
                "warm": False,
                "digest": key_digest,
                "entry": str(entry),
                "reason": "no cache entries",
                "differs": [],
            }
        best, _, nearest = min(candidates, key=lambda c: (len(c[0]), c[1]))
        return {
            "warm": False,
            "digest": key_digest,
            "entry": str(entry),
            "nearest": nearest,
            "differs": best,
            "reason": "differs from the nearest entry in: " + ", ".join(best),
        }

    def clear(self) -> tuple[int, int]:
        """Remove our entries (only folders with our manifest, or half-written ones of
        ours); returns (entries removed, bytes freed)."""
        if not self.root.is_dir():
            return 0, 0
        removed = freed = 0
        for d in sorted(self.root.iterdir()):
            if d.is_dir() and ((d / MANIFEST).exists() or (d / ".lock").exists()):
                freed += folder_bytes(d)
                shutil.rmtree(d, ignore_errors=True)
                removed += 1
        return removed, freed

    def size_bytes(self) -> int:
        return folder_bytes(self.root) if self.root.is_dir() else 0


def folder_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
