"""One check for every "graph mode" claim: each rank's coverage line (logged at
shutdown) shows replayed graph steps, and only the eager fallbacks the test expects.
Equal tokens alone prove nothing: the eager fallback gives equal tokens too."""

import re

LINE = re.compile(r"npu_graph: graph coverage: replayed (\d+) step\(s\), (\d+) token\(s\).*?; eager fallbacks: (.*)$")
PREFILL = "a prefill or mixed batch"


def coverage(log: str) -> list[dict]:
    """Per rank: replayed steps and tokens, and eager steps by reason."""
    out = []
    for line in log.splitlines():
        m = LINE.search(line)
        if not m:
            continue
        eager = {}
        if m.group(3).strip() != "none":
            for part in m.group(3).split("; "):
                reason, steps = re.match(r"(.*): (\d+) step\(s\), \d+ token\(s\)", part).groups()
                eager[reason] = int(steps)
        out.append({"steps": int(m.group(1)), "tokens": int(m.group(2)), "eager": eager})
    return out


def assert_graph_mode(log: str, allowed=(PREFILL,), ranks: int = 1) -> list[dict]:
    """Every one of `ranks` ranks replayed graphs, and each eager fallback's reason
    starts with one of `allowed`."""
    ranks_seen = coverage(log)
    assert len(ranks_seen) >= ranks, f"{len(ranks_seen)} coverage line(s) for {ranks} rank(s)"
    for rank in ranks_seen:
        assert rank["steps"] > 0 and rank["tokens"] > 0, f"no graph replayed: {rank}"
        unexpected = [r for r in rank["eager"] if not r.startswith(tuple(allowed))]
        assert not unexpected, f"unexpected eager fallbacks: {unexpected}"
    return ranks_seen


def assert_reports_replayed(reports: list[dict], allowed=(PREFILL,)) -> None:
    """The same check on workers' warm-up reports (collected over Ray, say)."""
    for report in reports:
        cov = report["coverage"]
        assert sum(cov["replayed_steps"].values()) > 0, f"rank {report['rank']} replayed no graph: {cov}"
        unexpected = [r for r in cov["eager_steps"] if not r.startswith(tuple(allowed))]
        assert not unexpected, f"rank {report['rank']}: unexpected eager fallbacks: {unexpected}"


def server_reports(base: str) -> list[dict]:
    """Every worker's warm-up report (coverage included) from a running server started
    with VLLM_SERVER_DEV_MODE=1, through vLLM's dev-mode /collective_rpc endpoint."""
    import requests

    r = requests.post(f"{base}/collective_rpc", json={"method": "warmup_report"}, timeout=120)
    assert r.status_code == 200, r.text
    return r.json()["results"]
