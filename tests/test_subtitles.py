"""Subtitles reach the output: copied where its container holds them, text ones converted where it does not
(SubRip or ASS from an MKV into MP4's mov_text, mov_text into Matroska's ASS or WebM's WebVTT), each cue's
text and times checked by decoding the output with FFmpeg's own subtitle decoders."""

from __future__ import annotations

import re
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import pytest

from tests.conftest import textured_frames

FRAMES = 50  # 2 s at 25 fps
#: (start ms, duration ms, SubRip text)
CUES = [(100, 500, "Hello world"), (700, 450, "Größe café\nsecond line"),
        (1300, 600, "<i>Italic</i> and bold")]


@pytest.fixture(scope="module")
def srt_mkv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An MKV as a rip has it: H.264, and a SubRip track (French) of three cues, one with a line break and
    non-ASCII letters, one in italics."""
    path = tmp_path_factory.mktemp("subs") / "in.mkv"
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=25, options={"crf": "12"})
        video.width, video.height, video.pix_fmt = 48, 32, "yuv420p"
        subs = out.add_mux_stream("subrip", time_base=Fraction(1, 1000))
        subs.metadata["language"] = "fra"
        packets = []
        for frame in textured_frames(FRAMES, 48, 32):
            packets += video.encode(av.VideoFrame.from_ndarray(frame, format="rgb24"))
        packets += video.encode(None)
        for start, length, text in CUES:
            cue = av.Packet(text.encode())
            cue.stream, cue.time_base = subs, Fraction(1, 1000)
            cue.pts, cue.dts, cue.duration = start, start, length
            packets.append(cue)
        for p in sorted(packets, key=lambda p: p.dts * p.time_base):
            out.mux(p)
    return path


def cues_of(path: Path) -> tuple[str, str | None, list[tuple[int, int, str, bool]]]:
    """The output's subtitle codec, its language, and per cue: start and duration in ms, the text without
    style tags (line breaks as \\n), and whether it is in italics."""
    with av.open(str(path)) as c:
        stream = c.streams.subtitles[0]
        got = []
        for packet in c.demux(stream):
            if not packet.size or packet.pts is None:
                continue
            cue = stream.codec_context.decode2(packet)
            if cue is None or not len(cue):
                continue
            start = round(packet.pts * packet.time_base * 1000) + cue.start_display_time
            length = cue.end_display_time - cue.start_display_time
            if not 0 < length < 2**31:
                length = round(packet.duration * packet.time_base * 1000)
            line = cue[0].ass.decode().split(",", 8)[8]  # ASS event: the text after 8 fields
            text = re.sub(r"\{[^}]*\}", "", line).replace("\\N", "\n").strip()
            got.append((start, length, text, "\\i1" in line))
        name = stream.codec_context.name  # the decoder: "srt" reads SubRip, "ssa" ASS
        codec = {"srt": "subrip", "ssa": "ass"}.get(name, name)
        return codec, stream.metadata.get("language"), got


WANT = [(s, d, re.sub(r"</?i>", "", t), "<i>" in t) for s, d, t in CUES]


def run(vsr: Any, src: Path, out: Path, *extra: str) -> dict[str, Any]:
    code, result, err = vsr(str(src), "-o", str(out), *extra)
    assert code == 0, err
    assert result["frames_out"] == FRAMES
    return result


def test_subrip_is_copied_into_matroska_and_converted_for_mp4_and_webm(srt_mkv: Path, tmp_path: Path,
                                                                       vsr: Any) -> None:
    result = run(vsr, srt_mkv, tmp_path / "same.mkv")
    assert result["subtitles"] == [{"stream": 1, "codec": "srt", "written_as": "copy", "packets": 3}]
    assert cues_of(tmp_path / "same.mkv") == ("subrip", "fra", WANT)  # held by MKV: copied as it is
    result = run(vsr, srt_mkv, tmp_path / "out.mp4")
    assert cues_of(tmp_path / "out.mp4") == ("mov_text", "fra", WANT)  # was: no subtitles at all
    assert result["subtitles"] == [{"stream": 1, "codec": "srt", "written_as": "mov_text", "packets": 3}]
    run(vsr, srt_mkv, tmp_path / "out.webm", "--codec", "libvpx-vp9")
    assert cues_of(tmp_path / "out.webm") == ("webvtt", "fra", WANT)


def test_mov_text_goes_to_matroska_as_ass_and_a_ts_output_says_it_has_none(srt_mkv: Path, tmp_path: Path,
                                                                             vsr: Any) -> None:
    phone = tmp_path / "phone.mp4"
    run(vsr, srt_mkv, phone)
    run(vsr, phone, tmp_path / "out.mkv")
    assert cues_of(tmp_path / "out.mkv") == ("ass", "fra", WANT)
    run(vsr, phone, tmp_path / "out.mov")
    assert cues_of(tmp_path / "out.mov") == ("mov_text", "fra", WANT)
    code, result, err = vsr(str(phone), "-o", str(tmp_path / "out.ts"))
    assert code == 0 and "not copying subtitle stream #1 (mov_text)" in err, err
    assert result["subtitles"] == [{"stream": 1, "codec": "mov_text", "written_as": None, "packets": 0}]
    with av.open(str(tmp_path / "out.ts")) as c:
        assert not c.streams.subtitles and len([f for f in c.decode(video=0)]) == FRAMES


def test_converted_cues_keep_their_times_when_the_video_is_chunked(srt_mkv: Path, tmp_path: Path,
                                                                    vsr: Any) -> None:
    """Cues are converted once, at the final join of the chunks' segments: chunking changes nothing."""
    run(vsr, srt_mkv, tmp_path / "chunked.mp4", "--chunk", "7")
    assert cues_of(tmp_path / "chunked.mp4") == ("mov_text", "fra", WANT)


