"""The README stays true: every figure in its results table is in the committed file it
cites, its environment-variable table is envs.py's, and every file it points to exists."""

import re
from pathlib import Path

from vllm_npu_graph import envs

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
NUMBER = re.compile(r"\d+(?:\.\d+)?(?:x|%)?")  # a figure with its unit: "29%" is not any "29"


def section(title: str) -> str:
    return README.split(f"\n## {title}\n", 1)[1].split("\n## ", 1)[0]


def results_rows() -> list[tuple[str, str, str]]:
    rows = [line.strip("|").split("|") for line in section("Results").splitlines() if line.startswith("| ")]
    rows = [(figure.strip(), value.strip(), source.strip().strip("`")) for figure, value, source in rows[1:]]
    return [row for row in rows if not row[0].startswith("---")]


def test_every_figure_of_the_results_table_is_in_the_file_it_cites():
    rows = results_rows()
    assert len(rows) >= 5
    for figure, value, source in rows:
        text = (ROOT / source).read_text()
        for number in NUMBER.findall(value) or [value]:
            after = r"(?!\d)" if number[-1] in "x%" else r"(?!\d|\.\d|x|%)"  # a bare number is no ratio or share
            assert re.search(rf"(?<![\d.]){re.escape(number)}{after}", text), f"{figure}: {number} not in {source}"


def test_the_environment_table_is_envs_py_s():
    assert envs.markdown_table() in README


def test_every_file_the_readme_names_exists():
    named = set(re.findall(r"`((?:docs|bench|tests|vllm_npu_graph)/[\w./-]+\.(?:md|py|txt))`", README))
    assert named
    assert [name for name in sorted(named) if not (ROOT / name).exists()] == []
