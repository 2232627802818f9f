"""``--field-match``: telecined film (3:2 pulldown) gets its progressive pictures back from the fields that
belong together, instead of each frame being deinterlaced.

The clips are made as a DVD's are: 20 progressive frames of real footage (Big Buck Bunny), telecined by
FFmpeg's ``telecine`` filter to 25 frames (two in every five combed from two pictures), encoded as interlaced
MPEG-2 (as on an NTSC DVD), or as lossless FFV1 flagged progressive (telecined film re-encoded by someone who
did not know). Each output frame is compared with the closest of the 20 original pictures (stored losslessly
and read the same way).
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest

from vsr_pipeline.media import FrameReader
from vsr_pipeline.metrics import psnr_y

BBB = Path(__file__).resolve().parents[2] / "shared" / "data" / "videos" / "bigbuckbunny.mp4"
W, H, FILM, FRAMES = 160, 96, 20, 25

pytestmark = pytest.mark.skipif(not BBB.is_file(), reason="../shared/data/videos absent")


def _pull(graph: av.filter.Graph, into: list[av.VideoFrame]) -> None:
    while True:
        try:
            into.append(graph.pull())
        except (av.error.BlockingIOError, av.error.EOFError):
            return


def telecine(frames: list[av.VideoFrame]) -> list[av.VideoFrame]:
    """24 fps pictures -> 30 fps frames, 3:2 pulldown, top field first (FFmpeg's ``telecine``)."""
    graph = av.filter.Graph()
    size = f"{frames[0].width}x{frames[0].height}"
    args = f"video_size={size}:pix_fmt=yuv444p:time_base=1/24:frame_rate=24:pixel_aspect=1"
    src = graph.add("buffer", args)
    pulldown, sink = graph.add("telecine", "first_field=top:pattern=23"), graph.add("buffersink")
    src.link_to(pulldown)
    pulldown.link_to(sink)
    graph.configure()
    out: list[av.VideoFrame] = []
    for i, f in enumerate(frames):
        f.pts, f.time_base = i, Fraction(1, 24)
        graph.push(f)
        _pull(graph, out)
    graph.push(None)
    _pull(graph, out)
    return out


#: an NTSC DVD's video: interlaced MPEG-2 (interlaced DCT and motion), here at quantiser 2
DVD = {"flags": "+ildct+ilme", "qmin": "2", "qmax": "2", "g": "15", "bf": "0"}


def write(path: Path, frames: list[av.VideoFrame], codec: str = "mpeg2video") -> Path:
    """``frames`` at 30000/1001 fps: interlaced MPEG-2, top field first (a DVD), or FFV1 4:4:4 with no
    interlace flags (``codec="ffv1"``, lossless)."""
    fmt = "yuv420p" if codec == "mpeg2video" else "yuv444p"
    with av.open(str(path), "w") as dst:
        v = dst.add_stream(codec, rate=Fraction(30000, 1001), options=DVD if codec == "mpeg2video" else {})
        v.width, v.height, v.pix_fmt = frames[0].width, frames[0].height, fmt
        if codec == "mpeg2video":
            v.codec_context.field_order = 2  # AV_FIELD_TT
        for i, f in enumerate(frames):
            frame = f.reformat(format=fmt)
            frame.pts = i
            dst.mux(v.encode(frame))
        dst.mux(v.encode(None))
    return path


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return make_clips(tmp_path_factory.mktemp("telecine"))


def make_clips(d: Path) -> dict[str, Any]:
    """In ``d``: the 20 pictures (``film.mkv``, lossless), telecined as a DVD (``dvd.mpg``) and as lossless
    FFV1 flagged progressive (``progressive.mkv``); ``film``: the pictures as the reader reads them."""
    pictures = []
    with av.open(str(BBB)) as c:
        for i, f in enumerate(c.decode(video=0)):
            if i >= 100:
                pictures.append(f.reformat(width=W, height=H, format="yuv444p"))
            if len(pictures) == FILM:
                break
    fields = telecine(pictures)
    assert len(fields) == FRAMES
    out: dict[str, Any] = {"film.mkv": write(d / "film.mkv", pictures, "ffv1"),
                           "dvd.mpg": write(d / "dvd.mpg", fields),
                           "progressive.mkv": write(d / "progressive.mkv", fields, "ffv1")}
    with FrameReader(out["film.mkv"]) as r:  # the pictures, colour-converted as the reader converts
        out["film"] = r.read(100)[0]
    return out


def closest(frames: np.ndarray, film: np.ndarray) -> list[float]:
    """Per frame: Y-PSNR against the closest original picture."""
    return [max(psnr_y(f, p) for p in film) for f in frames]


def read_all(path: Path, **kw: Any) -> np.ndarray:
    with FrameReader(path, **kw) as r:
        frames, _ = r.read(100)
        assert r.deinterlace
    return frames


def test_a_dvds_telecined_frames_come_back_whole(clips: dict[str, Any]) -> None:
    """Interlaced MPEG-2 (quantiser 2, ~43 dB at best): field-matched, every frame is within 2.5 dB of
    that bound; deinterlaced frame by frame (bwdif, the default) the combed frames lose their height and the
    worst frame is more than 4 dB further off."""
    film, dvd = clips["film"], clips["dvd.mpg"]
    matched = closest(read_all(dvd, field_match=True), film)
    bwdif = closest(read_all(dvd), film)
    assert len(matched) == len(bwdif) == FRAMES
    assert min(matched) > 40.5, np.round(matched, 1)
    assert np.mean(matched) > np.mean(bwdif) + 1.5 and min(matched) > min(bwdif) + 4, (
        np.round(matched, 1), np.round(bwdif, 1))


def test_telecine_flagged_progressive_is_matched_exactly(clips: dict[str, Any]) -> None:
    """Lossless FFV1 with no interlace flags: not deinterlaced by default, so two frames in five stay
    combed; ``field_match`` rebuilds every frame as one of the original pictures (4:4:4: exactly, but for
    a few pixels of a frame the matcher left to the deinterlacer)."""
    film, path = clips["film"], clips["progressive.mkv"]
    with FrameReader(path) as r:
        combed, _ = r.read(100)
        assert not r.deinterlace
    assert sum(not any(np.array_equal(f, p) for p in film) for f in combed) == 10  # 2 in every 5: mixed
    matched = read_all(path, field_match=True)
    exact = sum(any(np.array_equal(f, p) for p in film) for f in matched)
    assert exact >= FRAMES - 2 and min(closest(matched, film)) > 60, exact  # here 24 exact, one at 68 dB


def test_the_pipeline_keeps_count_and_times(clips: dict[str, Any], tmp_path: Path, vsr: Any) -> None:
    """Through `vsr upscale`: the same frames and pts as the input (a repeated picture in every five, as
    the source plays), ``field_matched`` in the JSON and the manifest's settings; with --no-deinterlace
    it is refused."""
    import json

    dvd = clips["dvd.mpg"]
    code, res, err = vsr(str(dvd), "-o", str(tmp_path / "film.mkv"), "--field-match", "--chunk", "8")
    assert code == 0 and res["field_matched"] and res["frames_out"] == FRAMES, err
    with av.open(str(dvd)) as a, av.open(str(tmp_path / "film.mkv")) as b:
        times_in = [f.time for f in a.decode(video=0)]
        times_out = [f.time for f in b.decode(video=0)]
    assert np.allclose(np.array(times_out) - times_out[0], np.array(times_in) - times_in[0], atol=1e-3)
    manifest = json.loads((tmp_path / "film.mkv.vsr.json").read_text())
    assert manifest["settings"]["field_match"] is True
    code, _, err = vsr(str(dvd), "-o", str(tmp_path / "no.mkv"), "--field-match", "--no-deinterlace")
    assert code == 2 and "cannot go with --no-deinterlace" in err and not (tmp_path / "no.mkv").exists()


def test_a_folder_of_frames_is_not_field_matched(clips: dict[str, Any], tmp_path: Path) -> None:
    """Frames from images have no fields: read as they are, and not said to be field-matched."""
    from vsr_pipeline.media import ImageFolderWriter

    with ImageFolderWriter(tmp_path / "frames") as w:
        w.write(clips["film"][:5], list(range(5)))
    with FrameReader(tmp_path / "frames", field_match=True) as r:
        frames, _ = r.read(10)
        assert not r.field_match and not r.deinterlace
    np.testing.assert_array_equal(frames, clips["film"][:5])
