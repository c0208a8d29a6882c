"""PNG plots of a summary (matplotlib, no display): decode and prefill throughput per
mode, TTFT/TPOT vs concurrency per mode, start-up time per mode."""

from pathlib import Path

MARKERS = "osD^v<>ph*"


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _series(summary: dict, section: str, key: str):
    for i, (name, entry) in enumerate(summary.items()):
        points = sorted((int(x), v.get(key)) for x, v in entry.get(section, {}).items() if v.get(key) is not None)
        if points:
            yield name, MARKERS[i % len(MARKERS)], [p[0] for p in points], [p[1] for p in points]


def _style_log2(axes, xlabel: str, legend_size: int) -> None:
    for ax in axes:
        ax.set_xscale("log", base=2)
        ax.set_xlabel(xlabel)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=legend_size)


def _save(plt, fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def throughput(summary: dict, path: Path, title: str) -> Path:
    plt = _plt()
    fig, (dec, pre) = plt.subplots(1, 2, figsize=(11, 4.2))
    for name, marker, xs, ys in _series(summary, "decode", "tok_s"):
        dec.plot(xs, ys, marker=marker, label=name)
    for name, marker, xs, ys in _series(summary, "prefill", "tok_s"):
        pre.plot(xs, ys, marker=marker, label=name)
    for ax, xlabel, ylabel in (
        (dec, "batch (sequences)", "decode tokens/s"),
        (pre, "prompt tokens", "prefill tokens/s"),
    ):
        ax.set_ylabel(ylabel)
        _style_log2([ax], xlabel, 8)
    fig.suptitle(f"Offline throughput, median of repeats - {title}", fontsize=10)
    return _save(plt, fig, path)


def serving(summary: dict, path: Path, title: str) -> Path:
    plt = _plt()
    fig, axes = plt.subplots(1, 3, figsize=(14, 4.2))
    panels = (("ttft", "TTFT (ms)"), ("tpot", "TPOT (ms)"))
    for ax, (metric, label) in zip(axes, panels):
        for name, marker, xs, ys in _series(summary, "online", f"p50_{metric}_ms"):
            (line,) = ax.plot(xs, ys, marker=marker, label=f"{name} p50")
            p99 = next((s[3] for s in _series(summary, "online", f"p99_{metric}_ms") if s[0] == name), None)
            if p99:
                ax.plot(xs, p99, marker=marker, linestyle="--", color=line.get_color(), alpha=0.6, label=f"{name} p99")
        ax.set_ylabel(label)
    for name, marker, xs, ys in _series(summary, "online", "request_throughput"):
        axes[2].plot(xs, ys, marker=marker, label=name)
    axes[2].set_ylabel("requests/s")
    _style_log2(axes, "concurrency", 7)
    fig.suptitle(f"Serving (vllm bench serve, random dataset), median of repeats - {title}", fontsize=10)
    return _save(plt, fig, path)


def startup(summary: dict, path: Path, title: str) -> Path:
    plt = _plt()
    keys = (("cold_s", "cold start"), ("warm_s", "warm start"), ("compile_s", "compile"), ("capture_s", "capture"))
    names = [n for n, e in summary.items() if e.get("startup")]
    fig, ax = plt.subplots(figsize=(max(6, 1.6 * len(names) + 2), 4.2))
    width = 0.8 / len(keys)
    for k, (key, label) in enumerate(keys):
        values = [summary[n]["startup"].get(key) or 0.0 for n in names]
        ax.bar([i + k * width for i in range(len(names))], values, width, label=label)
    ax.set_xticks([i + 0.4 - width / 2 for i in range(len(names))], names)
    ax.set_ylabel("seconds")
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(f"Start-up, median of repeats - {title}", fontsize=10)
    return _save(plt, fig, path)


def all_plots(summary: dict, out_dir: Path, title: str) -> list[Path]:
    return [
        throughput(summary, out_dir / "throughput.png", title),
        serving(summary, out_dir / "serving.png", title),
        startup(summary, out_dir / "startup.png", title),
    ]
