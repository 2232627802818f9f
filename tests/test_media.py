"""vsr_pipeline.media on real files generated here with PyAV (no mocks)."""

from __future__ import annotations

import logging
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from av.video.reformatter import ColorRange, Colorspace

from vsr_pipeline.media import (
    ColourTags,
    FrameReader,
    ImageFolderWriter,
    MediaError,
    VideoWriter,
    list_images,
    probe,
    read_images,
)

REPO = Path(__file__).resolve().parents[1]
VIDEOS = REPO.parent / "shared" / "data" / "videos"
BBB = VIDEOS / "bigbuckbunny.mp4"
TREE = VIDEOS / "tree.avi"


def pattern(i: int, w: int, h: int) -> np.ndarray:
    """Smooth colourful frame that moves with i (compresses well, exercises all three channels)."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    r = 128 + 100 * np.sin((x + 3 * i) / 7)
    g = 128 + 100 * np.cos((y - 2 * i) / 5)
    b = 128 + 100 * np.sin((x + y + i) / 9)
    rgb = np.stack([r, g, b], axis=-1)
    rgb[h // 4 : h // 2, w // 4 : w // 2] = (230, 30, 40)  # a saturated block
    return np.clip(rgb, 0, 255).astype(np.uint8)


def make_video(
    path: Path,
    n: int = 12,
    size: tuple[int, int] = (64, 48),
    time_base: Fraction = Fraction(1, 12800),
    pts: list[int] | None = None,
    fps: int = 25,
    colorspace: int = 2,
    color_range: int = 1,
    audio: bool = False,
    crf: int = 0,
) -> list[int]:
    """Encode a test clip with PyAV (x264, yuv420p), optionally with AAC audio; returns the pts."""
    w, h = size
    if pts is None:
        step = round(1 / (fps * time_base))
        pts = [i * step for i in range(n)]
    sws_cs = {1: Colorspace.ITU709}.get(colorspace, Colorspace.ITU601)
    sws_range = ColorRange.JPEG if color_range == 2 else ColorRange.MPEG
    with av.open(str(path), "w") as c:
        vs = c.add_stream("libx264", rate=fps, options={"crf": str(crf), "preset": "ultrafast"})
        vs.width, vs.height, vs.pix_fmt = w, h, "yuv420p"
        vs.time_base = time_base
        vs.codec_context.time_base = time_base
        vs.codec_context.colorspace = colorspace
        vs.codec_context.color_range = color_range
        if colorspace == 1:
            vs.codec_context.color_primaries = 1
            vs.codec_context.color_trc = 1
        a_s = None
        if audio:
            a_s = c.add_stream("aac", rate=48000, layout="mono")
        a_pts = 0
        end_s = float((pts[-1] + round(1 / (fps * time_base))) * time_base)
        for i, p in enumerate(pts):
            f = av.VideoFrame.from_ndarray(pattern(i, w, h), format="rgb24")
            f = f.reformat(format="yuv420p", dst_colorspace=sws_cs, dst_color_range=sws_range)
            f.pts, f.time_base = p, time_base
            for pkt in vs.encode(f):
                c.mux(pkt)
            while a_s is not None and a_pts / 48000 < min(float(p * time_base) + 0.1, end_s):
                t = (a_pts + np.arange(1024)) / 48000
                af = av.AudioFrame.from_ndarray(
                    (0.3 * np.sin(2 * np.pi * 440 * t))[None].astype(np.float32), format="fltp", layout="mono"
                )
                af.sample_rate, af.pts, af.time_base = 48000, a_pts, Fraction(1, 48000)
                for pkt in a_s.encode(af):
                    c.mux(pkt)
                a_pts += 1024
        for pkt in vs.encode(None):
            c.mux(pkt)
        if a_s is not None:
            for pkt in a_s.encode(None):
                c.mux(pkt)
    return pts


def read_all(path: Path, batch: int = 5) -> tuple[np.ndarray, list[int], FrameReader]:
    with FrameReader(path) as r:
        chunks, pts = [], []
        while True:
            f, p = r.read(batch)
            assert f.shape[0] == len(p)
            if not p:
                break
            chunks.append(f)
            pts += p
    return np.concatenate(chunks), pts, r


def times(pts: list[int], tb: Fraction) -> list[Fraction]:
    return [p * tb for p in pts]


def packets(path: Path, kind: str) -> list[tuple[Fraction, bytes]]:
    with av.open(str(path)) as c:
        s = c.streams.audio[0] if kind == "audio" else c.streams.video[0]
        return [(pk.pts * Fraction(s.time_base), bytes(pk)) for pk in c.demux(s) if pk.size]


def end_time(path: Path, kind: str) -> Fraction:
    """Where a stream's last packet ends (pts + duration), in seconds."""
    with av.open(str(path)) as c:
        s = c.streams.audio[0] if kind == "audio" else c.streams.video[0]
        return max((pk.pts + pk.duration) * Fraction(s.time_base) for pk in c.demux(s) if pk.size)