def with_font(src: Path, out: Path, font: bytes) -> Path:
    """``src`` remuxed into Matroska with a font attached, as a fansub rip carries the fonts its ASS
    subtitles are styled with."""
    with av.open(str(src)) as inp, av.open(str(out), "w") as dst:
        kept = [s for s in inp.streams if s.type in ("video", "subtitle")]
        streams = {s.index: dst.add_stream_from_template(s) for s in kept}
        for s in kept:
            streams[s.index].metadata.update(s.metadata)  # the track's language
        dst.add_attachment("Styled-Font.ttf", "application/x-truetype-font", font)
        for p in inp.demux(*[inp.streams[i] for i in streams]):
            if p.size:
                p.stream = streams[p.stream_index]
                dst.mux(p)
    return out


def test_a_rips_fonts_are_kept_in_matroska_and_said_to_be_lost_in_mp4(srt_mkv: Path, tmp_path: Path,
                                                                       vsr: Any) -> None:
    """The attached font reaches a Matroska output byte for byte (before: dropped without a word, and the
    ASS cues were drawn in a fallback font); MP4 cannot hold it: a warning, ``written`` false, the job
    done."""
    font = bytes(range(256)) * 40  # the bytes are copied, not read: any payload stands for a font
    phone = tmp_path / "phone.mp4"
    run(vsr, srt_mkv, phone)
    run(vsr, phone, tmp_path / "ass.mkv")  # an ASS track with its header
    rip = with_font(tmp_path / "ass.mkv", tmp_path / "rip.mkv", font)
    result = run(vsr, rip, tmp_path / "out.mkv", "--chunk", "20")
    assert result["attachments"] == [{"name": "Styled-Font.ttf", "mimetype": "application/x-truetype-font",
                                      "bytes": len(font), "written": True}]
    with av.open(str(tmp_path / "out.mkv")) as c:
        attached = [s for s in c.streams if s.type == "attachment"]
        assert [(s.name, s.mimetype, s.data) for s in attached] == [
            ("Styled-Font.ttf", "application/x-truetype-font", font)]
    assert cues_of(tmp_path / "out.mkv") == ("ass", "fra", WANT)
    code, result, err = vsr(str(rip), "-o", str(tmp_path / "out.mp4"))
    assert code == 0 and "1 attachment(s) of the input (Styled-Font.ttf) not copied" in err, err
    assert result["attachments"][0]["written"] is False
    assert cues_of(tmp_path / "out.mp4") == ("mov_text", "fra", WANT)


def test_a_subtitle_stream_that_cannot_be_converted_is_left_out_not_the_job(tmp_path: Path, vsr: Any) -> None:
    """An ASS track without its header cannot open MP4's mov_text encoder: the track is left out with a
    warning. Before, the stream had been added to the output and its header failed the whole job at the
    final join ("joining segments failed (Invalid data found when processing input)")."""
    path = tmp_path / "bare.mkv"
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=25)
        video.width, video.height, video.pix_fmt = 48, 32, "yuv420p"
        out.add_stream("ass")  # no header, no cues
        for frame in textured_frames(FRAMES, 48, 32):
            out.mux(video.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        out.mux(video.encode(None))
    code, result, err = vsr(str(path), "-o", str(tmp_path / "out.mp4"))
    assert code == 0 and "converting it to mov_text failed" in err, err
    assert result["subtitles"][0]["written_as"] is None
    with av.open(str(tmp_path / "out.mp4")) as c:
        assert not c.streams.subtitles and len(list(c.decode(video=0))) == FRAMES
