"""HDR10 static metadata (mastering display, MaxCLL/MaxFALL) survives the pipeline: read from the input's
frames, written by x265, x264 and SVT-AV1 into every segment, said to be lost where an encoder cannot
carry it.

The clips are real HEVC with the SEI x265 writes from ``master-display``/``max-cll``; the outputs are read
back with FFmpeg's own decoders, which attach what the bitstream carries to each frame.
"""

from __future__ import annotations

import io
import json
import sys
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest

from tests.test_bit_depth import smooth_rgb16
from vsr_pipeline.media import probe, rgb_to_frame
from vsr_pipeline.media.hdr_metadata import HdrStatic, encoder_params, hdr_static, parse_mastering

pytestmark = pytest.mark.usefixtures("ray_local")

FRAMES, W, H = 6, 64, 48
PQ, BT2020 = 16, 9
#: a P3-D65 mastering display of 1,000 cd/m2 (what HDR10 masters declare), MaxCLL 1000, MaxFALL 400
P3_D65 = "G(13250,34500)B(7500,3000)R(34000,16000)WP(15635,16450)L(10000000,50)"


def write_hdr10(path: Path, params: str = f"master-display={P3_D65}:max-cll=1000,400") -> Path:
    """A 10-bit BT.2020 PQ HEVC clip whose SEI carries ``params``."""
    with av.open(str(path), "w") as out:
        options = {"crf": "12", "x265-params": f"log-level=error:{params}"}
        v = out.add_stream("libx265", rate=25, options=options)
        v.width, v.height, v.pix_fmt = W, H, "yuv420p10le"
        cc = v.codec_context
        cc.colorspace, cc.color_primaries, cc.color_trc, cc.color_range = BT2020, BT2020, PQ, 1
        for i, rgb in enumerate(smooth_rgb16(FRAMES, W, H)):
            f = rgb_to_frame(rgb, "yuv420p10le", BT2020, 1)
            f.pts = i
            out.mux(v.encode(f))
        out.mux(v.encode())
    return path


def every_frame(path: Path, keyframes: bool = False) -> list[HdrStatic | None]:
    """The metadata FFmpeg's decoder attaches to each frame (``keyframes``: to each keyframe only; H.264
    and AV1 declare it there, and FFmpeg attaches it to the frames that carry it, as a player reads it)."""
    with av.open(str(path)) as c:
        return [hdr_static(f) for f in c.decode(video=0) if f.key_frame or not keyframes]


@pytest.fixture(scope="module")
def hdr10(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_hdr10(tmp_path_factory.mktemp("hdr") / "hdr10.mkv")


def test_the_input_metadata_is_read_as_the_master_declared(hdr10: Path) -> None:
    hdr = probe(hdr10).hdr
    assert hdr is not None
    assert hdr.red == (Fraction(68, 100), Fraction(32, 100)) and hdr.white == (Fraction(3127, 10000),
                                                                              Fraction(329, 1000))
    assert hdr.luminance == (Fraction(5, 1000), Fraction(1000)) and (hdr.max_cll, hdr.max_fall) == (1000, 400)


def test_x265_output_in_chunks_carries_it_in_every_frame(hdr10: Path, tmp_path: Path, vsr: Any) -> None:
    """Three segments (chunk 2), each begun by its own keyframe: every output frame has the input's
    metadata, exactly (same units); the JSON and the manifest say so."""
    out = tmp_path / "up.mkv"
    code, res, err = vsr(str(hdr10), "-o", str(out), "--codec", "libx265", "--chunk", "2")
    assert code == 0 and res["frames_out"] == FRAMES, err
    source = probe(hdr10).hdr
    assert every_frame(out) == [source] * FRAMES
    assert res["hdr"]["written"] is True and res["hdr"]["max_cll"] == 1000
    assert res["hdr"]["mastering_luminance"] == [0.005, 1000.0]
    manifest = json.loads((tmp_path / "up.mkv.vsr.json").read_text())
    assert manifest["hdr"] == res["hdr"]


@pytest.mark.parametrize("codec", ["libx264", "libsvtav1"])
def test_x264_and_svt_av1_outputs_carry_it(hdr10: Path, tmp_path: Path, vsr: Any, codec: str) -> None:
    """x264 writes the same SEI, SVT-AV1 an AV1 metadata OBU in its own units (chromaticity in 1/65536,
    luminance in 1/256 and 1/16384 cd/m2), so the values agree to those steps; both on every keyframe
    (chunk 2: three segments, each begun by one)."""
    out = tmp_path / "up.mkv"
    code, res, err = vsr(str(hdr10), "-o", str(out), "--codec", codec, "--chunk", "2")
    assert code == 0 and res["hdr"]["written"] is True, err
    source, got = probe(hdr10).hdr, every_frame(out, keyframes=True)
    assert len(got) >= 3 and len(set(got)) == 1
    assert source is not None and all(g is not None for g in got)
    first = got[0]
    assert first is not None and (first.max_cll, first.max_fall) == (1000, 400)
    for a, b in zip((source.red, source.green, source.blue, source.white),
                    (first.red, first.green, first.blue, first.white), strict=True):
        assert a is not None and b is not None
        assert abs(a[0] - b[0]) <= Fraction(1, 50000) and abs(a[1] - b[1]) <= Fraction(1, 50000)
    assert source.luminance is not None and first.luminance is not None
    assert abs(first.luminance[0] - source.luminance[0]) <= Fraction(1, 10000)
    assert first.luminance[1] == source.luminance[1]


def test_an_output_that_cannot_carry_it_is_said_to_lose_it(hdr10: Path, tmp_path: Path, vsr: Any) -> None:
    """FFV1 has no such parameters: a warning names what is left out, the JSON says not written."""
    code, res, err = vsr(str(hdr10), "-o", str(tmp_path / "up.mkv"), "--codec", "ffv1")
    assert code == 0 and res["hdr"]["written"] is False, err
    assert "HDR10 mastering-display and light-level metadata cannot be written to ffv1" in err
    assert every_frame(tmp_path / "up.mkv") == [None] * FRAMES


def test_the_users_own_params_win(hdr10: Path, tmp_path: Path, vsr: Any) -> None:
    """``--codec-option x265-params=max-cll=...`` overrides the input's light level (a regraded master)."""
    out = tmp_path / "up.mkv"
    code, _, err = vsr(str(hdr10), "-o", str(out), "--codec", "libx265",
                       "--codec-option", "x265-params=max-cll=600,120")
    assert code == 0, err
    first = every_frame(out)[0]
    assert first is not None and (first.max_cll, first.max_fall) == (600, 120)
    assert first.red == probe(hdr10).hdr.red  # type: ignore[union-attr]


def test_a_live_stream_keeps_it(hdr10: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from vsr_pipeline.options import UpscaleOptions
    from vsr_pipeline.streaming import stream_upscale

    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BufferedReader(io.BytesIO(hdr10.read_bytes()))))
    res = stream_upscale("-", tmp_path / "live.mkv", UpscaleOptions(model="bicubic", scale=2, codec="libx265",
                                                                    progress=False))
    assert res["frames_out"] == FRAMES and res["hdr"]["written"] is True
    assert every_frame(tmp_path / "live.mkv") == [probe(hdr10).hdr] * FRAMES


