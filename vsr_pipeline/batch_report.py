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
        "| # | input | output | status | frames | seconds | frames/s | started (s) | check Y-PSNR mean / min "
        "(dB) | flicker ratio | error |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for k, v in enumerate(s["videos"], 1):
        error = (v["error"] or "").replace("|", "\\|")
        q = v.get("quality") or {}
        check = (f"{q['check_psnr_y_mean']:.2f} / {q['check_psnr_y_min']:.2f}" if "check_psnr_y_mean" in q
                 else "")
        flicker = f"{q['flicker_ratio']:.3f}" if q.get("flicker_ratio") is not None else ""
        own = " ".join(f"--{key} {':'.join(map(str, val)) if key == 'crop' else f'{val:g}'}"
                       for key, val in (v.get("options") or {}).items() if key != "name")
        name = f"{v['input']} ({own})" if own else v["input"]  # with what its list line set
        lines.append(
            f"| {k} | {name} | {v['output']} | {v['status']} | {v['frames']} | {v['seconds']:.1f} | "
            f"{v['fps']:.2f} | {v['started_s']:.1f} | {check} | {flicker} | {error} |"
        )
    if plot_name:
        lines += ["", f"![frames per second over time]({plot_name})"]
    return "\n".join(lines) + "\n"


def throughput_series(
    events: list[tuple[float, int]], window: float | None = None, points: int = 200
) -> tuple[list[float], list[float]]:
    """Frames/s over the preceding ``window`` seconds (default: a tenth of the run, at least 10 s: chunks
    finish in bursts of many frames) at ``points`` times from 0 to the last event (seconds since the batch
    started). ``events`` are (time, frames finished then)."""
    if not events:
        return [], []
    end = max(t for t, _ in events)
    window = window or max(10.0, end / 10)
    times = [end * (i + 1) / points for i in range(points)]
    rates = [sum(f for t, f in events if x - window < t <= x) / min(window, max(x, 1e-9)) for x in times]
    return times, rates


def throughput_plot(events: list[tuple[float, int]], summary: dict[str, Any], path: Path) -> bool:
    """PNG: frames/s over time (all videos) above one bar per video from its start to its end; False when
    there is nothing to plot or matplotlib is missing."""
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
    videos = summary["videos"]
    fig, (ax, gantt) = plt.subplots(
        2, 1, figsize=(8, 3 + 0.12 * len(videos)), dpi=100, sharex=True,
        gridspec_kw={"height_ratios": [2, max(1, len(videos) / 8)]},
    )
    ax.plot(x, y, label="frames/s, all videos (moving window)")
    ax.set_ylabel("frames/s")
    ax.set_ylim(bottom=0)
    ax.set_title(f"vsr batch: {summary['model']} x{summary['scale']}, {summary['upscalers']} upscaler(s), "
                 f"busy {100 * summary['busy_share']:.0f}%")
    ax.legend(loc="lower right", fontsize=8)
    colours = {"ok": "tab:green", "failed": "tab:red", "skipped": "0.7", "interrupted": "tab:orange"}
    for k, v in enumerate(videos):
        gantt.plot([v["started_s"], v["finished_s"]], [k, k], lw=3, color=colours.get(v["status"], "0.5"))
    gantt.set_yticks([])
    gantt.set_ylabel("videos")
    gantt.invert_yaxis()
    gantt.set_xlabel("seconds since start")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return True
