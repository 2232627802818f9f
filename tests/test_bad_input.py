"""Bad input of every kind: one line on stderr naming the problem, a documented exit code, no traceback,
no hang, no output file. Valid but unusual input (1x1, odd sizes, 10-bit, rotation, VFR, no frame count in
the header, a truncated MKV, damaged packets) is processed, not refused.

``CASES`` is also what ``benchmarks/reliability_bad_input_table.py`` runs to make the table in
docs/reliability.md.
"""

from __future__ import annotations

import json
import os
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from tests.conftest import flip_packet_bytes, make_clip, textured_frames
from vsr_pipeline import errors
from vsr_pipeline.cli import main
from vsr_pipeline.media import VideoWriter, probe

OK = 0


@dataclass(frozen=True)
class Case:
    """``make(tmp) -> (args after 'vsr', output path)``; ``code`` expected; ``words`` in the error line;
    ``check(output)`` for inputs that must be processed."""

    name: str
    make: Callable[[Path], tuple[list[str], Path]]
    code: int
    words: tuple[str, ...] = ()
    check: Callable[[Path], None] | None = None


def _up(src: Path | str, out: Path, *extra: str) -> tuple[list[str], Path]:
    return ["upscale", str(src), "-o", str(out), "--model", "bicubic", "--scale", "2", "--no-progress",
            "--preset", "ultrafast", *extra], out


def _clip(tmp: Path, name: str = "in.mp4", n: int = 6, w: int = 16, h: int = 16, **kw: object) -> Path:
    return make_clip(tmp / name, textured_frames(n, w, h), **kw)  # type: ignore[arg-type]


def missing(tmp: Path) -> tuple[list[str], Path]:
    return _up(tmp / "nope.mp4", tmp / "o.mp4")


def folder_without_images(tmp: Path) -> tuple[list[str], Path]:
    (tmp / "docs").mkdir()
    (tmp / "docs" / "a.txt").write_text("notes\n")
    return _up(tmp / "docs", tmp / "o.mp4")


def zero_bytes(tmp: Path) -> tuple[list[str], Path]:
    (tmp / "empty.mp4").write_bytes(b"")
    return _up(tmp / "empty.mp4", tmp / "o.mp4")


def text_as_mp4(tmp: Path) -> tuple[list[str], Path]:
    (tmp / "notes.mp4").write_text("this is not a video\n" * 50)
    return _up(tmp / "notes.mp4", tmp / "o.mp4")


def image_as_mp4(tmp: Path) -> tuple[list[str], Path]:
    _, buf = cv2.imencode(".png", np.full((16, 16, 3), 128, np.uint8))
    (tmp / "photo.mp4").write_bytes(buf.tobytes())
    return _up(tmp / "photo.mp4", tmp / "o.mp4")


def truncated(fraction: float, ext: str = "mp4") -> Callable[[Path], tuple[list[str], Path]]:
    def make(tmp: Path) -> tuple[list[str], Path]:
        data = _clip(tmp, f"full.{ext}", n=12, w=32, h=24).read_bytes()
        (tmp / f"cut.{ext}").write_bytes(data[: int(len(data) * fraction)])
        return _up(tmp / f"cut.{ext}", tmp / "o.mp4")

    make.__name__ = f"truncated_{ext}_{int(fraction * 100)}"
    return make


def flipped_bytes(*extra: str) -> Callable[[Path], tuple[list[str], Path]]:
    def make(tmp: Path) -> tuple[list[str], Path]:
        flipped = flip_packet_bytes(_clip(tmp, "clean.mp4", n=20, w=32, h=24), tmp / "flipped.mp4")
        return _up(flipped, tmp / "o.mp4", *extra)

    make.__name__ = "flipped_bytes" + "_".join(a.strip("-").replace("-", "_") for a in ("", *extra))
    return make


def audio_only(tmp: Path) -> tuple[list[str], Path]:
    with av.open(str(tmp / "song.m4a"), "w") as out:
        a = out.add_stream("aac", rate=48000)
        a.layout = "mono"
        for k in range(10):
            f = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="flt", layout="mono")
            f.sample_rate, f.pts = 48000, k * 1024
            out.mux(a.encode(f))
        out.mux(a.encode())
    return _up(tmp / "song.m4a", tmp / "o.mp4")


