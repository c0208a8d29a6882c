"""Files the plugin writes outside the compile cache are whole or absent: a writer killed
mid-write leaves the previous file, and a reader of a missing, empty or corrupt file gets
one warning line and no traceback (vllm_npu_graph/files.py)."""

import json
import logging
import os
import signal
import subprocess
import sys
import time

from vllm_npu_graph import files

WRITER = """
import sys
from vllm_npu_graph import files
big = {"payload": "x" * (1 << 22)}
print("writing", flush=True)
while True:
    files.write_json_atomic(sys.argv[1], big)
"""


def test_a_writer_killed_mid_write_leaves_a_whole_file(tmp_path):
    path = tmp_path / "last_run.json"
    files.write_json_atomic(path, {"run": 1})
    for delay in (0.0, 0.01, 0.03, 0.05, 0.08):  # SIGKILL at arbitrary points of the write loop
        writer = subprocess.Popen([sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE, text=True)
        assert writer.stdout.readline() == "writing\n"
        time.sleep(delay)
        writer.send_signal(signal.SIGKILL)
        writer.wait()
        data = files.read_json(path, "report")
        assert data == {"run": 1} or len(data["payload"]) == 1 << 22


def test_missing_empty_or_corrupt_files_are_one_warning_not_a_traceback(tmp_path, caplog):
    assert files.read_json(tmp_path / "absent.json", "report") is None
    for text in ("", "{not json", '{"cut": "hal'):
        (tmp_path / "bad.json").write_text(text)
        caplog.clear()
        with caplog.at_level(logging.WARNING):
            assert files.read_json(tmp_path / "bad.json", "last-run report") is None
        assert len(caplog.records) == 1 and "ignoring the unreadable last-run report" in caplog.text


def test_info_survives_an_empty_last_run_report(tmp_path):
    (tmp_path / "last_run.json").write_text("")
    env = dict(os.environ, VLLM_NPU_GRAPH_CACHE=str(tmp_path))
    proc = subprocess.run(
        [sys.executable, "-m", "vllm_npu_graph.cli", "info"], env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    info = json.loads(proc.stdout)
    assert "last_engine_run" not in info and "Traceback" not in proc.stderr
    assert info["host_cpu"]["tier"] in ("avx2", "avx512", "avx512_bf16")
    assert "ignoring the unreadable last-run report" in proc.stderr
