"""Files whose pts are not display times: H.264 with B-frames in AVI (AVI stores no pts; FFmpeg guesses them
in decode order, so the decoder hands out frames whose pts go 1, 3, 4, 2, ...) and the same packets remuxed
into Matroska with those guesses. Every frame must come out once, in display order, with increasing pts;
the reader used to count each reordered frame as lost and then add it again (opencv-doc's Megamind.avi:
358 frames for 270, or a failed job). Lost frames of valid streams are still placed by their pts.
"""

from __future__ import annotations

import io
import itertools
import sys
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest

from tests.conftest import textured_frames
from tests.test_ingest import copy_packets, decoded, packet_pts
from vsr_pipeline.media import FrameReader, MediaError
from vsr_pipeline.media.frame_order import REORDER_WINDOW, FrameMatcher, Lost
from vsr_pipeline.media.seek import SeekError, scan, seek_problem

pytestmark = pytest.mark.usefixtures("ray_local")

N = 24


def closest(frames: np.ndarray, source: np.ndarray) -> list[int]:
    """For each frame, the index of the source frame it is nearest to (mean absolute difference)."""
    diff = np.abs(frames[:, None].astype(np.int16) - source[None].astype(np.int16)).mean(axis=(2, 3, 4))
    return [int(i) for i in diff.argmin(axis=1)]


@pytest.fixture(scope="module")
def source() -> np.ndarray:
    return textured_frames(N, 48, 32, seed=3)