def zero_video_frames(tmp: Path) -> tuple[list[str], Path]:
    """A video stream with no packets (the container holds only audio data)."""
    with av.open(str(tmp / "novideo.mkv"), "w") as out:
        v = out.add_stream("libx264", rate=25)
        v.width = v.height = 16
        v.pix_fmt = "yuv420p"
        a = out.add_stream("aac", rate=48000)
        a.layout = "mono"
        for k in range(5):
            f = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="flt", layout="mono")
            f.sample_rate, f.pts = 48000, k * 1024
            out.mux(a.encode(f))
        out.mux(a.encode())
    return _up(tmp / "novideo.mkv", tmp / "o.mp4")


def huge_frame(tmp: Path) -> tuple[list[str], Path]:
    """A PNG whose header says 200000x200000: refused from the header, with the estimate."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 200000, 200000, 8, 2, 0, 0, 0))
    (tmp / "big").mkdir()
    (tmp / "big" / "0001.png").write_bytes(png + chunk(b"IEND", b""))
    return _up(tmp / "big", tmp / "o.mp4")


def output_is_input(tmp: Path) -> tuple[list[str], Path]:
    src = _clip(tmp)
    return _up(src, src)


def output_dir_not_writable(tmp: Path) -> tuple[list[str], Path]:
    src = _clip(tmp)
    if os.geteuid() == 0:  # root writes anywhere a mode allows nothing; /proc takes no new files
        return _up(src, Path("/proc/o.mp4"))
    locked = tmp / "locked"
    locked.mkdir(mode=0o500)
    return _up(src, locked / "o.mp4")


def output_dir_missing(tmp: Path) -> tuple[list[str], Path]:
    return _up(_clip(tmp), tmp / "no" / "such" / "o.mp4")


def existing_output(tmp: Path) -> tuple[list[str], Path]:
    (tmp / "o.mp4").write_bytes(b"precious")
    return _up(_clip(tmp), tmp / "o.mp4")


def avi_output(tmp: Path) -> tuple[list[str], Path]:
    """Refused before any work: its chunks could not be joined (the job used to fail at the very end)."""
    return _up(_clip(tmp), tmp / "o.avi", "--chunk", "2")


def mpg_output(tmp: Path) -> tuple[list[str], Path]:
    """A file type FFmpeg writes but vsr does not: it used to become a folder of PNGs named ``o.mpg``."""
    return _up(_clip(tmp), tmp / "o.mpg")


def encoder_flags_for_frames(tmp: Path) -> tuple[list[str], Path]:
    """--codec for a folder of PNGs does nothing: said in a warning, and the frames are written."""
    return _up(_clip(tmp), tmp / "frames", "--codec", "libx265")


def unsupported_scale(tmp: Path) -> tuple[list[str], Path]:
    args, out = _up(_clip(tmp), tmp / "o.mp4")
    args[args.index("--scale") + 1] = "5"
    return args, out


def bad_yaml_field(tmp: Path) -> tuple[list[str], Path]:
    (tmp / "run.yaml").write_text("model: espcn\nscale: 2\nlearning_rate: fast\n")
    return ["train", str(tmp / "run.yaml"), "--no-progress"], tmp / "runs"


def bad_on_corrupt(tmp: Path) -> tuple[list[str], Path]:
    return _up(_clip(tmp), tmp / "o.mp4", "--on-corrupt", "ignore")


def unknown_codec(tmp: Path) -> tuple[list[str], Path]:
    args, out = _up(_clip(tmp), tmp / "o.mp4")
    return [*args, "--codec", "nosuchcodec"], out


def x265_too_narrow(tmp: Path) -> tuple[list[str], Path]:
    """20x16 x2: 40 px wide, where libx265 corrupts its heap and aborts the process (33-48 px measured)."""
    args, out = _up(_clip(tmp, w=20, h=16), tmp / "o.mp4")
    return [*args, "--codec", "libx265"], out


def mixed_size_folder(tmp: Path) -> tuple[list[str], Path]:
    (tmp / "frames").mkdir()
    cv2.imwrite(str(tmp / "frames" / "1.png"), np.zeros((16, 16, 3), np.uint8))
    cv2.imwrite(str(tmp / "frames" / "2.png"), np.zeros((16, 18, 3), np.uint8))
    return _up(tmp / "frames", tmp / "o")


# ---- valid but unusual: processed ------------------------------------------------------------------


def tiny_1x1(tmp: Path) -> tuple[list[str], Path]:
    return _up(_clip(tmp, w=1, h=1), tmp / "o.mp4")


def odd_size(tmp: Path) -> tuple[list[str], Path]:
    return _up(_clip(tmp, w=17, h=13), tmp / "o.mkv")


def ten_bit(tmp: Path) -> tuple[list[str], Path]:
    with av.open(str(tmp / "ten.mkv"), "w") as out:
        v = out.add_stream("libx264", rate=25)
        v.width, v.height, v.pix_fmt = 16, 16, "yuv420p10le"
        for f in textured_frames(6, 16, 16):
            out.mux(v.encode(av.VideoFrame.from_ndarray(f, format="rgb24").reformat(format="yuv420p10le")))
        out.mux(v.encode())
    return _up(tmp / "ten.mkv", tmp / "o.mp4")


def rotated(tmp: Path) -> tuple[list[str], Path]:
    with VideoWriter(tmp / "rot.mp4", 32, 24, Fraction(1, 25), Fraction(25), rotation=90) as w:
        w.write(textured_frames(5, 32, 24), list(range(5)))
    return _up(tmp / "rot.mp4", tmp / "o.mp4")


def variable_rate(tmp: Path) -> tuple[list[str], Path]:
    return _up(_clip(tmp, n=8, pts=[0, 1, 3, 4, 7, 8, 12, 13]), tmp / "o.mp4")


def no_frame_count(tmp: Path) -> tuple[list[str], Path]:
    """MKV headers carry no frame count (probe counts packets)."""
    return _up(_clip(tmp, "in.mkv", n=7), tmp / "o.mkv")


def raw_h264(tmp: Path) -> tuple[list[str], Path]:
    """A recorder's raw H.264 export (.264): no container, no pts; its VUI says 12800 fps (x264 told its
    MP4 time base), which numbered the frames 1/12800 s apart; and the quality report crashed."""
    mp4 = _clip(tmp, "cam.mp4", n=6, w=32, h=32, time_base=Fraction(1, 12800),
                pts=[512 * i for i in range(6)])
    raw = tmp / "cam.264"
    with av.open(str(mp4)) as c, av.open(str(raw), "w", format="h264") as o:
        s = o.add_stream_from_template(c.streams.video[0])
        for p in c.demux(c.streams.video[0]):
            if p.size:
                p.stream = s
                o.mux(p)
    mp4.unlink()
    return _up(raw, tmp / "o.mp4")


def _raw_h264_checked(out: Path) -> None:
    _frames(6, 64, 64)(out)
    with av.open(str(out)) as c:
        s = c.streams.video[0]
        times = sorted(f.pts * s.time_base for f in c.decode(s))
    assert [t - times[0] for t in times] == [Fraction(i, 25) for i in range(6)]  # a raw stream's 25 (FFmpeg)
    manifest = json.loads(Path(f"{out}.vsr.json").read_text())
    assert "error" not in manifest["quality"] and manifest["quality"]["frames_checked"] == 6


def _frames(n: int, w: int, h: int, rotation: int = 0) -> Callable[[Path], None]:
    def check(out: Path) -> None:
        info = probe(out)
        assert (info.frames, info.width, info.height, info.rotation) == (n, w, h, rotation)

    return check


def _frames_in_folder(out: Path, n: int) -> None:
    assert out.is_dir() and len(list(out.glob("*.png"))) == n


def _same_pts_as(name: str) -> Callable[[Path], None]:
    def check(out: Path) -> None:
        def pts(p: Path) -> list[Fraction]:
            with av.open(str(p)) as c:
                s = c.streams.video[0]
                return sorted(f.pts * s.time_base for f in c.decode(s))

        assert pts(out) == pts(out.parent / name)

    return check


CASES = [
    Case("missing path", missing, errors.EXIT_INPUT, ("nope.mp4", "no such file")),
    Case("folder of non-images", folder_without_images, errors.EXIT_INPUT, ("no images",)),
    Case("zero-byte file", zero_bytes, errors.EXIT_INPUT, ("empty file",)),
    Case("text renamed .mp4", text_as_mp4, errors.EXIT_INPUT, ("notes.mp4", "not a readable media file")),
    Case("image renamed .mp4", image_as_mp4, errors.EXIT_INPUT, ("PNG image, not a video",)),
    Case("MP4 truncated at 10%", truncated(0.1), errors.EXIT_INPUT, ("cut.mp4",)),
    Case("MP4 truncated at 50%", truncated(0.5), errors.EXIT_INPUT, ("cut.mp4",)),
    Case("MP4 truncated at 90%", truncated(0.9), errors.EXIT_INPUT, ("cut.mp4",)),
    Case("MKV truncated at 30%", truncated(0.3, "mkv"), errors.EXIT_INPUT, ("cut.mkv",)),
    Case("MKV truncated at 90% (the frames before the cut)", truncated(0.9, "mkv"), OK),
    Case("bytes flipped in packets, --on-corrupt fail", flipped_bytes("--on-corrupt", "fail"),
         errors.EXIT_INPUT, ("cannot be decoded", "--on-corrupt")),
    Case("bytes flipped in packets (default repeat)", flipped_bytes(), OK, check=_frames(20, 64, 48)),
    Case("audio only", audio_only, errors.EXIT_INPUT, ("no video stream",)),
    Case("zero video frames", zero_video_frames, errors.EXIT_INPUT, ("no frames",)),
    Case("frame too large for memory", huge_frame, errors.EXIT_RESOURCES, ("GiB", "200000x200000")),
    Case("folder of images of different sizes", mixed_size_folder, errors.EXIT_INPUT, ("differs",)),
    Case("output path equals input", output_is_input, errors.EXIT_USAGE, ("is the input",)),
    Case("output folder not writable", output_dir_not_writable, errors.EXIT_USAGE, ("not writable",)),
    Case("output folder missing", output_dir_missing, errors.EXIT_USAGE, ("does not exist",)),
    Case("AVI output", avi_output, errors.EXIT_USAGE, ("AVI output is not supported",)),
    Case("MPEG program stream output (.mpg)", mpg_output, errors.EXIT_USAGE,
         (".mpg is a file type vsr does not write", "mpeg2video into .ts")),
    Case("existing output without --overwrite", existing_output, errors.EXIT_USAGE, ("--overwrite",)),
    Case("scale the model lacks", unsupported_scale, errors.EXIT_USAGE, ("supports scale",)),
    Case("YAML config with a wrong field", bad_yaml_field, errors.EXIT_USAGE,
         ("unknown field 'learning_rate'",)),
    Case("bad --on-corrupt value", bad_on_corrupt, errors.EXIT_USAGE, ("--on-corrupt",)),
    Case("unknown codec", unknown_codec, errors.EXIT_INPUT, ("nosuchcodec",)),
    Case("libx265 output 40 px wide", x265_too_narrow, errors.EXIT_INPUT,
         ("libx265", "33 to 48 px", "libx264")),
    Case("1x1 video", tiny_1x1, OK, check=_frames(6, 2, 2)),
    Case("odd size 17x13", odd_size, OK, check=_frames(6, 34, 26)),
    Case("10-bit input", ten_bit, OK, check=_frames(6, 32, 32)),
    Case("rotation metadata (90)", rotated, OK, check=_frames(5, 64, 48, rotation=90)),
    Case("variable frame rate", variable_rate, OK, check=_same_pts_as("in.mp4")),
    Case("no frame count in the header (MKV)", no_frame_count, OK, check=_frames(7, 32, 32)),
    Case("raw H.264 export (.264, no pts, VUI 12800 fps)", raw_h264, OK, check=_raw_h264_checked),
    Case("--codec for a folder of PNG frames (a warning)", encoder_flags_for_frames, OK,
         check=lambda out: _frames_in_folder(out, 6)),
]


def run_cli(args: list[str]) -> int:
    """``vsr ARGS`` in this process; argparse's own errors arrive as SystemExit."""
    try:
        return main(args)
    except SystemExit as exc:
        return int(exc.code or 0)


@pytest.mark.usefixtures("ray_local")
@pytest.mark.parametrize("case", CASES, ids=[c.make.__name__ for c in CASES])
def test_bad_input(case: Case, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args, out = case.make(tmp_path)
    before = set(out.parent.iterdir()) if out.parent.is_dir() and out.parent != Path("/proc") else set()
    code = run_cli(args)
    err = capsys.readouterr().err
    lines = [ln for ln in err.strip().splitlines() if ln.startswith("vsr") and " error: " in ln]
    assert "Traceback" not in err
    assert code == case.code, err
    if case.code == OK:
        assert not lines, err
        if case.check is not None:
            case.check(out)
        return
    assert len(lines) == 1, err
    for word in case.words:
        assert word in lines[0], lines[0]
    after = set(out.parent.iterdir()) if out.parent.is_dir() and out.parent != Path("/proc") else set()
    assert not after - before, after - before  # no output, no partial file, no empty job folder
    if out.exists() and case.make is existing_output:
        assert out.read_bytes() == b"precious"


def test_at_least_twenty_kinds() -> None:
    assert len({c.make.__name__ for c in CASES}) >= 20
