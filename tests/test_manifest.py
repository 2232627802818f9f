"""Provenance manifests (``OUTPUT.vsr.json``) of real jobs, and ``vsr verify``: hashes, settings, versions,
the frame and pts mapping, atomic and never left by a failed job, replaced only with ``--overwrite``."""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import asdict
from datetime import datetime
from fractions import Fraction
from pathlib import Path

import av
import pytest
import ray
import torch

from models.registry import resolve_weights
from tests import faults
from tests.conftest import flip_packet_bytes, make_clip, textured_frames
from vsr_pipeline import UpscaleOptions, upscale
from vsr_pipeline.batch_runner import BatchOptions, run_batch
from vsr_pipeline.cli import main
from vsr_pipeline.errors import EXIT_INPUT, EXIT_USAGE, ChunkFailedError, UsageError
from vsr_pipeline.manifest import EXIT_MISMATCH, manifest_path, verify

pytestmark = pytest.mark.usefixtures("ray_local")

PTS = [0, 1, 2, 4, 5, 7, 8, 9, 12, 13, 14, 16, 17, 18]  # variable frame rate


def opts(**kw: object) -> UpscaleOptions:
    base: dict[str, object] = {"model": "espcn", "scale": 2, "chunk": 4, "progress": False}
    return UpscaleOptions(**(base | kw))  # type: ignore[arg-type]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def decoded_pts(path: Path) -> list[int]:
    with av.open(str(path)) as c:
        return [int(f.pts) for f in c.decode(c.streams.video[0])]


@pytest.fixture(scope="module")
def job(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, object]:
    d = tmp_path_factory.mktemp("job")
    src = make_clip(d / "in.mp4", textured_frames(len(PTS), 48, 32), pts=PTS, audio=True)
    res = upscale(src, d / "out.mp4", opts())
    return src, d / "out.mp4", res


def test_manifest_records_hashes_model_settings_versions_and_the_pts_mapping(job: tuple) -> None:
    src, out, res = job
    path = manifest_path(out)
    assert res.manifest == str(path) and path.name == "out.mp4.vsr.json"
    m = json.loads(path.read_text())
    assert m["input"]["sha256"] == sha256(src) and m["output"]["sha256"] == sha256(out)
    assert m["input"]["bytes"] == src.stat().st_size and m["output"]["name"] == "out.mp4"
    weights = resolve_weights("espcn", None, 2)
    assert m["model"] == {"name": "espcn", "weights": "photos-bi", "weights_sha256": sha256(weights),
                          "scale": 2, "backbone": None, "align": None, "degradation": "bi"}
    # as it ran: autos resolved (chroma "420" from "yuv420p")
    ran = opts(precision=res.precision, batch=res.batch, bit_depth=res.bit_depth, chroma=res.pix_fmt[3:6])
    want = {k: str(v) if isinstance(v, Fraction) else v for k, v in asdict(ran).items()}
    assert m["settings"] == json.loads(json.dumps(want))  # tuples as JSON lists
    assert m["job_settings"]["weights_sha256"] == sha256(weights) and m["job_settings"]["chunk"] == 4
    sw = m["software"]
    assert (sw["torch"], sw["av"], sw["ray"]) == (torch.__version__, av.__version__, ray.__version__)
    assert sw["libavcodec"] == ".".join(map(str, av.library_versions["libavcodec"])) and sw["python"]
    assert m["device"] == res.device
    started, ended = datetime.fromisoformat(m["started"]), datetime.fromisoformat(m["ended"])
    assert started.utcoffset() is not None and started.utcoffset().total_seconds() == 0
    assert 0 < (ended - started).total_seconds() <= res.seconds + 0.01
    assert m["frames"] == {"in": 14, "out": 14, "corrupt": 0, "pts_repaired": 0, "timestamps_repaired": 0,
                           "timestamps_renumbered": 0, "concealed_frames": 0, "decimated_frames": 0}
    rows = m["mapping"]
    assert [r["index_in"] for r in rows] == [r["index_out"] for r in rows] == list(range(14))
    assert [r["pts_in"] for r in rows] == decoded_pts(src)
    assert [r["pts_out"] for r in rows] == decoded_pts(out)
    with av.open(str(out)) as c:
        assert m["time_base_out"] == str(c.streams.video[0].time_base)
    assert not any(r["corrupt"] or r["pts_repaired"] for r in rows)
    assert m["quality"] == res.quality and not list(out.parent.glob(".*partial*"))


