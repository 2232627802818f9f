"""Provenance manifests: ``OUTPUT.vsr.json`` beside every finished file job, and ``vsr verify``.

A manifest records what made an output and how to recognise it again: SHA-256 of the input and the
output (a frame folder: of each file, plus one combined digest, the SHA-256 of the ``sha256sum``-style
lines ``<hex>  <name>\\n`` in frame order), the model and its weights' SHA-256, every setting, software
versions, device, start and end times (UTC, ISO 8601), the input-to-output frame and pts mapping, and the
job's quality report (``vsr_pipeline.check``). It is written atomically after the output is complete, so
it never exists for a failed job; an existing one is replaced only with ``overwrite``.

``verify(MANIFEST)`` hashes the files again: the output is looked for beside the manifest (by its name, so
the pair can be moved together), the input at its recorded path.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
import time
from collections.abc import Sequence
from dataclasses import asdict
from datetime import UTC, datetime
from fractions import Fraction
from pathlib import Path
from typing import Any

from vsr_pipeline.errors import EXIT_INPUT, ResourceError, UsageError, VsrError
from vsr_pipeline.ledger import file_sha256
from vsr_pipeline.media import MediaError, VideoInfo, list_images, probe
from vsr_pipeline.media.seek import scan
from vsr_pipeline.options import UpscaleOptions

log = logging.getLogger(__name__)

MANIFEST_SUFFIX = ".vsr.json"
MANIFEST_KIND = "vsr-pipeline upscale manifest"
MANIFEST_VERSION = 1
#: ``vsr verify``: a file's content differs from the manifest (a missing or unreadable file: EXIT_INPUT)
EXIT_MISMATCH = 9


class ManifestError(VsrError):
    """A manifest that is missing, unreadable or not a manifest."""

    exit_code = EXIT_INPUT


def manifest_path(output: str | os.PathLike[str]) -> Path:
    """``OUTPUT.vsr.json`` beside ``output`` (a video file or a frame folder)."""
    out = Path(output)
    return out.parent / f"{out.name}{MANIFEST_SUFFIX}"


def check_manifest_free(output: str | os.PathLike[str], overwrite: bool) -> None:
    """UsageError when a manifest for ``output`` exists and ``overwrite`` is off."""
    path = manifest_path(output)
    if path.exists() and not overwrite:
        raise UsageError(f"manifest {path} exists (from an earlier job); pass --overwrite to replace it")


def digest(path: str | os.PathLike[str]) -> dict[str, Any]:
    """SHA-256 and size of a file; of a folder, every image in frame order and the combined digest."""
    p = Path(path)
    if not p.is_dir():
        return {"sha256": file_sha256(p), "bytes": p.stat().st_size}
    files = [{"name": f.name, "sha256": file_sha256(f), "bytes": f.stat().st_size} for f in list_images(p)]
    return {"sha256": combined_sha256(files), "bytes": sum(f["bytes"] for f in files), "files": files}


def combined_sha256(files: list[dict[str, Any]]) -> str:
    return hashlib.sha256("".join(f"{f['sha256']}  {f['name']}\n" for f in files).encode()).hexdigest()


def segment_software() -> dict[str, str | None]:
    """The versions a job's segments depend on (a ledger setting): a rerun after an upgrade must not join
    segments of two versions (torch's kernels round differently; x264 and FFmpeg come with PyAV)."""
    versions = software()
    return {k: versions[k] for k in ("vsr_pipeline", "torch", "av", "libavcodec")}


def software() -> dict[str, str | None]:
    """Versions of this package, Python, numpy, PyAV, FFmpeg's libavcodec (as PyAV reports it), torch, Ray."""
    import av
    import numpy as np

    import vsr_pipeline

    out: dict[str, str | None] = {
        "vsr_pipeline": vsr_pipeline.__version__, "python": platform.python_version(),
        "numpy": np.__version__,
        "av": av.__version__, "libavcodec": ".".join(map(str, av.library_versions.get("libavcodec", ()))),
        "ffmpeg": str(getattr(av, "ffmpeg_version_info", "")) or None,
    }
    for name in ("torch", "ray"):
        try:
            out[name] = __import__(name).__version__
        except ImportError:
            out[name] = None
    return out


def utc_iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, tz=UTC).isoformat(timespec="milliseconds")


