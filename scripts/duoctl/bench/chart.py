"""The run as a PNG: per path, latency percentiles and throughput against concurrency.

matplotlib's Agg canvas directly (no pyplot, no display, no global state).
"""

from __future__ import annotations

from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from duoctl.bench.report import TITLES
from duoctl.bench.results import BenchRun


def draw(run: BenchRun, file: Path) -> Path:
    """Write the chart of `run` to `file` (PNG); returns `file`."""
    rows = max(1, len(run.paths))
    fig = Figure(figsize=(11, 4 * rows), dpi=100)
    FigureCanvasAgg(fig)
    for i, p in enumerate(run.paths):
        levels = [r for r in p.levels]
        x = [r.level for r in levels]
        left = fig.add_subplot(rows, 2, 2 * i + 1)
        for name, label in (("latency_p50", "p50"), ("latency_p95", "p95"), ("latency_p99", "p99")):
            pts = [(r.level, getattr(r, name)) for r in levels if getattr(r, name) is not None]
            if pts:
                left.plot([a for a, _ in pts], [b for _, b in pts], marker="o", label=label)
        left.axhline(p.target_p95, color="grey", linestyle="--", label=f"target {p.target_p95:g} s")
        if p.knee is not None:
            left.axvline(p.knee.level, color="green", linestyle=":", label=f"knee {p.knee.level}")
        left.set_title(f"{TITLES.get(p.path, p.path)}: latency")
        left.set_xlabel("concurrent requests")
        left.set_ylabel("seconds")
        left.legend(loc="upper left", fontsize="small")
        right = fig.add_subplot(rows, 2, 2 * i + 2)
        right.plot(
            x, [r.requests_per_s for r in levels], marker="o", color="tab:blue", label="requests/s"
        )
        right.set_ylabel("requests/s", color="tab:blue")
        tokens = right.twinx()
        tokens.plot(
            x,
            [r.tokens_per_s_total for r in levels],
            marker="s",
            linestyle="--",
            color="tab:orange",
            label="output tokens/s",
        )
        handles = right.get_legend_handles_labels()[0] + tokens.get_legend_handles_labels()[0]
        right.legend(handles=handles, loc="upper left", fontsize="small")
        tokens.set_ylabel("output tokens/s", color="tab:orange")
        right.set_title(f"{TITLES.get(p.path, p.path)}: throughput")
        right.set_xlabel("concurrent requests")
        for ax in (left, right):
            if x:
                ax.set_xscale("log", base=2)
                ax.set_xticks(x, [str(v) for v in x])
            ax.grid(True, alpha=0.3)
    fig.suptitle(f"duoctl bench {run.deployment} ({run.serving}), {run.started_at}")
    fig.tight_layout()
    file.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(file, format="png")
    return file
