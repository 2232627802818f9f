"""Parallel decoding: decoders that seek give exactly the sequential frames and pts (issue 8)."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
from conftest import flip_packet_bytes, shared_path, textured_frames

from vsr_pipeline.media import FrameReader, ImageFolderWriter, probe
from vsr_pipeline.media.seek import SeekError, scan, seek_problem, seekable
from workers.decoder import Decoder, assign_batches

LIMIT = 120  # frames of each shared clip compared (the decoders still seek in the whole file)
SHARED = ("bigbuckbunny.mp4", "bikes.mp4", "tree.avi")


def encode_x264(path: Path, frames: int = 60, open_gop: bool = False) -> Path:
    """64x48 H.264 with B-frames (bf=3) and a keyframe every 12 frames; open GOPs when asked."""
    params = "keyint=12:min-keyint=12:scenecut=0" + (":open-gop=1" if open_gop else "")
    with av.open(str(path), "w") as out:
        v = out.add_stream("libx264", rate=25)
        v.width, v.height, v.pix_fmt = 64, 48, "yuv420p"
        v.options = {"bf": "3", "crf": "20", "x264-params": params}
        for i, rgb in enumerate(textured_frames(frames, 64, 48)):
            vf = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p")
            vf.pts = i
            out.mux(v.encode(vf))
        out.mux(v.encode())
    return path


def sequential(path: Path, limit: int = LIMIT) -> tuple[np.ndarray, list[int]]:
    with FrameReader(path) as r:
        frames, pts = r.read(min(limit, r.info.frames))
    return frames, pts


def parallel(path: Path, total: int, n: int, decoders: int) -> tuple[np.ndarray, list[int | None], int]:
    """Frames [0, total) through ``decoders`` plain Decoders with read_batch; also frames decoded."""
    keys = list(scan(path).keyframes)
    owners = assign_batches(total, n, decoders, keys)
    decs = [Decoder(str(path)) for _ in range(decoders)]
    out, pts = [], []
    for b, owner in enumerate(owners):
        f, p = decs[owner].read_batch(b, n)
        out.append(f[: total - b * n])
        pts += p[: total - b * n]
    decoded = sum(d.frames_decoded() for d in decs)
    for d in decs:
        d.close()
    return np.concatenate(out), pts, decoded


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("pd")
    return {"bframes.mp4": encode_x264(tmp / "bframes.mp4"),
            "open_gop.mp4": encode_x264(tmp / "open_gop.mp4", open_gop=True),
            "open_gop.mkv": encode_x264(tmp / "open_gop.mkv", open_gop=True)}


def test_encoded_clips_have_bframes_and_keyframes(clips: dict[str, Path]) -> None:
    """The test clips exercise what matters: pts out of decode order, several GOPs, leading pictures."""
    for path in clips.values():
        with av.open(str(path)) as c:
            packets = [p for p in c.demux(c.streams.video[0]) if p.size]
        decode_order = [p.pts for p in packets]
        assert decode_order != sorted(decode_order)  # B-frames
        assert scan(path).keyframes == (0, 12, 24, 36, 48)
    with av.open(str(clips["open_gop.mp4"])) as c:
        packets = [p for p in c.demux(c.streams.video[0]) if p.size]
    leading = [packets[i + 1].pts < p.pts for i, p in enumerate(packets[:-1]) if p.is_keyframe and i]
    assert any(leading)  # a leading picture (pts below its keyframe's) follows a keyframe


@pytest.mark.parametrize("name", SHARED)
def test_shared_clips_parallel_equals_sequential(name: str) -> None:
    path = shared_path("videos", name)
    seq, pts = sequential(path)
    assert seek_problem(scan(path), probe(path)) is None
    for decoders, n in ((1, 8), (2, 8), (3, 5)):
        frames, got, _ = parallel(path, len(pts), n, decoders)
        assert got == pts, (name, decoders)
        assert np.array_equal(frames, seq), (name, decoders)


@pytest.mark.parametrize("name", ["bframes.mp4", "open_gop.mp4", "open_gop.mkv"])
def test_encoded_clip_parallel_equals_sequential(clips: dict[str, Path], name: str) -> None:
    path = clips[name]
    seq, pts = sequential(path)
    assert len(pts) == 60
    for decoders in (1, 2, 3):
        for n in (4, 5, 12):
            frames, got, decoded = parallel(path, len(pts), n, decoders)
            assert got == pts, (name, decoders, n)
            assert np.array_equal(frames, seq), (name, decoders, n)
            assert decoded >= len(pts)


@pytest.mark.parametrize("name", ["bframes.mp4", "open_gop.mp4", "bikes.mp4", "tree.avi"])
def test_seek_to_any_frame(clips: dict[str, Path], name: str) -> None:
    path = clips[name] if name in clips else shared_path("videos", name)
    seq, pts = sequential(path, limit=10_000)
    keys = scan(path).keyframes
    last = len(pts) - 1
    targets = [0, keys[1], keys[1] + 1, keys[-1], keys[-1] - 1, last, 1, last // 2, 0]
    with FrameReader(path) as r:
        for i in targets:
            r.seek(i)
            assert r.position == i
            frames, got = r.read(2)
            assert got == pts[i : i + 2], (name, i)
            assert np.array_equal(frames, seq[i : i + 2]), (name, i)
        r.seek(len(pts))
        assert r.read(3)[1] == []


def test_read_batch_reads_on_without_seeking(clips: dict[str, Path]) -> None:
    """Consecutive batches decode forward: no frame is decoded twice."""
    dec = Decoder(str(clips["bframes.mp4"]))
    assert sum(len(dec.read_batch(b, 7)[1]) for b in range(9)) == 60
    assert dec.frames_decoded() == 60
    assert dec.read_batch(9, 7)[1] == []


def test_image_folder_is_seekable(tmp_path: Path) -> None:
    folder = tmp_path / "imgs"
    with ImageFolderWriter(folder) as w:
        w.write(textured_frames(9, 32, 24), list(range(9)))
    assert seekable(folder)
    seq, pts = sequential(folder)
    frames, got, _ = parallel(folder, 9, 2, 2)
    assert got == pts == list(range(9)) and np.array_equal(frames, seq)
    assert assign_batches(9, 2, 2, None) == [0, 1, 0, 1, 0]


def test_packets_without_pts_are_not_seekable(tmp_path: Path) -> None:
    """A raw H.264 elementary stream has no pts: seeking is refused with SeekError, sequential works."""
    path = tmp_path / "raw.h264"
    with av.open(str(path), "w", format="h264") as out:
        v = out.add_stream("libx264", rate=25)
        v.width, v.height, v.pix_fmt = 64, 48, "yuv420p"
        for i, rgb in enumerate(textured_frames(10, 64, 48)):
            vf = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p")
            vf.pts = i
            out.mux(v.encode(vf))
        out.mux(v.encode())
    assert not seekable(path)
    assert "no pts" in (seek_problem(scan(path)) or "")
    dec = Decoder(str(path))
    assert len(dec.read_batch(0, 4)[1]) == 4  # already there: no seek needed
    with pytest.raises(SeekError, match="decode sequentially"):
        dec.read_batch(2, 4)


def test_lost_frame_right_after_seek_raises_with_repeat(clips: dict[str, Path], tmp_path: Path) -> None:
    """With on_corrupt=repeat a lost first frame's stand-in is in another chunk: SeekError, not a guess."""
    bad = flip_packet_bytes(clips["bframes.mp4"], tmp_path / "bad.mp4", packets=slice(12, 13), flips=400)
    with FrameReader(bad, on_corrupt="repeat") as r:
        r.read(60)
        lost = [c.index for c in r.corrupt]
    if not lost:
        pytest.skip("the decoder concealed the damage: no frame lost")
    first = lost[0]
    with FrameReader(bad, on_corrupt="repeat") as r:
        r.seek(first)
        with pytest.raises(SeekError):
            r.read(1)


