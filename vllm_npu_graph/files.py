"""Files the plugin writes and reads back: written whole or not at all (a temp file in
the same folder, then a rename), and read without trusting them (a missing, empty or
corrupt file is one warning line, never a traceback). vLLM force-kills its engine core
right after SIGTERM, so a writer can die at any byte.
"""

import json
import logging
import os
from pathlib import Path
from typing import Any

logger = logging.getLogger("vllm_npu_graph.files")


def write_text_atomic(path: Path | str, text: str) -> None:
    """Readers see the old file or the new one, never a part (temp: `.<name>.<pid>.tmp`)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_json_atomic(path: Path | str, data: Any, **dump_options) -> None:
    write_text_atomic(path, json.dumps(data, **{"indent": 2, **dump_options}) + "\n")


def read_json(path: Path | str, what: str) -> Any | None:
    """The file's JSON, or None (with one warning when it exists but can't be read)."""
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        logger.warning(
            "npu_graph: ignoring the unreadable %s %s (%s); it is rewritten by the next run.",
            what,
            path,
            type(exc).__name__,
        )
        return None