# ---------------------------------------------------------------------------------------- probe + read


@pytest.mark.parametrize("ext", ["mp4", "mkv"])
def test_probe_and_read(tmp_path: Path, ext: str) -> None:
    src = tmp_path / f"clip.{ext}"
    pts = make_video(src, n=12)
    with av.open(str(src)) as c:
        header_frames = c.streams.video[0].frames
    if ext == "mkv":
        assert header_frames == 0  # the count below comes from demuxing
    info = probe(src)
    assert (info.width, info.height, info.frames) == (64, 48, 12)
    assert info.fps == 25 and info.codec == "h264" and info.pix_fmt == "yuv420p" and info.bit_depth == 8
    assert not info.has_audio and not info.is_image_folder and info.rotation == 0
    assert abs(info.duration_s - 12 / 25) < 0.05
    with FrameReader(src) as r:
        sizes = []
        got: list[int] = []
        while True:
            f, p = r.read(5)
            sizes.append(len(p))
            assert f.dtype == np.uint8 and f.flags.c_contiguous and f.shape[1:] == (48, 64, 3)
            got += p
            if not p:
                break
    assert sizes == [5, 5, 2, 0]
    assert times(got, info.time_base) == times(pts, Fraction(1, 12800))


def test_reader_matches_swscale_for_tagged_bt709(tmp_path: Path) -> None:
    """A BT.709 source decodes with the BT.709 matrix (the BT.601 one would be visibly off). swscale converts
    the frame with its chroma first brought to full size as the reader does (centred bicubic), so only
    the matrices are compared."""
    import cv2

    src = tmp_path / "bt709.mp4"
    make_video(src, n=2, colorspace=1, size=(64, 48))
    frames, _, _ = read_all(src)
    with av.open(str(src)) as c:
        frame = next(c.decode(video=0))
    y, u, v = (np.frombuffer(p, np.uint8).reshape(p.height, p.line_size)[:, : p.width] for p in frame.planes)
    u, v = (cv2.resize(np.ascontiguousarray(c), (64, 48), interpolation=cv2.INTER_CUBIC) for c in (u, v))
    full = av.VideoFrame.from_ndarray(np.stack([y, u, v]), format="yuv444p")
    ref, wrong = (full.reformat(format="rgb24", src_colorspace=cs, src_color_range=ColorRange.MPEG)
                  .to_ndarray() for cs in (Colorspace.ITU709, Colorspace.ITU601))
    ours = frames[0].astype(int)
    assert np.abs(ours - ref).mean() < 2.0 < np.abs(ours - wrong).mean()


# -------------------------------------------------------------------------------------------- writer


@pytest.mark.parametrize(
    ("ext", "tb"), [("mp4", Fraction(1, 25)), ("mkv", Fraction(1, 1000)), ("mp4", Fraction(1, 1000))]
)
def test_vfr_pts_survive(tmp_path: Path, ext: str, tb: Fraction) -> None:
    irregular = (
        [0, 1, 3, 4, 7, 8, 9, 12, 13, 17]
        if tb == Fraction(1, 25)
        else [0, 40, 90, 130, 200, 233, 301, 340, 420, 421]
    )
    src = tmp_path / f"vfr_src.{ext}"
    make_video(src, pts=irregular, time_base=tb)
    frames, pts, r = read_all(src, batch=4)
    assert times(pts, r.info.time_base) == times(irregular, tb)
    out = tmp_path / f"vfr_out.{ext}"
    with VideoWriter.like(out, r.info, preset="ultrafast") as w:
        w.write(frames[:3], pts[:3])
        w.write(frames[3:], pts[3:])
    _, pts2, r2 = read_all(out)
    assert times(pts2, r2.info.time_base) == times(pts, r.info.time_base)
    assert r2.info.frames == len(irregular)