@pytest.fixture(scope="module")
def avi(tmp_path_factory: pytest.TempPathFactory, source: np.ndarray) -> Path:
    """H.264 with two B-frames between anchors (not lossless: x264 then uses none), in AVI, 25 fps."""
    path = tmp_path_factory.mktemp("order") / "bframes.avi"
    with av.open(str(path), "w") as out:
        v = out.add_stream("libx264", rate=25, options={"crf": "12", "bf": "2", "b-adapt": "0", "g": "8",
                                                        "threads": "1"})
        v.width, v.height, v.pix_fmt = 48, 32, "yuv420p"
        for frame in source:
            out.mux(v.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        out.mux(v.encode())
    with av.open(str(path)) as c:  # what the reader has to cope with: the decoder's pts are out of order
        pts = [f.pts for f in c.decode(video=0)]
    assert len(pts) == N and pts != sorted(pts)
    return path


@pytest.fixture(scope="module")
def remuxed(avi: Path) -> Path:
    """The AVI's packets in Matroska with the AVI's guessed pts (increasing in decode order)."""
    path = copy_packets(avi, avi.with_name("remuxed.mkv"))
    pts = packet_pts(path)
    assert pts == sorted(pts)  # type: ignore[type-var]
    return path


def read_all(path: Path) -> tuple[np.ndarray, list[int], FrameReader]:
    with FrameReader(path) as reader:
        frames, pts = reader.read(N + 5)
    return frames, pts, reader


@pytest.mark.parametrize("name", ["avi", "remuxed"])
def test_every_frame_comes_out_once_in_display_order(name: str, request: pytest.FixtureRequest,
                                                     source: np.ndarray) -> None:
    """AVI: known before decoding (``StreamIndex.in_order``); the remux: found while decoding (a frame's
    pts below a held one's). Frame i is source frame i; pts are the packets' pts, sorted."""
    path = request.getfixturevalue(name)
    frames, pts, reader = read_all(path)
    assert len(frames) == N and closest(frames, source) == list(range(N))
    assert pts == sorted(p for p in packet_pts(path) if p is not None)
    assert all(b > a for a, b in itertools.pairwise(pts))
    assert not reader.corrupt and reader.timestamps_repaired == 0
    renumbered, first = reader.timestamps_renumbered
    assert renumbered > 0 and first is not None
    assert (scan(path).in_order is not None) == (name == "avi")


def test_seeking_never_gives_a_wrong_frame(avi: Path, remuxed: Path) -> None:
    """The AVI is refused at once; in the remux every seek either gives the sequential frames or raises
    SeekError (the pipeline then decodes sequentially), and some do raise."""
    with FrameReader(avi) as reader, pytest.raises(SeekError, match="AVI stores no display timestamps"):
        reader.seek(5)
    ref, _, _ = read_all(remuxed)
    outcomes = []
    for index in range(1, N):
        with FrameReader(remuxed) as reader:
            try:
                reader.seek(index)
                frames, _ = reader.read(4)
            except SeekError:
                outcomes.append("refused")
                continue
        assert np.array_equal(frames, ref[index:index + 4]), index
        outcomes.append("exact")
    assert "refused" in outcomes


def test_vsr_upscale_of_a_remuxed_avi(
    remuxed: Path, tmp_path: Path, source: np.ndarray, vsr: Any
) -> None:
    """Through the pipeline with two seeking decoders: a seek finds the pts out of order, the rest is
    decoded sequentially; every frame once, at i/25 s, in order; the warning and the count are reported."""
    code, res, err = vsr(str(remuxed), "-o", str(tmp_path / "out.mkv"), "--decoders", "2", "--chunk", "4")
    assert code == 0, err
    assert res["frames_out"] == N and res["corrupt_frames"] == 0 and res["timestamps_renumbered"] > 0
    assert "were not display times" in err and "Traceback" not in err
    times, frames = decoded(tmp_path / "out.mkv")
    start = times[0]
    assert [t - start for t in times] == [Fraction(i, 25) for i in range(N)]
    assert closest(frames[:, ::2, ::2], source) == list(range(N))


def test_live_stream_of_an_avi_with_b_frames(
    avi: Path, tmp_path: Path, source: np.ndarray, vsr: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``vsr upscale -`` (stdin) numbers the AVI's frames as the file reader does: each frame the lowest
    packet pts not yet given (it used to repair them: every frame after the first reordered one a frame
    late, 38 pts repaired)."""
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BufferedReader(io.BytesIO(avi.read_bytes()))))
    code, res, err = vsr("-", "-o", str(tmp_path / "live.mkv"))
    assert code == 0, err
    assert res["frames_out"] == N and res["timestamps_repaired"] == 0 and res["timestamps_renumbered"] > 0
    times, frames = decoded(tmp_path / "live.mkv")
    assert [t - times[0] for t in times] == [Fraction(i, 25) for i in range(N)]
    assert closest(frames[:, ::2, ::2], source) == list(range(N))


#: codec -> (PyAV encoder, options): B-frame codecs first, then intra-only or P-only ones
CODECS: dict[str, tuple[str, dict[str, str]]] = {
    "h264": ("libx264", {"bf": "2", "g": "10", "crf": "18"}),
    "hevc": ("libx265", {"bf": "2", "x265-params": "keyint=10:log-level=0"}),
    "mpeg4": ("mpeg4", {"bf": "2", "g": "10", "qscale": "3"}),
    "mpeg2": ("mpeg2video", {"bf": "2", "g": "10"}),
    "mpeg1": ("mpeg1video", {"bf": "2", "g": "10"}),
    "vp9": ("libvpx-vp9", {"g": "10"}),
    "mjpeg": ("mjpeg", {}),
    "ffv1": ("ffv1", {}),
    "h263p": ("h263p", {}),
    "flv1": ("flv", {}),
}


def encode_with(path: Path, codec: str, options: dict[str, str], source: np.ndarray) -> bool:
    """``source`` encoded at 25 fps; False when the muxer or encoder refuses the codec and container."""
    try:
        with av.open(str(path), "w") as out:
            v = out.add_stream(codec, rate=25, options=options)
            v.width, v.height = source.shape[2], source.shape[1]
            v.pix_fmt = "yuvj420p" if codec == "mjpeg" else "yuv420p"
            for i, rgb in enumerate(source):
                frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format=v.pix_fmt)
                frame.pts = i
                out.mux(v.encode(frame))
            out.mux(v.encode())
    except (av.FFmpegError, ValueError):
        return False
    return True


def reader_outcome(path: Path, source: np.ndarray, seek_step: int = 2) -> dict[str, Any]:
    """How ``FrameReader`` reads ``path`` (made from ``source``): "ok" when every frame comes out once, in
    place (nearest its own source frame), with increasing pts, none lost, and each seek (to every
    ``seek_step``-th frame) exact or refused with SeekError; "PROBLEM" otherwise; "unreadable" when the
    reader refuses the file (a MediaError: FFmpeg wrote what its demuxer cannot read back as video)."""
    n = len(source)
    try:
        with FrameReader(path) as reader:
            frames, pts = reader.read(n + 10)
            counts = {"lost": len(reader.corrupt), "repaired": reader.timestamps_repaired,
                      "renumbered": reader.timestamps_renumbered[0]}
    except MediaError as exc:
        return {"outcome": "unreadable", "error": str(exc).split(": ", 1)[-1]}
    seeks = {"exact": 0, "refused": 0, "WRONG": 0}
    for k in range(1, n, seek_step):
        try:
            with FrameReader(path) as reader:
                reader.seek(k)
                got, _ = reader.read(3)
            seeks["exact" if np.array_equal(got, frames[k:k + 3]) else "WRONG"] += 1
        except SeekError:
            seeks["refused"] += 1
    in_place = len(frames) == n and closest(frames, source) == list(range(n))
    increasing = all(b > a for a, b in itertools.pairwise(pts))
    good = in_place and increasing and not seeks["WRONG"] and not counts["lost"]
    return {"outcome": "ok" if good else "PROBLEM", "frames": len(frames), "in_place": in_place,
            "pts_increasing": increasing, **counts, "seeks": seeks,
            "sequential_because": seek_problem(scan(path))}


@pytest.mark.parametrize("codec", ["h264", "hevc", "mpeg4", "mpeg2"])
def test_b_frame_codecs_in_every_container(codec: str, tmp_path: Path) -> None:
    """Each container that takes the codec: every frame once and in place, pts increasing, seeks exact or
    refused (benchmarks/reliability_container_matrix.py sweeps more codecs and containers). 64x48: libx265
    corrupts its heap at widths of 33-48 px (refused: ``media.writer.X265_ABORTS``)."""
    source = textured_frames(24, 64, 48, seed=1)
    encoder, options = CODECS[codec]
    written = 0
    for container in ("mp4", "mkv", "avi", "mov", "ts", "mpg"):
        path = tmp_path / f"{codec}.{container}"
        if not encode_with(path, encoder, options, source):
            continue
        written += 1
        row = reader_outcome(path, source, seek_step=5)
        assert row["outcome"] == "ok", (container, row)
    assert written >= 5


@dataclass
class Fake:
    """A decoded frame as the matcher sees it."""

    pts: int | None


def run(matcher: FrameMatcher, pts: list[int | None]) -> list[tuple[str, int | None]]:
    out = [item for p in pts for item in matcher.push(Fake(p))] + matcher.end()  # type: ignore[arg-type]
    return [("lost" if isinstance(x, Lost) else "frame", x.pts) for x in out]


def test_a_lost_frame_of_a_valid_stream_is_still_placed_by_its_pts() -> None:
    m = FrameMatcher(list(range(8)), 8)
    assert run(m, [0, 1, 2, 4, 5, 6, 7]) == [("frame", 0), ("frame", 1), ("frame", 2), ("lost", 3),
                                             ("frame", 4), ("frame", 5), ("frame", 6), ("frame", 7)]
    assert m.renumbered == 0


def test_a_gap_is_held_no_longer_than_the_reorder_window() -> None:
    """After a lost frame, frames are handed on once REORDER_WINDOW later ones showed no lower pts."""
    n = REORDER_WINDOW + 4
    m = FrameMatcher(list(range(n)), n)
    handed = [len(m.push(Fake(p))) for p in range(1, n)]  # type: ignore[arg-type]
    assert handed[:REORDER_WINDOW] == [0] * REORDER_WINDOW
    assert handed[REORDER_WINDOW] == REORDER_WINDOW + 2  # lost 0, then frames 1..17: no gap left


def test_pts_out_of_display_order_are_renumbered_in_output_order() -> None:
    m = FrameMatcher([10, 20, 30, 40, 50, 60], 6)
    assert run(m, [10, 30, 40, 20, 60, 50]) == [("frame", p) for p in (10, 20, 30, 40, 50, 60)]
    assert m.in_order and (m.renumbered, m.first) == (5, 1)
    short = FrameMatcher([10, 20, 30, 40], 4, in_order=True)  # a frame short: lost at the end, by count
    assert run(short, [10, 30, 20]) == [("frame", 10), ("frame", 20), ("frame", 30), ("lost", 40)]