def test_an_sdr_input_has_none_and_gets_none(tmp_path: Path, vsr: Any) -> None:
    from tests.conftest import make_clip, textured_frames

    clip = make_clip(tmp_path / "sdr.mp4", textured_frames(4, 32, 24))
    code, res, err = vsr(str(clip), "-o", str(tmp_path / "up.mkv"), "--codec", "libx265")
    assert code == 0 and res["hdr"] is None and probe(clip).hdr is None, err
    assert every_frame(tmp_path / "up.mkv") == [None] * 4


def test_encoder_parameters_in_each_encoders_units() -> None:
    """AV1-sourced values (1/65536 steps) round to the nearest HEVC unit for x265; SVT-AV1 takes decimals."""
    hdr = HdrStatic(red=(Fraction(44564, 65536), Fraction(20972, 65536)), green=(Fraction(17367, 65536),
                    Fraction(45220, 65536)), blue=(Fraction(9830, 65536), Fraction(3932, 65536)),
                    white=(Fraction(20493, 65536), Fraction(21561, 65536)),
                    luminance=(Fraction(82, 16384), Fraction(256000, 256)), max_cll=1000, max_fall=400)
    x265 = encoder_params("libx265", hdr)["x265-params"]
    assert x265 == ("master-display=G(13250,34500)B(7500,3000)R(34000,16000)WP(15635,16450)"
                    "L(10000000,50):max-cll=1000,400")
    x264 = encoder_params("libx264", hdr)["x264-params"]
    assert x264 == "mastering-display" + x265.removeprefix("master-display").replace("max-cll", "cll")
    svt = encoder_params("libsvtav1", hdr)["svtav1-params"]
    assert svt == ("mastering-display=G(0.265,0.69)B(0.14999,0.06)R(0.67999,0.32001)WP(0.3127,0.32899)"
                   "L(1000,0.005):content-light=1000,400")
    assert encoder_params("ffv1", hdr) == {} and encoder_params("libx265", None) == {}
    assert encoder_params("libx265", HdrStatic(max_cll=500, max_fall=80)) == {"x265-params": "max-cll=500,80"}


def test_side_data_without_primaries_or_luminance_gives_none_of_them() -> None:
    """``has_primaries``/``has_luminance`` 0: those parts are absent, not zero."""
    raw = np.zeros(22, "<i4")
    raw[1::2][:10] = 50000  # every denominator set, numerators 0
    assert parse_mastering(raw.tobytes()) == {}
    raw[21] = 1  # has_luminance only
    assert parse_mastering(raw.tobytes()) == {"luminance": (Fraction(0), Fraction(0))}
