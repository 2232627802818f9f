"""Shared fixtures: real clips made with PyAV, the shared benchmark data, one Ray instance per session."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "data"


def shared_path(*parts: str) -> Path:
    """A path under ../shared/data, or skip the test with the reason when it is absent."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"shared data not present: {path} (a fresh checkout lacks ../shared/data)")
    return path


def textured_frames(n: int, width: int, height: int, seed: int = 0) -> np.ndarray:
    """Smooth random texture moving right by one pixel per frame: uint8 (n, height, width, 3)."""
    rng = np.random.default_rng(seed)
    base = rng.random((height // 4 + 2, (width + n) // 4 + 2, 3))
    import cv2

    big = cv2.resize(base, ((width + n + 8), height + 8), interpolation=cv2.INTER_CUBIC)
    frames = [big[4 : 4 + height, n - i : n - i + width] for i in range(n)]
    return np.clip(np.stack(frames) * 255, 0, 255).astype(np.uint8)


def make_clip(
    path: Path,
    frames: np.ndarray,
    pts: list[int] | None = None,
    time_base: Fraction = Fraction(1, 25),
    audio: bool = False,
    codec: str = "libx264",
) -> Path:
    """Encode frames (T, H, W, 3) with PyAV, optional 48 kHz AAC sine audio lasting as long as the video."""
    pts = list(range(len(frames))) if pts is None else pts
    with av.open(str(path), "w") as out:
        v = out.add_stream(codec, rate=25)
        v.width, v.height = frames.shape[2], frames.shape[1]
        v.pix_fmt = "yuv420p" if frames.shape[1] % 2 == 0 and frames.shape[2] % 2 == 0 else "yuv444p"
        v.time_base = time_base
        v.codec_context.time_base = time_base
        v.options = {"crf": "12"}
        a = None
        if audio:
            a = out.add_stream("aac", rate=48000)
            a.layout = "mono"
        for frame, p in zip(frames, pts, strict=True):
            vf = av.VideoFrame.from_ndarray(frame, format="rgb24").reformat(format=v.pix_fmt)
            vf.pts, vf.time_base = p, time_base
            out.mux(v.encode(vf))
        out.mux(v.encode())
        if a is not None:
            seconds = float((pts[-1] + 1) * time_base)
            samples = np.sin(np.arange(int(seconds * 48000)) * 2 * np.pi * 440 / 48000).astype(np.float32)
            for i in range(0, len(samples), 1024):
                af = av.AudioFrame.from_ndarray(samples[None, i : i + 1024], format="flt", layout="mono")
                af.sample_rate, af.pts = 48000, i
                out.mux(a.encode(af))
            out.mux(a.encode())
    return path


def flip_packet_bytes(src: Path, dst: Path, packets: slice = slice(8, 10), flips: int = 5) -> Path:
    """Copy ``src`` to ``dst`` with ``flips`` bytes inverted inside each of the given video packets."""
    data = bytearray(src.read_bytes())
    with av.open(str(src)) as c:
        spans = [(p.pos, p.size) for p in c.demux(c.streams.video[0]) if p.size]
    rng = np.random.default_rng(0)
    for pos, size in spans[packets]:
        for off in rng.integers(0, size, flips):
            data[pos + int(off)] ^= 0xFF
    dst.write_bytes(bytes(data))
    return dst


@pytest.fixture(scope="session", autouse=True)
def autotune_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The suite's own precision-probe cache (``vsr_pipeline.autotune``), shared by its subprocesses and Ray
    workers, never the user's."""
    path = tmp_path_factory.mktemp("vsr-cache")
    old = os.environ.get("VSR_CACHE_DIR")
    os.environ["VSR_CACHE_DIR"] = str(path)
    yield path
    if old is None:
        os.environ.pop("VSR_CACHE_DIR", None)
    else:
        os.environ["VSR_CACHE_DIR"] = old


@pytest.fixture()
def scratch_specs() -> Iterator[None]:
    """Model specs registered inside a test are removed afterwards."""
    from models import registry

    before = dict(registry._SPECS)
    yield
    registry._SPECS.clear()
    registry._SPECS.update(before)


def start_local_ray(num_cpus: int = 2) -> None:
    """Start an in-process Ray on loopback without a dashboard."""
    import ray

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    ray.init(num_cpus=num_cpus, include_dashboard=False, _node_ip_address="127.0.0.1", logging_level="ERROR")


def stop_ray() -> None:
    """Kill the upscalers a job left warm (``vsr_pipeline.upscaler_pool``), then stop Ray."""
    import ray

    from vsr_pipeline.upscaler_pool import release_warm_upscalers

    release_warm_upscalers()
    ray.shutdown()


@pytest.fixture(scope="session")
def ray_local() -> Iterator[None]:
    """One in-process Ray for the whole test session (starting Ray costs seconds)."""
    import ray

    if not ray.is_initialized():
        start_local_ray()
    yield
    stop_ray()


@pytest.fixture()
def ray_of_its_own() -> Iterator[None]:
    """A Ray instance with 3 CPU slots for this test alone; the session's Ray is restarted afterwards."""
    import ray

    was_running = ray.is_initialized()
    stop_ray()
    start_local_ray(num_cpus=3)
    try:
        yield
    finally:
        stop_ray()
        if was_running:
            start_local_ray()


@pytest.fixture()
def vsr(capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture) -> Any:
    """``vsr(ARGS)``: ``vsr upscale ARGS --json`` (bicubic x2, lossless) in this process; returns the exit
    code, the JSON result ({} on failure) and stderr with the warnings logged meanwhile (the CLI's log lines,
    which pytest captures)."""

    from vsr_pipeline.cli import main

    def run(*args: str) -> tuple[int, dict[str, Any], str]:
        caplog.clear()
        with caplog.at_level(logging.WARNING):
            code = main(["upscale", *args, "--model", "bicubic", "--scale", "2", "--crf", "0",
                         "--no-progress", "--json"])
        out, err = capsys.readouterr()
        logged = "".join(f"{r.levelname} {r.name}: {r.getMessage()}\n" for r in caplog.records)
        return code, json.loads(out.strip().splitlines()[-1]) if code == 0 else {}, err + logged

    return run