def test_odd_size_keeps_every_pixel(tmp_path: Path) -> None:
    """Odd sizes are written as yuv444p: same size back, near-lossless at crf 0."""
    frames = np.stack([pattern(i, 33, 17) for i in range(4)])
    out = tmp_path / "odd.mp4"
    with VideoWriter(out, 33, 17, Fraction(1, 25), Fraction(25), crf=0, preset="ultrafast") as w:
        assert w.pix_fmt == "yuv444p"
        w.write(frames, [0, 1, 2, 3])
    back, pts, r = read_all(out)
    assert (r.info.width, r.info.height, r.info.pix_fmt) == (33, 17, "yuv444p")
    assert back.shape == frames.shape and times(pts, r.info.time_base) == times([0, 1, 2, 3], Fraction(1, 25))
    assert np.abs(back.astype(int) - frames).mean() < 1.0


@pytest.mark.parametrize(
    ("colorspace", "color_range"), [(2, 0), (1, 1), (1, 2)], ids=["bt601-untagged", "bt709", "bt709-full"]
)
def test_colour_round_trip(tmp_path: Path, colorspace: int, color_range: int) -> None:
    src = tmp_path / "src.mp4"
    make_video(src, n=3, size=(96, 64), colorspace=colorspace, color_range=color_range)
    frames, pts, r = read_all(src)
    out = tmp_path / "out.mkv"
    with VideoWriter.like(out, r.info, crf=0, preset="ultrafast") as w:
        w.write(frames, pts)
    back, _, r2 = read_all(out)
    diff = np.abs(back.astype(np.float64) - frames)
    assert diff.mean() < 1.5, diff.mean()
    assert np.abs((back.astype(np.float64) - frames).mean(axis=(0, 1, 2))).max() < 0.5  # no shift
    assert r2.info.colour == r.info.colour


def test_audio_copied_byte_identical(tmp_path: Path) -> None:
    src = tmp_path / "av.mp4"
    make_video(src, n=25, audio=True, crf=23)
    info = probe(src)
    assert info.has_audio and info.audio[0].codec == "aac" and info.audio[0].sample_rate == 48000
    frames, pts, r = read_all(src, batch=8)
    for ext in ("mp4", "mkv"):
        out = tmp_path / f"out.{ext}"
        with VideoWriter.like(out, r.info, preset="ultrafast") as w:
            for i in range(0, len(pts), 8):  # several batches: audio is interleaved progressively
                w.write(frames[i : i + 8], pts[i : i + 8])
        a_src, a_out = packets(src, "audio"), packets(out, "audio")
        assert a_src[0][0] < 0  # AAC priming: the first packet starts before the video
        assert [b for _, b in a_out] == [b for _, b in a_src]
        # mp4 keeps every pts; mkv cannot store negative times, so its muxer shifts all streams alike
        # (by the priming, in milliseconds): times relative to the first video frame are what is kept.
        v0 = min(t for t, _ in packets(out, "video"))
        if ext == "mp4":
            assert v0 == 0 and [t for t, _ in a_out] == [t for t, _ in a_src]
        pairs = zip(a_src, a_out, strict=True)
        assert all(abs((t2 - v0) - t1) <= Fraction(1, 1000) for (t1, _), (t2, _) in pairs)
        assert abs(end_time(out, "audio") - end_time(out, "video")) <= Fraction(1, 25)


