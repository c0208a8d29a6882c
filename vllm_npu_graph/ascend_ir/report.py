"""The Markdown report of the triton-ascend check: a per-kernel summary, then every
kernel x specialisation with the launches that produce it."""

from collections import defaultdict


def summary(rows, header: str, failures) -> str:
    by_kernel = defaultdict(list)
    for r in rows:
        by_kernel[r["kernel"]].append(r)
    lines = [
        header,
        "",
        "| kernel | specialisations | lowered | mix_mode | cube matmuls | unstructured accesses | discrete masks |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, rs in by_kernel.items():
        ok = [r for r in rs if r["lowered"]]
        modes = ", ".join(sorted({r["mix_mode"] for r in ok}))
        matmuls = ", ".join(str(m) for m in sorted({r["matmuls"] for r in ok}))
        uns = sorted({s for r in ok for s in r["unstructured"]})
        dis = sorted({s for r in ok for s in r["discrete_masks"]})
        lines.append(
            f"| {name} | {len(rs)} | {len(ok)}/{len(rs)} | {modes} | {matmuls} | "
            f"{'<br>'.join(uns) or 'none'} | {'<br>'.join(dis) or 'none'} |"
        )
    lines += ["", f"{len(failures)} check failures"] + [f"- {f}" for f in failures]
    return "\n".join(lines) + "\n"


def table(rows) -> str:
    lines = [
        "| kernel | specialisation | launched by | lowered | mix_mode | matmuls | unstructured | discrete masks |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        status = "yes" if r["lowered"] else f"**no**: {r['error'][:200]}"
        lines.append(
            f"| {r['kernel']} | {r['spec']} | {'; '.join(r['from'])} | {status} | {r['mix_mode']} | "
            f"{r['matmuls']} | {len(r['unstructured'])} | {len(r['discrete_masks'])} |"
        )
    return "\n".join(lines) + "\n"
