"""Output chroma layouts: 4:2:0, 4:2:2 and 4:4:4 at 8 to 16 bits, chosen per encoder (ProRes and DNxHR,
the editing codecs of an archive or a post-production hand-off, take only 4:2:2 and 4:4:4) or named with
``--chroma``. What each layout keeps is checked on pictures made for it: rows of alternating colour survive
4:2:2 and not 4:2:0, columns survive only 4:4:4."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest

from tests.conftest import make_clip, textured_frames
from tests.test_bit_depth import y_planes
from vsr_pipeline.media import frame_to_rgb, probe, rgb_to_frame
from vsr_pipeline.media.encoder_options import codec_defaults
from vsr_pipeline.media.pixel_format import (
    format_problem,
    output_bits,
    output_chroma,
    output_pix_fmt,
)

pytestmark = pytest.mark.usefixtures("ray_local")

FRAMES, W, H = 6, 64, 48


def test_each_encoder_gets_a_layout_it_takes() -> None:
    """Auto: 4:2:0 where the encoder takes it; ProRes and DNxHR 4:2:2 (ProRes only at 10 bits, so 10 bits
    even for an 8-bit input); odd sizes 4:4:4; a layout or depth an encoder lacks is one line naming flags
    that work."""
    assert output_pix_fmt(640, 360, 8, "libx264") == "yuv420p"
    assert output_pix_fmt(641, 360, 8, "libx264") == "yuv444p"
    assert output_pix_fmt(640, 360, 10, "libx264", "422") == "yuv422p10le"
    assert output_chroma("prores_ks", 640, 360, 10) == "422" and output_bits("prores_ks", 640, 360, 8) == 10
    assert output_chroma("dnxhd", 640, 360, 8) == "422" and output_bits("dnxhd", 640, 360, 8) == 8
    assert output_bits("libx264", 640, 360, 8) == 8 and output_bits("libx264", 640, 360, 10) == 10
    assert output_bits("libvpx-vp9", 640, 360, 10) == 8  # no 10-bit format in this build
    # as deep as the input, as far as the encoder goes (a 16-bit scan: FFV1 16, x265 12, x264 10)
    assert [output_bits("ffv1", 640, 360, b) for b in (8, 9, 10, 12, 14, 16)] == [8, 10, 10, 12, 16, 16]
    assert output_bits("libx265", 640, 360, 16) == 12 and output_bits("libx264", 640, 360, 12) == 10
    assert codec_defaults("dnxhd", "yuv422p10le") == {"profile": "dnxhr_hqx"}
    assert codec_defaults("libx264", "yuv422p") == {}
    for codec, w, chroma in (("libx264", 640, None), ("libx264", 641, "444"), ("prores_ks", 640, "422")):
        assert format_problem(codec, w, 360, 10, chroma) is None, codec
    problem = format_problem("prores_ks", 640, 360, 8, None)
    assert problem == ("encoder prores_ks cannot take yuv420p; it takes --bit-depth 10 with --chroma 422 "
                       "or 444")
    assert "needed for odd sizes" in str(format_problem("libsvtav1", 641, 361, 8, None))
    assert "cannot hold a 641x360 frame (odd width); --chroma 444 can" in str(
        format_problem("libx264", 641, 360, 8, "422"))


@pytest.mark.parametrize("bits", [8, 10, 12, 16])
def test_what_each_layout_keeps(bits: int) -> None:
    """One-pixel rows of alternating colour come back from 4:2:2 and 4:4:4 within rounding but are averaged
    away by 4:2:0; one-pixel columns come back only from 4:4:4. A picture of one colour comes back from
    every layout."""
    dtype, top = (np.uint8, 255) if bits == 8 else (np.uint16, 65535)
    red, blue = np.array([0.8, 0.2, 0.2]) * top, np.array([0.2, 0.2, 0.8]) * top
    rows = np.where((np.arange(16) % 2 == 0)[:, None, None], red, blue) * np.ones((16, 24, 1))
    columns = rows.transpose(1, 0, 2)
    level = top / (2**bits - 1)  # one level of the output's samples, in RGB units

    def error(rgb: np.ndarray, chroma: str) -> float:
        rgb = np.ascontiguousarray(np.round(rgb).astype(dtype))
        fmt = output_pix_fmt(rgb.shape[1], rgb.shape[0], bits, "ffv1", chroma)
        back = frame_to_rgb(rgb_to_frame(rgb, fmt, 1, 1), 1, 1, deep=bits > 8)
        assert back.dtype == dtype and back.shape == rgb.shape
        return float(np.abs(back.astype(np.float64) - rgb).max() / level)

    assert error(rows, "444") <= 2 and error(rows, "422") <= 2 and error(rows, "420") > 50
    assert error(columns, "444") <= 2 and error(columns, "422") > 50 and error(columns, "420") > 50
    assert max(error(np.ones_like(rows) * red, c) for c in ("420", "422")) <= 2


@pytest.mark.parametrize("chroma", ["420", "422"])
def test_subsampled_chroma_is_interpolated_not_repeated(chroma: str) -> None:
    """A colour ramp across the picture (red to blue, about 14 levels a pixel) through 4:2:0 / 4:2:2:
    decoding interpolates chroma between the samples (bicubic, centred), so away from the edges it comes
    back within rounding (4 levels: of Y, of each chroma sample, of RGB); repeating each sample over its
    block, as the reader did before, leaves steps of half a sample's change (over 6 levels) on every
    column."""
    x = np.linspace(0.0, 1.0, 16)[None, :, None]
    ramp = np.ascontiguousarray(np.round((x * [0.05, 0.5, 0.9] + (1 - x) * [0.9, 0.5, 0.05]) * 255 *
                                         np.ones((16, 16, 1))).astype(np.uint8))
    back = frame_to_rgb(rgb_to_frame(ramp, output_pix_fmt(16, 16, 8, "ffv1", chroma), 1, 1), 1, 1)
    inner = np.abs(back.astype(int) - ramp)[:, 4:-4]  # bicubic: two chroma samples each side
    assert inner.max() <= 4, inner.max()
    blocks = np.repeat(ramp.reshape(16, 8, 2, 3).mean(axis=2), 2, axis=1)  # what repeating would give
    assert np.abs(blocks - ramp)[:, 4:-4].max(axis=2).min() > 6


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_clip(tmp_path_factory.mktemp("chroma") / "in.mp4", textured_frames(FRAMES, W, H), audio=True)


def test_prores_output(clip: Path, tmp_path: Path, vsr: Any) -> None:
    """``--codec prores_ks`` to .mov: 4:2:2 10-bit ProRes HQ (an 8-bit input too: ProRes has no 8-bit
    format), every frame with its pts and the audio; luma near the lossless 10-bit FFV1 run's (ProRes HQ is
    lossy: above 50 dB); chunked output equals the whole (ProRes is intra-only)."""
    code, res, err = vsr(str(clip), "-o", str(tmp_path / "whole.mov"), "--codec", "prores_ks")
    assert code == 0 and (res["bit_depth"], res["pix_fmt"]) == (10, "yuv422p10le"), err
    with av.open(str(tmp_path / "whole.mov")) as c:
        v = c.streams.video[0]
        assert (v.codec_context.name, v.codec_context.profile) == ("prores", "HQ")
        assert [s.type for s in c.streams] == ["video", "audio"]
        pts_out = [f.pts for f in c.decode(video=0)]
    with av.open(str(clip)) as c:
        pts_in = [f.pts for f in c.decode(video=0)]
    assert len(pts_out) == FRAMES and [p * probe(clip).time_base for p in pts_in] == [
        p * probe(tmp_path / "whole.mov").time_base for p in pts_out]

    assert vsr(str(clip), "-o", str(tmp_path / "ref.mkv"), "--codec", "ffv1", "--bit-depth", "10")[0] == 0
    prores, fmt = y_planes(tmp_path / "whole.mov")
    diff = prores - y_planes(tmp_path / "ref.mkv")[0]
    psnr = 10 * np.log10(1023**2 / np.mean(diff**2))
    assert fmt == "yuv422p10le" and psnr > 50 and np.abs(diff).max() <= 16, (psnr, np.abs(diff).max())

    code, res, err = vsr(str(clip), "-o", str(tmp_path / "chunked.mov"), "--codec", "prores_ks",
                         "--chunk", "2")
    assert code == 0 and res["chunks"] == 3, err
    assert np.array_equal(y_planes(tmp_path / "chunked.mov")[0], prores)


def test_dnxhr_and_a_named_layout(tmp_path: Path, vsr: Any) -> None:
    """``--codec dnxhd`` opens as DNxHR HQ 4:2:2 at any size DNxHR takes (DNxHD's own profile takes only
    broadcast sizes), its colours near the lossless 4:2:2 run's (FFmpeg reads every DNxHR frame as BT.709, so
    it is written with that matrix whatever the source's, untagged BT.601 here: the source's matrix about
    doubled the mean error on this random texture); ``--chroma 444`` gives x264 4:4:4 (High 4:4:4),
    lossless at crf 0 within the 8-bit matrix's rounding."""
    from vsr_pipeline.media import FrameReader

    clip = make_clip(tmp_path / "wide.mp4", textured_frames(2, 160, 64))
    code, res, err = vsr(str(clip), "-o", str(tmp_path / "dnx.mov"), "--codec", "dnxhd")
    assert code == 0 and (res["bit_depth"], res["pix_fmt"]) == (8, "yuv422p"), err
    with av.open(str(tmp_path / "dnx.mov")) as c:
        assert c.streams.video[0].codec_context.profile == "DNXHR HQ"
    code, res, err = vsr(str(clip), "-o", str(tmp_path / "full.mkv"), "--chroma", "444")
    assert code == 0 and res["pix_fmt"] == "yuv444p", err
    assert probe(tmp_path / "full.mkv").pix_fmt == "yuv444p"
    assert vsr(str(clip), "-o", str(tmp_path / "pngs"))[0] == 0
    assert vsr(str(clip), "-o", str(tmp_path / "f422.mkv"), "--codec", "ffv1", "--chroma", "422")[0] == 0

    def rgb(path: Path) -> np.ndarray:
        with FrameReader(path) as r:
            return r.read(2)[0].astype(np.float64)

    assert np.abs(rgb(tmp_path / "full.mkv") - rgb(tmp_path / "pngs")).max() <= 2
    dnx = np.abs(rgb(tmp_path / "dnx.mov") - rgb(tmp_path / "f422.mkv"))
    assert dnx.mean() < 4.5, dnx.mean()


def test_a_layout_the_encoder_lacks_fails_at_once(clip: Path, tmp_path: Path, vsr: Any) -> None:
    """ProRes at 8 bits, SVT-AV1 at 4:4:4: one line naming what would work, exit 3, nothing written, before
    any frame is upscaled."""
    cases = (("p.mov", ("--codec", "prores_ks", "--bit-depth", "8"),
              "--bit-depth 10 with --chroma 422 or 444"),
             ("a.mkv", ("--codec", "libsvtav1", "--chroma", "444"), "--bit-depth 8 or 10 with --chroma 420"))
    for out, args, hint in cases:
        code, _, err = vsr(str(clip), "-o", str(tmp_path / out), *args)
        lines = [ln for ln in err.splitlines() if ln.strip() and not ln.startswith(("INFO", "WARNING"))]
        assert code == 3 and len(lines) == 1 and hint in lines[0], err
        assert "cannot take" in lines[0] and not list(tmp_path.glob(f"*{Path(out).stem}*"))