def test_frames_after_a_broken_packet_keep_their_place(clips: dict[str, Path], tmp_path: Path) -> None:
    """A broken keyframe in a B-frame stream: with frame threading the decoder puts frames out of order after
    it (10, 22, 11, 23 here). Each frame keeps its place and pts: the lost ones are one run of stand-ins,
    no pts is repaired, no frame is added or numbered anew, and from the next keyframe on (24) the frames
    are the clean file's."""
    clean = clips["bframes.mp4"]
    bad = flip_packet_bytes(clean, tmp_path / "bad.mp4", packets=slice(12, 13), flips=400)
    ref, ref_pts = sequential(clean)
    with FrameReader(bad, on_corrupt="repeat") as r:
        frames, pts = r.read(100)
        lost = [c.index for c in r.corrupt]
    if not lost:
        pytest.skip("the decoder concealed the damage: no frame lost")
    assert len(frames) == len(ref) == 60 and pts == ref_pts
    assert r.timestamps_repaired == 0 and r.timestamps_renumbered == (0, None)
    assert lost == list(range(lost[0], lost[-1] + 1)) and lost[-1] < 24
    assert np.array_equal(frames[: lost[0]], ref[: lost[0]]) and np.array_equal(frames[24:], ref[24:])


def test_assign_batches_blocks() -> None:
    keys = list(range(0, 250, 30))
    owners = assign_batches(250, 8, 3, keys)
    assert len(owners) == 32
    starts = [b for b in range(len(owners)) if b == 0 or owners[b] != owners[b - 1]]
    assert len(starts) >= 3
    for i, b in enumerate(starts):
        assert owners[b] == i % 3  # blocks round-robin
        end = starts[i + 1] if i + 1 < len(starts) else len(owners)
        if end < len(owners):
            assert (end - b) * 8 >= 30  # at least one GOP
            start = end * 8
            assert start - max(k for k in keys if k <= start) < 8  # next block's seek wastes < n frames
    assert set(assign_batches(250, 8, 3, [0])) == {0}  # one GOP: one decoder
    assert assign_batches(0, 8, 3, [0]) == []


def test_ray_actors_parallel_equals_sequential(ray_local: None, clips: dict[str, Path]) -> None:
    import ray

    for path in (clips["open_gop.mp4"], shared_path("videos", "bikes.mp4")):
        seq, pts = sequential(path, limit=10_000)
        owners = assign_batches(len(pts), 6, 2, list(scan(path).keyframes))
        actors = [ray.remote(num_cpus=0)(Decoder).remote(str(path)) for _ in range(2)]
        refs = [actors[o].read_batch.remote(b, 6) for b, o in enumerate(owners)]
        batches = ray.get(refs)
        assert [p for _, b in batches for p in b] == pts
        assert np.array_equal(np.concatenate([f for f, _ in batches]), seq)
        assert sum(ray.get([a.frames_decoded.remote() for a in actors])) < 1.5 * len(pts)
        for a in actors:
            ray.kill(a)
