"""Fuzzing (hypothesis, bounded): mutated small video files through probe and decoding, random YAML through
model-config parsing, random flag values through the CLI and the encoder's settings. The only outcomes
allowed are success or the clean error (a ``VsrError``: one line, a documented exit code)."""

from __future__ import annotations

import os
import tempfile
from fractions import Fraction
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import make_clip, textured_frames
from vsr_pipeline.cli import main
from vsr_pipeline.config import load_model_config
from vsr_pipeline.errors import EXIT_INTERNAL, VsrError
from vsr_pipeline.media import EncodeSettings, FrameReader, probe
from workers.encoder import Encoder, SegmentTarget

#: Examples per property: 60 in the suite (derandomized, so CI is repeatable); VSR_FUZZ_EXAMPLES=N for a
#: longer random campaign.
EXAMPLES = int(os.environ.get("VSR_FUZZ_EXAMPLES", "60"))
BOUNDED = settings(
    max_examples=EXAMPLES,
    derandomize="VSR_FUZZ_EXAMPLES" not in os.environ,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

_SEEDS: dict[str, bytes] = {}


def seed_file(ext: str) -> bytes:
    """A 6-frame 16x16 clip (MP4 with AAC audio, or MKV), made once."""
    if ext not in _SEEDS:
        with tempfile.TemporaryDirectory() as d:
            path = make_clip(Path(d) / f"seed.{ext}", textured_frames(6, 16, 16), audio=ext == "mp4")
            _SEEDS[ext] = path.read_bytes()
    return _SEEDS[ext]


mutations = st.lists(
    st.one_of(
        st.tuples(st.just("flip"), st.floats(0, 1), st.integers(1, 255)),
        st.tuples(st.just("cut"), st.floats(0, 1), st.just(0)),
        st.tuples(st.just("insert"), st.floats(0, 1), st.integers(0, 255)),
        st.tuples(st.just("zero"), st.floats(0, 1), st.integers(1, 64)),
    ),
    min_size=1,
    max_size=6,
)


def mutate(data: bytes, ops: list[tuple[str, float, int]]) -> bytes:
    buf = bytearray(data)
    for op, where, value in ops:
        if not buf:
            break
        i = min(len(buf) - 1, int(where * len(buf)))
        if op == "flip":
            buf[i] ^= value
        elif op == "cut":
            del buf[i:]
        elif op == "insert":
            buf[i:i] = bytes([value]) * 8
        else:
            buf[i : i + value] = bytes(len(buf[i : i + value]))
    return bytes(buf)


@BOUNDED
@given(ext=st.sampled_from(["mp4", "mkv"]), ops=mutations, mode=st.sampled_from(["fail", "repeat", "skip"]))
def test_mutated_video_probes_and_decodes_or_fails_cleanly(ext: str, ops: list, mode: str) -> None:
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / f"m.{ext}"
        path.write_bytes(mutate(seed_file(ext), ops))
        try:
            info = probe(path)
            with FrameReader(path, on_corrupt=mode) as reader:
                total = 0
                while True:
                    frames, pts = reader.read(4)
                    if not pts:
                        break
                    assert frames.shape[1:] == (info.height, info.width, 3) and len(frames) == len(pts)
                    total += len(pts)
        except VsrError as exc:
            assert str(exc) and "\n" not in str(exc).strip()
            return
        if mode != "fail":
            assert total >= info.frames  # repeat/skip keep every frame probe counted (skip marks them)


yaml_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10, 10**6) | st.floats(allow_nan=True) | st.text(max_size=12),
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=10), kids, max_size=4),
    max_leaves=12,
)
config_docs = st.one_of(
    yaml_values,
    st.fixed_dictionaries(
        {"model": st.sampled_from(["espcn", "edsr-baseline", "vespcn", "nope", "", 3])},
        optional={"scale": st.one_of(st.integers(-2, 9), st.text(max_size=3)), "weights": yaml_values,
                  "backbone": yaml_values, "arch": yaml_values},
    ),
)


@BOUNDED
@given(doc=config_docs, raw=st.one_of(st.none(), st.binary(max_size=64)))
def test_random_model_config_parses_or_fails_cleanly(doc: object, raw: bytes | None) -> None:
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "model.yaml"
        if raw is None:
            path.write_text(yaml.safe_dump(doc), encoding="utf-8")
        else:
            path.write_bytes(raw)
        try:
            cfg = load_model_config(path)
        except VsrError as exc:
            assert str(exc) and "\n" not in str(exc).strip()
            return
        assert isinstance(cfg, dict) and "model" in cfg


flag_values = st.one_of(st.integers(-(10**9), 10**9).map(str), st.text(max_size=8), st.sampled_from(
    ["0", "-1", "1e9", "nan", "inf", "1/0", "30000/1001", "", " ", "--", "auto", "cpu", "cuda"]))
FLAGS = ["--scale", "--chunk", "--padding", "--batch", "--crf", "--preset", "--codec", "--fps", "--model",
         "--weights", "--device", "--retries", "--on-corrupt", "--backbone", "--align", "--aligned-dtype"]


@BOUNDED
@given(flags=st.lists(st.tuples(st.sampled_from(FLAGS), flag_values), max_size=5))
def test_random_cli_values_fail_cleanly(
    flags: list[tuple[str, str]], capsys: pytest.CaptureFixture[str]
) -> None:
    """The input is missing, so no job can run: every outcome must be a clean non-internal error."""
    args = ["upscale", "/nonexistent/in.mp4", "-o", "/nonexistent/out.mp4", "--no-progress"]
    for flag, value in flags:
        args += [f"{flag}={value}"]
    try:
        code = main(args)
    except SystemExit as exc:  # argparse's own one-line error
        code = int(exc.code or 0)
    err = capsys.readouterr().err
    assert code not in (0, EXIT_INTERNAL), err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err


@settings(max_examples=25, deadline=None, derandomize=True)
@given(
    codec=st.one_of(
        st.sampled_from(["libx264", "libx265", "mpeg4", "aac", "png", "rawvideo"]), st.text(max_size=8)
    ),
    crf=st.integers(-100, 100),
    preset=st.one_of(st.sampled_from(["ultrafast", "medium"]), st.text(max_size=6)),
)
def test_random_encoder_settings_fail_cleanly(codec: str, crf: int, preset: str) -> None:
    with tempfile.TemporaryDirectory() as d:
        src = Path(d) / "in.mp4"
        src.write_bytes(seed_file("mp4"))
        info = probe(src)
        try:
            target = SegmentTarget(str(Path(d) / "out.mp4"), info, 2, EncodeSettings(codec, crf, preset), d)
            enc = Encoder(target)
            enc.write_segment(0, textured_frames(2, 32, 32), [0, 1])
        except VsrError as exc:
            assert str(exc) and "\n" not in str(exc).strip()
        assert Fraction(1, 1)