def test_verify_passes_then_names_the_tampered_output_and_the_missing_input(
    job: tuple, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src, out, _ = job
    assert verify(manifest_path(out))["exit_code"] == 0
    # the manifest and its output moved together still verify (the output is found beside the manifest)
    moved = tmp_path / "moved"
    moved.mkdir()
    shutil.copy(out, moved / out.name)
    shutil.copy(manifest_path(out), manifest_path(moved / out.name))
    code = main(["verify", str(manifest_path(moved / out.name)), "--json"])
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert code == 0 and result["ok"] and [f["status"] for f in result["files"]] == ["ok", "ok"]
    data = bytearray((moved / out.name).read_bytes())
    data[len(data) // 2] ^= 0x01  # one byte
    (moved / out.name).write_bytes(bytes(data))
    code = main(["verify", str(manifest_path(moved / out.name))])
    captured = capsys.readouterr()
    assert code == EXIT_MISMATCH
    err = captured.err.strip().splitlines()
    assert len(err) == 1 and "output" in err[0] and str(moved / out.name) in err[0] and "match" in err[0]
    assert "mismatch output" in captured.out and "ok       input" in captured.out
    # a missing input is a different code, naming the input
    copy = tmp_path / "in.mp4"
    shutil.copy(src, copy)
    shutil.copy(out, moved / out.name)
    m = json.loads(manifest_path(out).read_text())
    m["input"]["path"] = str(copy)
    manifest_path(moved / out.name).write_text(json.dumps(m))
    assert verify(manifest_path(moved / out.name))["exit_code"] == 0
    copy.unlink()
    code = main(["verify", str(manifest_path(moved / out.name))])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == EXIT_INPUT and len(err) == 1 and f"input {copy}" in err[0] and "missing" in err[0]
    assert main(["verify", str(tmp_path / "nope.vsr.json")]) == EXIT_INPUT
    (tmp_path / "bad.vsr.json").write_text("{not json")
    assert main(["verify", str(tmp_path / "bad.vsr.json")]) == EXIT_INPUT
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and "no such manifest" in err[0] and "not a readable manifest" in err[1]


def test_png_folder_manifest_hashes_every_frame_and_verify_names_the_changed_one(tmp_path: Path) -> None:
    src = make_clip(tmp_path / "in.mp4", textured_frames(6, 48, 32))
    out = tmp_path / "frames"
    res = upscale(src, out, opts(chunk=3))
    m = json.loads(manifest_path(out).read_text())
    assert res.manifest == str(tmp_path / "frames.vsr.json")
    names = sorted(p.name for p in out.iterdir())
    assert [f["name"] for f in m["output"]["files"]] == names and len(names) == 6
    assert [f["sha256"] for f in m["output"]["files"]] == [sha256(out / n) for n in names]
    lines = "".join(f"{sha256(out / n)}  {n}\n" for n in names)
    assert m["output"]["sha256"] == hashlib.sha256(lines.encode()).hexdigest()
    assert [r["pts_out"] for r in m["mapping"]] == list(range(6)) and m["time_base_out"] is None
    frame = out / names[3]
    data = bytearray(frame.read_bytes())
    data[-20] ^= 0x01
    frame.write_bytes(bytes(data))
    result = verify(manifest_path(out))
    assert result["exit_code"] == EXIT_MISMATCH and result["files"][1]["differs"] == [names[3]]
    assert f"{names[3]} differs" in result["error"]
    (out / names[5]).unlink()
    result = verify(manifest_path(out))
    assert result["files"][1]["differs"] == [names[3], names[5]] and f"{names[5]} missing" in result["error"]


def test_existing_manifest_is_kept_without_overwrite_and_replaced_with_it(tmp_path: Path) -> None:
    src = make_clip(tmp_path / "in.mp4", textured_frames(4, 48, 32))
    out = tmp_path / "out.mp4"
    manifest_path(out).write_text("precious")
    with pytest.raises(UsageError, match="--overwrite"):
        upscale(src, out, opts())
    assert manifest_path(out).read_text() == "precious" and not out.exists()
    code = main(["upscale", str(src), "-o", str(out), "--model", "espcn", "--scale", "2", "--no-progress"])
    assert code == EXIT_USAGE and manifest_path(out).read_text() == "precious" and not out.exists()
    res = upscale(src, out, opts(overwrite=True))
    assert json.loads(manifest_path(out).read_text())["output"]["sha256"] == sha256(out)
    assert res.manifest == str(manifest_path(out))


def test_failed_job_leaves_no_manifest(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = make_clip(tmp_path / "in.mp4", textured_frames(8, 48, 32))
    out = tmp_path / "out.mp4"
    faults.install(monkeypatch, "always:1")
    with pytest.raises(ChunkFailedError):
        upscale(src, out, opts(retries=0))
    assert not out.exists() and not manifest_path(out).exists()
    assert not [p for p in tmp_path.iterdir() if "vsr.json" in p.name]


def test_corrupt_frames_are_marked_in_the_mapping(tmp_path: Path) -> None:
    clean = make_clip(tmp_path / "clean.mp4", textured_frames(20, 32, 24))
    src = flip_packet_bytes(clean, tmp_path / "bad.mp4")
    rep = upscale(src, tmp_path / "rep.mp4", opts(model="bicubic", chunk=6))
    lost = {c["index"] for c in rep.corrupt}
    assert lost
    rows = json.loads(manifest_path(tmp_path / "rep.mp4").read_text())["mapping"]
    assert {r["index_in"] for r in rows if r["corrupt"]} == lost
    assert [r["pts_out"] for r in rows] == decoded_pts(tmp_path / "rep.mp4") == decoded_pts(clean)
    skip = upscale(src, tmp_path / "skip.mp4", opts(model="bicubic", chunk=6, on_corrupt="skip"))
    m = json.loads(manifest_path(tmp_path / "skip.mp4").read_text())
    rows = m["mapping"]
    assert [r["index_in"] for r in rows if r["index_out"] is None] == sorted(lost)
    kept = [r for r in rows if r["index_out"] is not None]
    assert [r["index_out"] for r in kept] == list(range(skip.frames_out))
    assert [r["pts_out"] for r in kept] == decoded_pts(tmp_path / "skip.mp4")
    assert [r["pts_in"] for r in kept] == [p for i, p in enumerate(decoded_pts(clean)) if i not in lost]
    assert m["frames"]["corrupt"] == len(lost) and m["frames"]["out"] == 20 - len(lost)


def test_upscale_json_and_batch_summary_name_the_manifest_and_quality(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = make_clip(tmp_path / "a.mp4", textured_frames(10, 48, 32))
    code = main(["upscale", str(src), "-o", str(tmp_path / "up.mkv"), "--model", "espcn", "--scale", "2",
                 "--no-progress", "--json"])
    r = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert code == 0 and r["manifest"] == str(tmp_path / "up.mkv.vsr.json")
    q = r["quality"]
    assert q["frames_checked"] == 10 and q["sample"] == "all frames" and q["flagged"] == []
    assert q["check_psnr_y_min"] > 35 and 0.9 < q["flicker_ratio"] < 1.1
    (tmp_path / "b.mp4").write_text("not a video")
    summary = run_batch([str(src), str(tmp_path / "b.mp4")],
                        BatchOptions(opts(), tmp_path / "batch", format="mkv"))
    ok, failed = summary["videos"]
    assert ok["status"] == "ok" and ok["manifest"] == str(tmp_path / "batch" / "a.mkv.vsr.json")
    assert ok["quality"]["check_psnr_y_mean"] > 35 and verify(ok["manifest"])["exit_code"] == 0
    assert failed["status"] == "failed" and failed["manifest"] is None
    assert not (tmp_path / "batch" / "b.mkv.vsr.json").exists()
    report = Path(summary["report"]).read_text()
    assert f"| {ok['quality']['check_psnr_y_mean']:.2f} / {ok['quality']['check_psnr_y_min']:.2f} |" in report


def test_repaired_timestamps_are_marked_in_the_mapping(tmp_path: Path) -> None:
    """An exporter that wrote pts 0 on every packet: the decoder repairs 9 of 10, and the mapping shows which
    (input pts 0, output pts one frame apart)."""
    valid = make_clip(tmp_path / "valid.mp4", textured_frames(10, 32, 24))
    zero = tmp_path / "zero.mp4"
    with av.open(str(valid)) as c, av.open(str(zero), "w") as out:
        s = c.streams.video[0]
        o = out.add_stream_from_template(s)
        for p in [p for p in c.demux(s) if p.size]:
            p.pts, p.dts, p.stream = 0, 0, o
            out.mux(p)
    res = upscale(zero, tmp_path / "out.mp4", opts(model="bicubic"))
    m = json.loads(manifest_path(tmp_path / "out.mp4").read_text())
    assert res.timestamps_repaired == 9 == m["frames"]["timestamps_repaired"] == m["frames"]["pts_repaired"]
    rows = m["mapping"]
    assert [r["pts_in"] for r in rows] == [0] * 10
    assert [r["pts_out"] for r in rows] == decoded_pts(tmp_path / "out.mp4") == decoded_pts(valid)
    assert [r["pts_repaired"] for r in rows] == [False] + [True] * 9
