"""10-bit video end to end: a 10- or 12-bit input keeps its depth through decode, model and encode
(video2x #1305: HDR flattened to 8 bits), colours exact at the format's reference levels, and the 8-bit path
as before where 10 bits cannot be written.

The end-to-end checks are independent of our colour code: bicubic upscaling and the RGB <-> YUV matrices are
linear and luma does not depend on chroma, so the output's Y plane must equal bicubic(input's Y plane),
both read as raw 10-bit samples from PyAV's planes.
"""

from __future__ import annotations

import io
import sys
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from tests.conftest import make_clip, textured_frames
from vsr_pipeline.media import FrameReader, VideoWriter, frame_to_rgb, probe, rgb_to_frame

pytestmark = pytest.mark.usefixtures("ray_local")

FRAMES, W, H = 6, 48, 32
PQ, BT2020 = 16, 9


def smooth_rgb16(n: int, w: int, h: int, seed: int = 0) -> np.ndarray:
    """Smooth moving colour gradients, (n, h, w, 3) uint16, mid-range (no clipping in RGB or YUV)."""
    rng = np.random.default_rng(seed)
    base = rng.random((h // 8 + 2, (w + n) // 8 + 2, 3))
    big = cv2.resize(base, (w + n + 16, h + 16), interpolation=cv2.INTER_CUBIC)
    frames = np.stack([big[8 : 8 + h, n - i : n - i + w] for i in range(n)])
    return np.round((0.3 + 0.4 * np.clip(frames, 0, 1)) * 65535).astype(np.uint16)


def write_10bit(path: Path, frames: np.ndarray, codec: str = "ffv1") -> Path:
    """A BT.2020 PQ (HDR10-tagged) 4:2:0 10-bit clip; ffv1 is lossless, so its samples are what we wrote."""
    with av.open(str(path), "w") as out:
        v = out.add_stream(codec, rate=25)
        v.width, v.height, v.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p10le"
        cc = v.codec_context
        cc.colorspace, cc.color_primaries, cc.color_trc, cc.color_range = BT2020, BT2020, PQ, 1
        for i, rgb in enumerate(frames):
            f = rgb_to_frame(rgb, "yuv420p10le", BT2020, 1)
            f.pts = i
            out.mux(v.encode(f))
        out.mux(v.encode())
    return path


def y_planes(path: Path) -> tuple[np.ndarray, str]:
    """Every frame's raw Y samples (float64) and the stream's pixel format."""
    with av.open(str(path)) as c:
        frames = list(c.decode(video=0))
    fmt = frames[0].format.name
    dtype = np.uint16 if fmt.endswith("le") else np.uint8
    ys = [np.frombuffer(f.planes[0], dtype).reshape(f.height, -1)[:, : f.width] for f in frames]
    return np.stack(ys).astype(np.float64), fmt


def bicubic_y(y: np.ndarray, scale: int = 2) -> np.ndarray:
    """The reference: bicubic (the pipeline's ``bicubic`` model's interpolation) of the Y plane."""
    t = torch.from_numpy(y)[:, None]
    return F.interpolate(t, scale_factor=scale, mode="bicubic", align_corners=False)[:, 0].numpy()


@pytest.fixture(scope="module")
def clip10(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_10bit(tmp_path_factory.mktemp("deep") / "hdr10.mkv", smooth_rgb16(FRAMES, W, H))


def test_ten_bit_reference_levels_decode_exactly() -> None:
    """Limited range: Y 64 is black and 940 white (BT.2100), chroma 512 neutral; full range spans 0-1023;
    the same picture in 8 bits decodes to the same colours within rounding."""
    def frame(fmt: str, y: int, c: int) -> av.VideoFrame:
        f = av.VideoFrame(4, 4, fmt)
        dtype = np.uint16 if fmt.endswith("le") else np.uint8
        for i, p in enumerate(f.planes):
            p.update(np.full((p.height, p.line_size // np.dtype(dtype).itemsize), y if i == 0 else c, dtype))
        return f

    for cs in (1, BT2020):
        assert frame_to_rgb(frame("yuv444p10le", 64, 512), cs, 1, deep=True).max() == 0
        assert frame_to_rgb(frame("yuv444p10le", 940, 512), cs, 1, deep=True).min() == 65535
        assert frame_to_rgb(frame("yuv444p10le", 0, 512), cs, 2, deep=True).max() == 0
        assert frame_to_rgb(frame("yuv444p10le", 1023, 512), cs, 2, deep=True).min() == 65535
        for y8, c8 in ((16, 128), (100, 90), (180, 200), (235, 128)):
            deep = frame_to_rgb(frame("yuv444p10le", 4 * y8, 4 * c8), cs, 1, deep=True).astype(np.int64)
            eight = frame_to_rgb(frame("yuv444p", y8, c8), cs, 1).astype(np.int64)
            # within 0.6 of an 8-bit level: OpenCV's 8-bit transform rounds in fixed point (0.54 seen)
            assert np.abs(deep - eight * 257).max() <= 0.6 * 257
            # without ``deep`` the 10-bit frame decodes to the same 8-bit colours (the same matrix)
            shallow = frame_to_rgb(frame("yuv444p10le", 4 * y8, 4 * c8), cs, 1)
            assert shallow.dtype == np.uint8 and np.abs(shallow.astype(np.int64) - eight).max() <= 1
    # 10-bit white read at 8 bits is 255 (swscale's own conversion, used before, gives 253)
    assert frame_to_rgb(frame("yuv420p10le", 940, 512), 1, 1).min() == 255


def test_ten_bit_rgb_round_trip() -> None:
    """uint16 RGB -> 10-bit 4:4:4 -> RGB is exact to the 10-bit quantisation (chroma's share of it can reach
    1.6 levels of one RGB component)."""
    rgb = smooth_rgb16(1, 40, 24)[0]
    for cs, rng in ((1, 1), (BT2020, 1), (BT2020, 2), (2, 0)):
        back = frame_to_rgb(rgb_to_frame(rgb, "yuv444p10le", cs, rng), cs, rng, deep=True)
        err = np.abs(back.astype(np.int64) - rgb) / (65535 / 1023)
        assert back.dtype == np.uint16 and err.max() < 2.0 and err.mean() < 0.6, (cs, rng, err.max())


def test_ten_bit_input_stays_ten_bit_and_exact(clip10: Path, tmp_path: Path, vsr: Any) -> None:
    """Default: a 10-bit HDR10 input gives a 10-bit output with its tags, whose luma is bicubic of the
    input's to within rounding (max 1, mean < 0.3 of a 10-bit level); ``--bit-depth 8`` is 4x coarser."""
    code, res, err = vsr(str(clip10), "-o", str(tmp_path / "o10.mkv"), "--codec", "ffv1")
    assert code == 0 and res["frames_out"] == FRAMES and res["bit_depth"] == 10, err
    assert "8 bits" not in err
    info = probe(tmp_path / "o10.mkv")
    assert (info.pix_fmt, info.bit_depth) == ("yuv420p10le", 10)
    c = info.colour
    assert (c.color_trc, c.color_primaries, c.colorspace) == (PQ, BT2020, BT2020)
    y_in, _ = y_planes(clip10)
    want = bicubic_y(y_in)
    y10, fmt10 = y_planes(tmp_path / "o10.mkv")
    e10 = np.abs(y10 - want)
    assert fmt10 == "yuv420p10le" and e10.max() <= 1.0 and e10.mean() < 0.3, (e10.max(), e10.mean())

    code, res, err = vsr(str(clip10), "-o", str(tmp_path / "o8.mkv"), "--codec", "ffv1", "--bit-depth", "8")
    assert code == 0 and res["bit_depth"] == 8 and "written at 8 bits (PQ HDR" in err
    y8, fmt8 = y_planes(tmp_path / "o8.mkv")
    e8 = np.abs(y8 * 4 - want)  # 8-bit luma in 10-bit units
    assert fmt8 == "yuv420p" and e8.mean() > 3 * e10.mean(), (e8.mean(), e10.mean())
    assert len(np.unique(y10)) > 3 * len(np.unique(y8))  # the levels a smooth gradient keeps: no banding


def test_ten_bit_chunks_equal_whole_and_png_folders_are_16_bit(clip10: Path, tmp_path: Path,
                                                                vsr: Any) -> None:
    """Chunked 10-bit output equals the whole-video run; a PNG-folder output holds 16-bit PNGs equal to the
    model's uint16 output on the decoder's uint16 frames."""
    assert vsr(str(clip10), "-o", str(tmp_path / "whole.mkv"), "--codec", "ffv1")[0] == 0
    assert vsr(str(clip10), "-o", str(tmp_path / "chunked.mkv"), "--codec", "ffv1", "--chunk", "2")[0] == 0
    whole, chunked = y_planes(tmp_path / "whole.mkv")[0], y_planes(tmp_path / "chunked.mkv")[0]
    assert np.array_equal(whole, chunked)

    code, res, err = vsr(str(clip10), "-o", str(tmp_path / "pngs"))
    assert code == 0 and res["bit_depth"] == 16, err
    pngs = [cv2.imread(str(p), cv2.IMREAD_UNCHANGED) for p in sorted((tmp_path / "pngs").iterdir())]
    assert len(pngs) == FRAMES and all(p.dtype == np.uint16 for p in pngs)
    from models.sisr.bicubic import Bicubic
    from vsr_pipeline.engine import run_model

    with FrameReader(clip10, deep=True) as r:
        lr, _ = r.read(FRAMES)
    assert lr.dtype == np.uint16
    hr = run_model(Bicubic(2), "none", lr, torch.device("cpu"), batch=4, dtype=np.uint16)
    assert np.array_equal(np.stack([cv2.cvtColor(p, cv2.COLOR_BGR2RGB) for p in pngs]), hr)


def test_a_codec_without_ten_bits(clip10: Path, tmp_path: Path, vsr: Any) -> None:
    """VP9 of this FFmpeg takes no 10-bit format: by default the output is 8-bit with the warning; asked
    for 10 bits, one line says so and nothing is written."""
    code, res, err = vsr(str(clip10), "-o", str(tmp_path / "out.webm"), "--codec", "libvpx-vp9")
    assert code == 0 and res["bit_depth"] == 8 and "written at 8 bits" in err, err
    code, _, err = vsr(str(clip10), "-o", str(tmp_path / "ten.webm"), "--codec", "libvpx-vp9",
                       "--bit-depth", "10")
    lines = [ln for ln in err.splitlines() if ln.strip() and not ln.startswith(("INFO", "WARNING"))]
    assert code != 0 and len(lines) == 1 and "yuv420p10le" in lines[0] and "--bit-depth 8" in lines[0], err
    assert not (tmp_path / "ten.webm").exists()


def test_eight_bit_input_written_at_ten_bits(tmp_path: Path, vsr: Any) -> None:
    """``--bit-depth 10`` on an 8-bit input: the model's output is kept at 10 bits (4x finer than the
    8-bit run's, which it matches within one 8-bit level)."""
    valid_mp4 = make_clip(tmp_path / "eight.mp4", textured_frames(FRAMES, W, H))
    code, res, err = vsr(str(valid_mp4), "-o", str(tmp_path / "ten.mkv"), "--codec", "ffv1",
                         "--bit-depth", "10")
    assert code == 0 and res["bit_depth"] == 10, err
    assert vsr(str(valid_mp4), "-o", str(tmp_path / "eight.mkv"), "--codec", "ffv1")[0] == 0
    ten, fmt = y_planes(tmp_path / "ten.mkv")
    eight = y_planes(tmp_path / "eight.mkv")[0]
    assert fmt == "yuv420p10le" and np.abs(ten / 4 - eight).max() <= 1.0


def test_writer_refuses_frames_of_the_other_depth(tmp_path: Path) -> None:
    w = VideoWriter(tmp_path / "a.mkv", 16, 16, Fraction(1, 25), Fraction(25), codec="ffv1", bit_depth=10)
    with pytest.raises(ValueError, match="uint16"):
        w.write(np.zeros((1, 16, 16, 3), np.uint8), [0])
    w.abort()
    with pytest.raises(ValueError, match="bit depth"):
        VideoWriter(tmp_path / "b.mkv", 16, 16, Fraction(1, 25), Fraction(25), bit_depth=14)


def test_aligned_windows_of_deep_frames_stay_deep() -> None:
    """The aligner keeps uint16 frames uint16 (its "uint8" means the frames' own type)."""
    from workers.aligner import align_windows

    frames = smooth_rgb16(5, 24, 16)
    flows = np.zeros((5, 3, 2, 16, 24), np.float32)
    flows[..., 0, :, :] = 0.5
    deep = align_windows(frames, flows, 1)
    eight = align_windows(np.round(frames / 257).astype(np.uint8), flows, 1)
    assert deep.dtype == np.uint16 and np.abs(deep / 257 - eight).max() <= 1.0


def test_a_ten_bit_live_stream_stays_ten_bit(clip10: Path, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """The live path (stdin) decodes the 10-bit source deep and writes 10 bits."""
    from vsr_pipeline.options import UpscaleOptions
    from vsr_pipeline.streaming import stream_upscale

    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BufferedReader(io.BytesIO(clip10.read_bytes()))))
    res = stream_upscale("-", tmp_path / "live.mkv", UpscaleOptions(model="bicubic", scale=2, codec="ffv1",
                                                                    progress=False))
    assert res["frames_out"] == FRAMES and res["bit_depth"] == 10
    y, fmt = y_planes(tmp_path / "live.mkv")
    e = np.abs(y - bicubic_y(y_planes(clip10)[0]))
    assert fmt == "yuv420p10le" and e.max() <= 1.0, e.max()


def test_a_folder_of_16_bit_pngs_stays_deep(tmp_path: Path, vsr: Any) -> None:
    """A film scan's 16-bit PNG frames are read at 16 bits: a PNG-folder output holds the model's uint16
    output of them exactly; a video output is as deep as the codec goes: FFV1 16 bits, equal to that output
    within the YUV matrix's rounding (2 of 65535; 10 bits are 64x coarser), x265 12, x264 10 (an 8-bit
    folder stays 8-bit)."""
    from models.sisr.bicubic import Bicubic
    from vsr_pipeline.engine import run_model

    frames = smooth_rgb16(4, W, H)
    (tmp_path / "scan").mkdir()
    for i, f in enumerate(frames):
        cv2.imwrite(str(tmp_path / "scan" / f"{i:04d}.png"), cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
    info = probe(tmp_path / "scan")
    assert info.bit_depth == 16
    code, res, err = vsr(str(tmp_path / "scan"), "-o", str(tmp_path / "up"))
    assert code == 0 and res["bit_depth"] == 16, err
    pngs = np.stack([cv2.cvtColor(cv2.imread(str(p), cv2.IMREAD_UNCHANGED), cv2.COLOR_BGR2RGB)
                     for p in sorted((tmp_path / "up").iterdir())])
    want = run_model(Bicubic(2), "none", frames, torch.device("cpu"), batch=4, dtype=np.uint16)
    assert pngs.dtype == np.uint16 and np.array_equal(pngs, want)
    errors = {}
    for bits in ("16", "10"):
        out = tmp_path / f"up{bits}.mkv"
        code, res, err = vsr(str(tmp_path / "scan"), "-o", str(out), "--codec", "ffv1", "--chroma", "444",
                             *(("--bit-depth", bits) if bits == "10" else ()))
        assert code == 0 and res["pix_fmt"] == f"yuv444p{bits}le", err
        with FrameReader(out, deep=True) as r:
            errors[bits] = np.abs(r.read(4)[0].astype(np.int64) - want)
    assert errors["16"].max() <= 2 and errors["10"].mean() > 16 * errors["16"].mean(), (
        errors["16"].max(), errors["10"].mean(), errors["16"].mean())
    for codec, fmt in (("libx265", "yuv420p12le"), ("libx264", "yuv420p10le")):
        code, res, err = vsr(str(tmp_path / "scan"), "-o", str(tmp_path / f"{codec}.mkv"), "--codec", codec)
        assert code == 0 and res["pix_fmt"] == fmt, err
    (tmp_path / "eight").mkdir()
    cv2.imwrite(str(tmp_path / "eight" / "0.png"), (frames[0] // 257).astype(np.uint8))
    assert probe(tmp_path / "eight").bit_depth == 8


def test_a_batch_keeps_each_videos_depth(clip10: Path, tmp_path: Path) -> None:
    """``vsr batch``: one pool of upscalers shared by a 10-bit and an 8-bit video writes each at its own
    depth (the chunk carries its job's, not the pool's)."""
    from vsr_pipeline import batch
    from vsr_pipeline.options import UpscaleOptions

    eight = make_clip(tmp_path / "eight.mp4", textured_frames(FRAMES, W, H))
    summary = batch([str(clip10), str(eight)], str(tmp_path / "out"),
                    UpscaleOptions(model="bicubic", scale=2, codec="ffv1", progress=False), format="mkv",
                    upscalers=1)
    assert [v["status"] for v in summary["videos"]] == ["ok", "ok"], summary["videos"]
    formats = {Path(v["output"]).stem: probe(v["output"]).pix_fmt for v in summary["videos"]}
    assert formats == {"hdr10": "yuv420p10le", "eight": "yuv420p"}
    e = np.abs(y_planes(tmp_path / "out" / "hdr10.mkv")[0] - bicubic_y(y_planes(clip10)[0]))
    assert e.max() <= 1.0


def test_the_thread_choice_measures_the_ten_bit_encode(clip10: Path) -> None:
    """The decode+encode cost the CPU thread choice weighs (``encode_cost``) is measured on uint16 frames
    into the 10-bit encoder the job will run (before, the probe failed and the choice ignored that work)."""
    from vsr_pipeline.encode_cost import time_decode_encode
    from vsr_pipeline.media import EncodeSettings

    cost = time_decode_encode(clip10, probe(clip10), 2, EncodeSettings(codec="ffv1"), ".mkv", frames=2)
    assert cost["decode"] > 0 and cost["encode"] > 0


def test_av1_output_in_chunks_is_joined(clip10: Path, tmp_path: Path, vsr: Any) -> None:
    """SVT-AV1 at 10 bits in three chunks: the segments are joined (PyAV looked for an encoder named like
    the decoder, libdav1d, and the finished job failed at the join with an internal error)."""
    code, res, err = vsr(str(clip10), "-o", str(tmp_path / "av1.mkv"), "--codec", "libsvtav1", "--chunk", "2")
    assert code == 0 and res["frames_out"] == FRAMES and res["bit_depth"] == 10, err
    info = probe(tmp_path / "av1.mkv")
    assert info.pix_fmt == "yuv420p10le" and info.frames == FRAMES


def test_a_new_bit_depth_keeps_the_engines_back_off() -> None:
    """A shared upscaler alternating 8- and 10-bit videos changes only its rounding: an out-of-memory
    back-off (smaller tiles) stays, and the frames are the 8-bit run's to within rounding."""
    from vsr_pipeline.engine import Engine

    engine = Engine("bicubic", None, 2, "cpu", threads=1, precision="fp32")
    lr = (smooth_rgb16(2, 24, 16) // 257).astype(np.uint8)
    eight = engine.process(slice(0, 2), slice(0, 2), lr)
    engine.tile, engine.backoffs = 8, [{"tile": 8, "batch": 4, "sequences": 1}]  # as a back-off leaves it
    ten = engine.process(slice(0, 2), slice(0, 2), lr, base={**engine.base, "bit_depth": 10})
    assert ten.dtype == np.uint16 and engine.tile == 8 and len(engine.backoffs) == 1
    assert np.abs(ten / 257 - eight).max() <= 0.5 + 1e-9
    engine.process(slice(0, 2), slice(0, 2), lr, base={**engine.base, "tile": 32})
    assert engine.tile == 32 and engine.backoffs == []  # any other change starts afresh


def test_a_folder_of_dpx_scans_is_read_at_its_depth(tmp_path: Path, vsr: Any) -> None:
    """DPX, the film scanner's format, read by FFmpeg's decoder: a 10-bit scan's samples come in as 16-bit
    values within 1 of v * 65535 / 1023, the folder is 10-bit, and a video output of it keeps 10 bits."""
    from vsr_pipeline.media.images import read_images

    ten = np.round(smooth_rgb16(3, W, H).astype(np.float64) / 65535 * 1023).astype(np.uint16)
    (tmp_path / "scan").mkdir()
    for i, f in enumerate(ten):
        with av.open(str(tmp_path / "scan" / f"reel1_{i + 1:05d}.dpx"), "w", format="image2") as out:
            s = out.add_stream("dpx", rate=24)
            s.width, s.height, s.pix_fmt = W, H, "gbrp10le"
            frame = av.VideoFrame.from_ndarray(f * 64, format="rgb48le").reformat(format="gbrp10le")
            frame.pts = 0
            out.mux(s.encode(frame))
            out.mux(s.encode())
    info = probe(tmp_path / "scan")
    assert (info.frames, info.bit_depth) == (3, 10)
    got = read_images(sorted((tmp_path / "scan").iterdir()), deep=True)
    assert got.dtype == np.uint16 and np.abs(got - ten * (65535 / 1023)).max() <= 1
    code, res, err = vsr(str(tmp_path / "scan"), "-o", str(tmp_path / "up.mkv"), "--codec", "ffv1")
    assert code == 0 and (res["frames_out"], res["pix_fmt"]) == (3, "yuv420p10le"), err
