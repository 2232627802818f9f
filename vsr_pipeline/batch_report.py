"""The human side of a ``vsr batch`` summary: a Markdown table per video and a frames/s-over-time plot."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


def markdown_report(summary: dict[str, Any], plot_name: str | None) -> str:
    """The summary as Markdown: totals, upscaler placement and busy share, one table row per video."""
    s = summary
    lines = [
        f"# vsr batch: {s['ok']} ok, {s['skipped']} skipped, {s['failed']} failed"
        + (f", {s['interrupted']} interrupted" if s.get("interrupted") else ""),
        "",
        f"- model: {s['model']} x{s['scale']} on {s['device']}",
        f"- upscalers: {s['upscalers']} (placement {s['placement']})",
        f"- frames: {s['frames']} in {s['seconds']:.1f} s ({s['fps']:.2f} frames/s); "
        f"start-up {s['startup_s']:.1f} s",
        f"- upscaler busy share: {100 * s['busy_share']:.1f}% (from the pool being ready to the last chunk)",
        f"- exit code: {s['exit_code']}",
        "",
        "| # | input | output | status | frames | seconds | frames/s | started (s) | error |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for k, v in enumerate(s["videos"], 1):
        error = (v["error"] or "").replace("|", "\\|")
        lines.append(
            f"| {k} | {v['input']} | {v['output']} | {v['status']} | {v['frames']} | {v['seconds']:.1f} | "
            f"{v['fps']:.2f} | {v['started_s']:.1f} | {error} |"
        )
    if plot_name:
        lines += ["", f"![frames per second over time]({plot_name})"]
    return "\n".join(lines) + "\n"


def throughput_series(events: list[tuple[float, int]], bins: int = 40) -> tuple[list[float], list[float]]:
    """Frames/s in ``bins`` equal time bins from 0 to the last event (seconds since the batch started):
    bin centres and rates. ``events`` are (time, frames finished then)."""
    if not events:
        return [], []
    end = max(t for t, _ in events)
    width = max(end / bins, 1e-6)
    counts = [0] * bins
    for t, frames in events:
        counts[min(bins - 1, int(t / width))] += frames
    return [(i + 0.5) * width for i in range(bins)], [c / width for c in counts]


def throughput_plot(events: list[tuple[float, int]], summary: dict[str, Any], path: Path) -> bool:
    """PNG of frames/s over time, with each video's start and end marked; False when there is nothing to
    plot or matplotlib is missing."""
    if not events:
        return False
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log.warning("matplotlib is not installed: no throughput plot (pip install matplotlib)")
        return False
    x, y = throughput_series(events)
    fig, ax = plt.subplots(figsize=(8, 3.5), dpi=100)
    ax.step(x, y, where="mid", label="frames/s (all videos)")
    ymax = max(y) if y else 1.0
    for v in summary["videos"]:
        if v["status"] == "ok":
            ax.plot([v["started_s"], v["finished_s"]], [ymax * 1.05] * 2, color="0.6", lw=1)
    ax.set_xlabel("seconds since start")
    ax.set_ylabel("frames/s")
    ax.set_title(f"vsr batch: {summary['model']} x{summary['scale']}, {summary['upscalers']} upscaler(s), "
                 f"busy {100 * summary['busy_share']:.0f}%")
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return True