def frame_mapping(
    info: VideoInfo, output: Path, corrupt: list[dict[str, Any]], on_corrupt: str, first: int = 0,
    decimated: Sequence[int] | None = None,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Timing of the output and one row per input frame: ``index_in``, ``pts_in`` (the input packet's, in
    the input's time base; None when the input's packets carry none), ``index_out``, ``pts_out`` (the
    output's, in its time base; None for a skipped frame), ``corrupt`` (undecodable: a stand-in, or left
    out) and ``pts_repaired`` (the output frame's time differs from the input packet's, once the output's
    constant start shift is taken off: ``shift_s``, the first mapped frame's output time minus its input
    time, e.g. MPEG-TS moving every stream by the encoder's B-frame delay and AAC priming; 0 for MP4/MOV/MKV).
    ``first``: the input frame the job started at (``--start``; ``info`` then counts the frames from it);
    ``index_in``, like ``corrupt``'s ``index``, is the input's own frame number. ``decimated`` (None: no
    ``--decimate``): the input frames it dropped (rows with ``decimated: True`` and no output frame); the
    kept frames are retimed by design (``media.decimate``), not repaired: ``pts_repaired`` is False.
    """
    idx_in = scan(info.path)
    pts_in: list[int | None] = list(idx_in.pts)
    if idx_in.missing_pts or idx_in.repair is not None:  # packet order is not frame order
        pts_in = decoded_pts(info.path)
    pts_in = pts_in[first : first + info.frames]
    if len(pts_in) != info.frames:
        pts_in = [None] * info.frames
    idx_out = scan(output)
    out_tb = None if idx_out.is_image_folder else probe(output).time_base
    lost, dropped = {int(c["index"]) for c in corrupt}, set(decimated or ())
    rows: list[dict[str, Any]] = []
    k = 0
    shift: Fraction | None = None
    for i, p in enumerate(pts_in, start=first):
        if (on_corrupt == "skip" and i in lost) or i in dropped:
            rows.append({"index_in": i, "pts_in": p, "index_out": None, "pts_out": None, "corrupt": i in lost,
                         "pts_repaired": False, **({"decimated": True} if i in dropped else {})})
            continue
        if k >= idx_out.frames:
            raise RuntimeError(f"{output}: {idx_out.frames} frames, fewer than the input's frames map to")
        q = idx_out.pts[k]
        if shift is None and p is not None and out_tb is not None:
            shift = Fraction(q) * out_tb - Fraction(p) * info.time_base
        t_in = None if p is None else Fraction(p) * info.time_base + (shift or 0)
        repaired = out_tb is not None and t_in != q * out_tb and decimated is None
        rows.append({"index_in": i, "pts_in": p, "index_out": k, "pts_out": q, "corrupt": i in lost,
                     "pts_repaired": repaired})
        k += 1
    if k != idx_out.frames:
        raise RuntimeError(f"{output}: {idx_out.frames} frames, but {k} input frames map to it")
    timing = {"time_base_in": str(info.time_base), "time_base_out": str(out_tb) if out_tb else None,
              "shift_s": float(shift or 0), "keyframes_out": list(idx_out.keyframes)}
    return timing, rows


def decoded_pts(path: str | os.PathLike[str]) -> list[int | None]:
    """Every decoded frame's own pts (its dts where it has none), in the order the decoder gives them."""
    import av

    from vsr_pipeline.media.probe import main_video, open_input

    with open_input(path) as c:
        stream = main_video(c)
        stream.thread_type = "AUTO"
        try:
            return [f.pts if f.pts is not None else f.dts for f in c.decode(stream)]
        except av.FFmpegError:
            return []


def _settings(opts: UpscaleOptions) -> dict[str, Any]:
    return {k: str(v) if isinstance(v, Fraction) else v for k, v in asdict(opts).items()}


def write_job_manifest(
    input_path: Path,
    output: Path,
    opts: UpscaleOptions,
    info: VideoInfo,
    settings: dict[str, Any],
    result: dict[str, Any],
    corrupt: list[dict[str, Any]],
    started: float,
    ended: float,
    decimated: Sequence[int] | None = None,
) -> tuple[Path, dict[str, Any]]:
    """Compute the quality report and write the manifest of a finished job; returns (its path, the report).
    ``settings``: the job's ledger settings (``job.job_settings``), ``result``: ``UpscaleResult.to_json()``,
    ``corrupt``: every undecodable frame, ``started``/``ended``: epoch seconds, ``decimated``: the input
    frames ``--decimate`` dropped (None: no ``--decimate``)."""
    from vsr_pipeline.check import assumed_degradation, input_settings, quality_report

    first = opts.span[0] if opts.span else 0
    timing, rows = frame_mapping(info, output, corrupt, opts.on_corrupt, first, decimated)
    degradation = assumed_degradation(result["model"], result["weights"])
    pairs = [(r["index_in"] - first, r["index_out"]) for r in rows if r["index_out"] is not None]
    try:
        quality = quality_report(input_path, output, opts.scale, degradation, pairs, timing["keyframes_out"],
                                 input_settings(opts.deinterlace, opts.crop, opts.span, opts.field_match))
    except Exception as exc:  # the output is complete and stands: a report that fails says why, nothing more
        reason = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
        log.warning("%s: no quality report (%s)", output, reason)
        quality = {"error": reason}
    frames = {"in": result["frames_in"], "out": result["frames_out"], "corrupt": len(corrupt),
              "pts_repaired": sum(r["pts_repaired"] for r in rows)}
    for key in ("timestamps_repaired", "timestamps_renumbered", "concealed_frames", "decimated_frames"):
        if key in result:
            frames[key] = result[key]
    manifest = {
        "kind": MANIFEST_KIND,
        "version": MANIFEST_VERSION,
        "input": {"path": str(input_path.resolve()), **digest(input_path)},
        "output": {"path": str(output.resolve()), "name": output.name, **digest(output)},
        "model": {"name": result["model"], "weights": result["weights"],
                  "weights_sha256": settings.get("weights_sha256"), "scale": opts.scale,
                  "backbone": opts.backbone, "align": opts.align, "degradation": degradation},
        "settings": _settings(opts),  # as the job ran them (``precision auto`` resolved)
        **{k: result[k] for k in ("precision", "precision_reason") if k in result},
        "job_settings": settings,
        "software": software(),
        "device": result["device"],
        "started": utc_iso(started),
        "ended": utc_iso(ended),
        "frames": frames,
        "audio": result.get("audio", []),
        "subtitles": result.get("subtitles", []),
        **({"attachments": result["attachments"]} if result.get("attachments") else {}),  # a rip's fonts
        **({"hdr": result["hdr"]} if result.get("hdr") else {}),  # HDR10 metadata, and whether it was written
        "quality": quality,
        **{k: v for k, v in timing.items() if k != "keyframes_out"},
        "mapping": rows,
    }
    return _write(output, manifest, opts.overwrite), quality


def write_stream_manifest(source: str, output: Path, opts: UpscaleOptions, result: dict[str, Any],
                          read: dict[str, Any] | None, mapping: list[tuple[int | None, int, bool, int]],
                          started: float, ended: float) -> Path:
    """The manifest of a finished live-stream job (``vsr upscale -``, URLs). The input was read once: its
    record is the SHA-256 and size of the bytes read from stdin (``read``), or, for a URL that FFmpeg read,
    no hash (``path`` is None either way; ``vsr verify --input COPY`` checks a saved copy). ``mapping``: per
    frame handed to the model, (pts as read, pts given, stand-in for a lost frame, shift added to its
    connection's pts); frames are written in that order, so the output index is the input index. A URL
    opened again mid-stream (``result["reopened"]``) is recorded in the input, and its frames' rows carry
    ``pts_shift``: their own pts plus it is the pts given (not a repair)."""
    settings = _settings(opts)
    weights = None
    if opts.model:
        from models.registry import resolve_weights

        path = resolve_weights(opts.model, opts.weights, opts.scale)
        weights = file_sha256(path) if path is not None else None
    written = result["frames_out"]
    rows = [{"index_in": k, "pts_in": p_in, "index_out": k if k < written else None,
             "pts_out": p_out if k < written else None,
             "pts_repaired": (p_in if p_in is None else p_in + shift) != p_out and not standin,
             "corrupt": standin, **({"pts_shift": shift} if shift else {})}
            for k, (p_in, p_out, standin, shift) in enumerate(mapping)]
    source_record: dict[str, Any] = {"path": None, "source": "stdin" if source == "-" else source}
    if read is not None:
        source_record |= read | {"note": "SHA-256 of the bytes read from stdin (a stream is read once)"}
    else:
        source_record |= {"sha256": None, "note": "a URL read by FFmpeg: its bytes were not hashed"}
        if result.get("reopened"):
            source_record["reopened"] = result["reopened"]
            source_record["note"] += (f"; its reading failed and it was opened again {result['reopened']} "
                                      f"time(s): rows with pts_shift came from a later connection")
    manifest = {
        "kind": MANIFEST_KIND,
        "version": MANIFEST_VERSION,
        "input": source_record,
        "output": {"path": str(output.resolve()), "name": output.name, **digest(output)},
        "model": {"name": result["model"], "weights": opts.weights, "weights_sha256": weights,
                  "scale": opts.scale, "backbone": opts.backbone},
        "settings": settings,
        **{k: result[k] for k in ("precision", "precision_reason") if k in result},
        "software": software(),
        "device": result["device"],
        "started": utc_iso(started),
        "ended": utc_iso(ended),
        "frames": {"in": result["frames_in"], "out": written, "corrupt": result.get("repeated_frames", 0),
                   "pts_repaired": sum(r["pts_repaired"] for r in rows)},
        "audio": result.get("audio", []),
        **({"hdr": result["hdr"]} if result.get("hdr") else {}),
        "mapping": rows,
    }
    return _write(output, manifest, opts.overwrite)


def _write(output: Path, manifest: dict[str, Any], overwrite: bool) -> Path:
    """The manifest of the complete ``output``, written atomically beside it; returns its path."""
    path = manifest_path(output)
    try:
        write_atomic(path, dumps(manifest), overwrite)
    except OSError as exc:
        raise ResourceError(f"{output} is complete but its manifest {path} could not be written "
                            f"({exc.strerror or exc})") from None
    return path


def dumps(manifest: dict[str, Any]) -> str:
    """Indented JSON with one line per mapping row (a long video's manifest stays readable)."""
    head = json.dumps({k: v for k, v in manifest.items() if k != "mapping"}, indent=1, default=str)
    rows = ",\n  ".join(json.dumps(r) for r in manifest.get("mapping", []))
    return head[:-2] + (f',\n "mapping": [\n  {rows}\n ]\n}}\n' if rows else ',\n "mapping": []\n}\n')


def write_atomic(path: Path, text: str, overwrite: bool) -> None:
    """Write ``text`` to a hidden temporary sibling, fsync, rename over ``path`` (only with ``overwrite``
    when ``path`` exists)."""
    tmp = path.with_name(f".{path.name}.partial")
    try:
        with open(tmp, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        if path.exists() and not overwrite:
            raise UsageError(f"manifest {path} appeared while the job ran; not replaced")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def read_manifest(path: str | os.PathLike[str]) -> dict[str, Any]:
    p = Path(path)
    try:
        data = json.loads(p.read_text())
    except FileNotFoundError:
        raise ManifestError(f"{p}: no such manifest") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ManifestError(f"{p}: not a readable manifest ({type(exc).__name__}: {exc})") from None
    if not isinstance(data, dict) or data.get("kind") != MANIFEST_KIND:
        raise ManifestError(f"{p}: not a vsr manifest (no \"kind\": \"{MANIFEST_KIND}\")")
    if data.get("version") != MANIFEST_VERSION:
        raise ManifestError(f"{p}: manifest version {data.get('version')!r}; "
                            f"this vsr reads version {MANIFEST_VERSION}")
    return data


def read_beside(output: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The manifest beside ``output``, or None when there is none (a bad one is an error)."""
    path = manifest_path(output)
    return read_manifest(path) if path.exists() else None


def _check_one(role: str, target: Path, rec: dict[str, Any]) -> dict[str, Any]:
    """One file or folder against its record: status ``ok``, ``mismatch`` (``differs`` names the frame
    files that differ, are missing or extra) or ``missing`` (absent or unreadable)."""
    out: dict[str, Any] = {"role": role, "path": str(target), "expected": rec["sha256"], "actual": None,
                           "status": "ok"}
    try:
        if not target.exists():
            return out | {"status": "missing", "detail": "no such file or folder"}
        if target.is_dir() != ("files" in rec):
            return out | {"status": "mismatch",
                          "detail": "is a folder" if target.is_dir() else "is a file, not a folder"}
        now = digest(target)
    except (OSError, MediaError) as exc:
        return out | {"status": "missing", "detail": f"unreadable ({getattr(exc, 'strerror', None) or exc})"}
    out["actual"] = now["sha256"]
    if now["sha256"] == rec["sha256"]:
        return out
    out["status"] = "mismatch"
    if "files" in rec:
        old = {f["name"]: f["sha256"] for f in rec["files"]}
        new = {f["name"]: f["sha256"] for f in now["files"]}
        out["differs"] = sorted(n for n in old.keys() | new.keys() if old.get(n) != new.get(n))
        what = {n: "missing" if n not in new else "extra" if n not in old else "differs"
                for n in out["differs"]}
        out["detail"] = ", ".join(f"{n} {what[n]}" for n in out["differs"][:5]) + (
            " ..." if len(out["differs"]) > 5 else "")
    else:
        out["detail"] = f"SHA-256 {now['sha256'][:16]}... differs from the recorded {rec['sha256'][:16]}..."
    return out


def verify(path: str | os.PathLike[str], input_copy: str | os.PathLike[str] | None = None
           ) -> dict[str, Any]:
    """Hash the manifest's input and output again; ``exit_code`` 0 when both match, ``EXIT_INPUT`` when one
    is missing or unreadable, else ``EXIT_MISMATCH``; ``error`` names the first file that failed.
    ``input_copy``: check this file against the input's record instead (a live stream's input has no path:
    a saved copy of what was piped in; without one, or for a URL that was not hashed, the input counts as
    missing)."""
    started = time.perf_counter()
    p = Path(path)
    m = read_manifest(p)
    try:
        inp = m["input"]
        unverifiable = {"role": "input", "path": inp.get("source") or inp.get("path"), "actual": None,
                        "expected": inp.get("sha256"), "status": "missing"}
        if inp.get("sha256") is None:
            check_in = unverifiable | {"detail": "no hash recorded (a URL FFmpeg read): cannot be verified"}
        elif input_copy is not None:
            check_in = _check_one("input", Path(input_copy), inp)
        elif inp.get("path") is None:
            check_in = unverifiable | {"detail": "read once from a stream: pass --input with a saved copy"}
        else:
            check_in = _check_one("input", Path(inp["path"]), inp)
        checks = [check_in, _check_one("output", p.parent / m["output"]["name"], m["output"])]
    except (KeyError, TypeError) as exc:
        raise ManifestError(f"{p}: manifest lacks a field ({exc})") from None
    bad = [c for c in checks if c["status"] != "ok"]
    missing = [c for c in bad if c["status"] == "missing"]
    code = EXIT_INPUT if missing else EXIT_MISMATCH if bad else 0
    first = (missing or bad or [None])[0]
    error = None
    if first is not None:
        verb = "is missing or unreadable" if first["status"] == "missing" else "does not match the manifest"
        error = f"{first['role']} {first['path']} {verb}: {first['detail']}"
    return {"manifest": str(p), "ok": not bad, "files": checks, "error": error, "exit_code": code,
            "seconds": round(time.perf_counter() - started, 3)}