def test_audio_the_container_cannot_hold_is_reencoded(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """24-bit PCM into WebM (before: left out with a warning): re-encoded as Opus (``audio_transcode``)."""
    src = tmp_path / "pcm.mkv"
    with av.open(str(src), "w") as c:
        vs = c.add_stream("libx264", rate=25, options={"preset": "ultrafast"})
        vs.width, vs.height, vs.pix_fmt = 32, 32, "yuv420p"
        a_s = c.add_stream("pcm_s24le", rate=8000, layout="mono")
        for i in range(5):
            f = av.VideoFrame.from_ndarray(pattern(i, 32, 32), format="rgb24")
            f.pts = i
            for pkt in vs.encode(f):
                c.mux(pkt)
        af = av.AudioFrame.from_ndarray(np.zeros((1, 1600), np.int32), format="s32", layout="mono")
        af.sample_rate, af.pts = 8000, 0
        for pkt in [*a_s.encode(af), *a_s.encode(None), *vs.encode(None)]:
            c.mux(pkt)
    frames, pts, r = read_all(src)
    out = tmp_path / "out.webm"
    with caplog.at_level(logging.INFO), VideoWriter.like(out, r.info, codec="libvpx-vp9", crf=40) as w:
        w.write(frames, pts)
    assert "(pcm_s24le) re-encoded as opus 8000 Hz mono" in caplog.text
    assert probe(out).frames == 5 and probe(out).has_audio
    with av.open(str(out)) as c:
        assert c.streams.audio[0].codec_context.name == "opus"


def test_x265_and_ffv1(tmp_path: Path) -> None:
    frames = np.stack([pattern(i, 32, 32) for i in range(3)])
    for name, codec in (("h.mp4", "libx265"), ("f.mkv", "ffv1")):
        with VideoWriter(tmp_path / name, 32, 32, Fraction(1, 25), Fraction(25), codec=codec) as w:
            w.write(frames, [0, 1, 2])
        info = probe(tmp_path / name)
        assert info.frames == 3 and info.codec == {"libx265": "hevc", "ffv1": "ffv1"}[codec]


def test_rotation_kept(tmp_path: Path) -> None:
    out = tmp_path / "rot.mp4"
    with VideoWriter(out, 32, 16, Fraction(1, 25), Fraction(25), rotation=90, preset="ultrafast") as w:
        w.write(np.stack([pattern(0, 32, 16)]), [0])
    info = probe(out)
    assert info.rotation == 90
    out2 = tmp_path / "rot2.mkv"  # source= carries rotation and colour tags
    with VideoWriter(out2, 64, 32, info.time_base, info.fps, source=info, preset="ultrafast") as w:
        w.write(np.stack([pattern(0, 64, 32)]), [0])
    assert probe(out2).rotation == 90 and probe(out2).colour == info.colour


def test_sample_aspect_ratio_kept(tmp_path: Path) -> None:
    """Non-square pixels (a 16:9 DVD's 32:27) are written and probed back in MP4, MKV and MOV; source=
    carries them; square pixels read as None."""
    for name in ("sar.mp4", "sar.mkv", "sar.mov"):
        with VideoWriter(tmp_path / name, 32, 16, Fraction(1, 25), Fraction(25), preset="ultrafast",
                         sample_aspect_ratio=Fraction(32, 27)) as w:
            w.write(np.stack([pattern(0, 32, 16)]), [0])
        info = probe(tmp_path / name)
        assert info.sample_aspect_ratio == Fraction(32, 27), name
    out = tmp_path / "twice.mkv"
    with VideoWriter(out, 64, 32, info.time_base, info.fps, source=info, preset="ultrafast") as w:
        w.write(np.stack([pattern(0, 64, 32)]), [0])
    assert probe(out).sample_aspect_ratio == Fraction(32, 27)
    square = tmp_path / "square.mp4"
    with VideoWriter(square, 32, 16, Fraction(1, 25), Fraction(25), preset="ultrafast") as w:
        w.write(np.stack([pattern(0, 32, 16)]), [0])
    assert probe(square).sample_aspect_ratio is None


def test_a_thumbnail_stream_ahead_of_the_video_is_passed_over(tmp_path: Path) -> None:
    """Stream 0 a one-frame 16x16 picture, stream 1 the video: probe, the reader and the demux scan all take
    the video, as FFmpeg does by default (they took the picture: a one-frame 16x16 "video")."""
    from vsr_pipeline.media.seek import scan

    path = tmp_path / "thumb_first.mkv"
    with av.open(str(path), "w") as out:
        thumb = out.add_stream("mjpeg", rate=1)
        thumb.width, thumb.height, thumb.pix_fmt = 16, 16, "yuvj420p"
        video = out.add_stream("libx264", rate=25, options={"preset": "ultrafast"})
        video.width, video.height, video.pix_fmt = 32, 16, "yuv420p"
        picture = av.VideoFrame.from_ndarray(pattern(0, 16, 16), format="rgb24").reformat(format="yuvj420p")
        out.mux([*thumb.encode(picture), *thumb.encode()])
        for i in range(12):
            frame = av.VideoFrame.from_ndarray(pattern(i, 32, 16), format="rgb24")
            frame.pts = i
            out.mux(video.encode(frame))
        out.mux(video.encode())
    info = probe(path)
    assert (info.width, info.height, info.frames, info.codec) == (32, 16, 12, "h264")
    with FrameReader(path) as reader:
        frames, pts = reader.read(20)
    assert frames.shape == (12, 16, 32, 3) and pts == sorted(set(pts)) and scan(path).frames == 12


# ------------------------------------------------------------------------------------ atomic + errors


def test_existing_output_refused_and_untouched(tmp_path: Path) -> None:
    out = tmp_path / "exists.mp4"
    out.write_bytes(b"precious")
    with pytest.raises(MediaError, match="exists"):
        VideoWriter(out, 32, 32, Fraction(1, 25), Fraction(25))
    assert out.read_bytes() == b"precious"
    with VideoWriter(out, 32, 32, Fraction(1, 25), Fraction(25), overwrite=True, preset="ultrafast") as w:
        w.write(np.stack([pattern(0, 32, 32)]), [0])
    assert probe(out).frames == 1


def test_abort_and_exception_leave_nothing(tmp_path: Path) -> None:
    out = tmp_path / "gone.mp4"
    w = VideoWriter(out, 32, 32, Fraction(1, 25), Fraction(25), preset="ultrafast")
    w.write(np.stack([pattern(0, 32, 32)]), [0])
    assert w.tmp_path.parent == tmp_path and w.tmp_path.name == ".gone.partial.mp4"
    w.write(np.stack([pattern(i, 32, 32) for i in range(1, 60)]), list(range(1, 60)))
    assert w.tmp_path.exists()
    assert not out.exists()
    w.abort()
    with pytest.raises(RuntimeError), VideoWriter(out, 32, 32, Fraction(1, 25), Fraction(25)) as w2:
        w2.write(np.stack([pattern(0, 32, 32)]), [0])
        raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_pts_must_increase(tmp_path: Path) -> None:
    with (
        pytest.raises(ValueError, match="increase"),
        VideoWriter(tmp_path / "x.mkv", 32, 32, Fraction(1, 25), Fraction(25)) as w,
    ):
        w.write(np.stack([pattern(0, 32, 32)] * 2), [3, 3])
    assert list(tmp_path.iterdir()) == []


def _one_line(exc: pytest.ExceptionInfo[MediaError], path: Path) -> str:
    msg = str(exc.value)
    assert "\n" not in msg and str(path) in msg
    return msg


def test_bad_inputs_raise_one_line_media_error(tmp_path: Path) -> None:
    missing = tmp_path / "missing.mp4"
    with pytest.raises(MediaError) as e:
        probe(missing)
    assert "no such file" in _one_line(e, missing)
    empty = tmp_path / "empty.mp4"
    empty.touch()
    with pytest.raises(MediaError) as e:
        FrameReader(empty)
    assert "empty" in _one_line(e, empty)
    text = tmp_path / "notes.mp4"
    text.write_text("this is not a video\n" * 50)
    with pytest.raises(MediaError) as e:
        probe(text)
    _one_line(e, text)
    folder = tmp_path / "nothing"
    folder.mkdir()
    (folder / "readme.txt").write_text("x")
    with pytest.raises(MediaError) as e:
        probe(folder)
    assert "no images" in _one_line(e, folder)
    assert list_images(folder, missing_ok=True) == [] == list_images(tmp_path / "nope", missing_ok=True)
    audio_only = tmp_path / "audio.m4a"
    with av.open(str(audio_only), "w") as c:
        a_s = c.add_stream("aac", rate=8000, layout="mono")
        af = av.AudioFrame.from_ndarray(np.zeros((1, 2048), np.float32), format="fltp", layout="mono")
        af.sample_rate, af.pts = 8000, 0
        for pkt in [*a_s.encode(af), *a_s.encode(None)]:
            c.mux(pkt)
    with pytest.raises(MediaError) as e:
        probe(audio_only)
    assert "no video stream" in _one_line(e, audio_only)
    truncated = tmp_path / "truncated.mkv"
    make_video(tmp_path / "ok.mkv", n=5)
    truncated.write_bytes((tmp_path / "ok.mkv").read_bytes()[:300])
    with pytest.raises(MediaError) as e:
        probe(truncated)
    _one_line(e, truncated)


# ------------------------------------------------------------------------------------- image folders


def test_image_folders(tmp_path: Path) -> None:
    frames = np.stack([pattern(i, 40, 24) for i in range(3)])
    out = tmp_path / "frames"
    with ImageFolderWriter(out) as w:
        w.write(frames[:2], [0, 1])
        assert not out.exists()
        w.write(frames[2:], [2])
    assert [p.name for p in list_images(out)] == ["000000.png", "000001.png", "000002.png"]
    assert np.array_equal(read_images(list_images(out)), frames)
    with pytest.raises(MediaError, match="exists"):
        ImageFolderWriter(out)
    info = probe(out, fps=30)
    assert (info.frames, info.width, info.height, info.fps) == (3, 40, 24, 30)
    assert info.time_base == Fraction(1, 30) and info.is_image_folder
    with FrameReader(out) as r:
        f, p = r.read(2)
        f2, p2 = r.read(2)
    assert p + p2 == [0, 1, 2] and np.array_equal(np.concatenate([f, f2]), frames)

    mixed = tmp_path / "mixed"
    mixed.mkdir()
    bgr = cv2.cvtColor(frames[0], cv2.COLOR_RGB2BGR)
    cv2.imwrite(str(mixed / "f10.png"), (bgr.astype(np.uint16) * 257))  # 16-bit
    cv2.imwrite(str(mixed / "f2.png"), cv2.cvtColor(frames[0], cv2.COLOR_RGB2GRAY))  # grayscale
    cv2.imwrite(str(mixed / "f1.jpg"), bgr)
    cv2.imwrite(str(mixed / "f3.bmp"), bgr)
    names = [p.name for p in list_images(mixed)]
    assert names == ["f1.jpg", "f2.png", "f3.bmp", "f10.png"]
    assert probe(mixed).frames == 4
    imgs = read_images(list_images(mixed))
    assert imgs.shape == (4, 24, 40, 3)
    assert np.array_equal(imgs[3], frames[0]) and np.array_equal(imgs[2], frames[0])
    assert np.array_equal(imgs[1][..., 0], imgs[1][..., 2])

    cv2.imwrite(str(mixed / "f4.png"), np.zeros((10, 10, 3), np.uint8))
    with pytest.raises(MediaError, match="differs"):
        probe(mixed)

    with pytest.raises(RuntimeError), ImageFolderWriter(tmp_path / "never") as w:
        w.write(frames[:1], [0])
        raise RuntimeError
    assert not (tmp_path / "never").exists() and not (tmp_path / ".never.partial").exists()


# --------------------------------------------------------------------------------------- real sample


@pytest.mark.skipif(not BBB.exists(), reason=f"sample video not found at {BBB}")
def test_bigbuckbunny(tmp_path: Path) -> None:
    info = probe(BBB)
    assert (info.frames, info.width, info.height, info.fps) == (132, 1280, 720, 25)
    assert info.time_base == Fraction(1, 12800) and info.has_audio and info.audio[0].codec == "aac"
    with FrameReader(BBB) as r:
        frames, pts = r.read(10)
    assert frames.shape == (10, 720, 1280, 3) and pts == [i * 512 for i in range(10)]
    out = tmp_path / "bbb10.mp4"
    with VideoWriter.like(out, info, preset="ultrafast", crf=23, trim_copied_streams=True) as w:
        w.write(frames, pts)
    got = probe(out)
    assert got.frames == 10 and got.has_audio and got.audio[0].codec == "aac"
    a_src = dict(packets(BBB, "audio"))
    a_out = packets(out, "audio")
    assert a_out and all(a_src[t] == b for t, b in a_out)  # same bytes at the same times
    assert max(t for t, _ in a_out) < Fraction(10, 25) <= max(t for t, _ in a_out) + Fraction(1024, 48000)
    assert ColourTags() == got.colour == info.colour


@pytest.mark.skipif(not TREE.exists(), reason=f"sample video not found at {TREE}")
def test_sparse_avi_frame_count() -> None:
    """tree.avi's header says 444 frames but only 68 index entries carry one: count what decodes."""
    info = probe(TREE)
    frames, pts, _ = read_all(TREE, batch=32)
    assert info.frames == len(pts) == frames.shape[0] and pts == sorted(set(pts))
    assert (info.width, info.height, info.codec) == (320, 240, "cinepak")
