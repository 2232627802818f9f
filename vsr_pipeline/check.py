"""``vsr check``: does an upscaled video agree with its input? Also the per-job quality report.

A super-resolved frame, degraded back with the kernel the model was trained against (``bi``: MATLAB-style
antialiased bicubic, ``bd``: Gaussian blur + decimation; ``vsr_pipeline.degrade``), should give its input
frame again. Per frame the *check PSNR* is ``metrics.psnr_y(degrade(output), input)`` (BT.601 studio-range
Y, no border crop, capped at :data:`PSNR_CAP_DB`). A frame is *flagged* when it falls far below the clip's
own typical value: below ``median - max(FLAG_K * 1.4826 * MAD, FLAG_FLOOR_DB)`` over the checked frames
(MAD: median absolute deviation; 1.4826 * MAD estimates the standard deviation of normal scatter, the floor
keeps clips whose frames all score alike from flagging fractions of a dB). Detail a model invented (a frame
replaced, hallucinated texture) does not degrade back to the input and is flagged.

*Flicker*: with ``D_t`` the Y of output frame ``t`` degraded to the input size and ``I_t`` the Y of input
frame ``t``, ``flicker_out`` = mean over consecutive checked pairs of ``mean |D_t - D_{t-1}|``,
``flicker_in`` the same of ``I``, ``flicker_ratio = flicker_out / flicker_in`` (None when the input does not
change). Near 1: the output changes from frame to frame as much as its input does; above 1: added flicker.

``quality_report`` computes both on a bounded sample of a finished job's frames (:func:`sample_runs`).
"""

from __future__ import annotations

import bisect
import re
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vsr_pipeline.degrade import degrade_bd, degrade_bi
from vsr_pipeline.errors import UsageError
from vsr_pipeline.media import FrameReader, ImageFolderWriter, MediaError, probe
from vsr_pipeline.media.crop import cropped_info, stored_region
from vsr_pipeline.media.reader import ReadSettings, open_reader
from vsr_pipeline.media.seek import SeekError
from vsr_pipeline.metrics import psnr_y, rgb_to_y

DEGRADATIONS = ("bi", "bd")
#: check PSNR of a frame that degrades back exactly (``inf``) is reported as this
PSNR_CAP_DB = 100.0
#: a frame is flagged below ``median - max(FLAG_K * 1.4826 * MAD, FLAG_FLOOR_DB)``
FLAG_K = 5.0
FLAG_FLOOR_DB = 3.0
#: heatmaps: this absolute Y difference (levels of 255) and above is the top colour of the map
HEATMAP_LEVELS = 32.0
#: the per-job sample: all frames up to SAMPLE_FRAMES, else SAMPLE_RUNS runs of SAMPLE_RUN frames
SAMPLE_FRAMES = 16
SAMPLE_RUN = 4
SAMPLE_RUNS = 4
#: ``vsr check`` exits with this when some frame is flagged
EXIT_FLAGGED = 10

_BD = re.compile(r"(^|[^a-z])bd(x\d+)?([^a-z]|$)", re.IGNORECASE)


def assumed_degradation(model: str, weights: str | None) -> str:
    """``bd`` when the weights were trained on blur-downsampled frames (their registered name or file name
    says ``bd``/``BDx4``, e.g. BasicVSR ``vimeo-bd``), else ``bi``."""
    from models.registry import get_spec

    names = [weights or ""]
    try:
        spec = get_spec(model)
        name = weights or spec.default_weights
        names += [name or "", spec.weights.get(name or "", "")]
    except ValueError:
        pass
    return "bd" if any(_BD.search(Path(n).name) for n in names if n) else "bi"


def degrade(frame: np.ndarray, scale: int, degradation: str) -> np.ndarray:
    """One HR frame back to the input size with ``bi`` or ``bd``."""
    return degrade_bi(frame, scale) if degradation == "bi" else degrade_bd(frame, scale)


def check_psnr(value: float) -> float:
    return round(min(value, PSNR_CAP_DB), 4)


def flag_threshold(values: Sequence[float]) -> float:
    """``median - max(FLAG_K * 1.4826 * MAD, FLAG_FLOOR_DB)`` of the check PSNRs (see the module doc)."""
    v = np.minimum(np.asarray(values, np.float64), PSNR_CAP_DB)
    med = float(np.median(v))
    mad = float(np.median(np.abs(v - med)))
    return round(med - max(FLAG_K * 1.4826 * mad, FLAG_FLOOR_DB), 4)


@dataclass
class _Scored:
    index_in: int
    index_out: int
    pts: int | None
    psnr: float
    y_lr: np.ndarray  # Y of the degraded output frame
    y_in: np.ndarray  # Y of the input frame


class _Flicker:
    """Running sums of consecutive-frame differences of output (degraded) and input Y."""

    def __init__(self) -> None:
        self.out = self.inp = 0.0
        self.pairs = 0
        self._last: _Scored | None = None

    def add(self, s: _Scored) -> None:
        last, self._last = self._last, s
        if last is None or s.index_out != last.index_out + 1:
            return
        self.out += float(np.mean(np.abs(s.y_lr - last.y_lr)))
        self.inp += float(np.mean(np.abs(s.y_in - last.y_in)))
        self.pairs += 1

    def result(self) -> dict[str, Any]:
        if not self.pairs:
            return {"flicker_in": None, "flicker_out": None, "flicker_ratio": None, "flicker_pairs": 0}
        fin, fout = self.inp / self.pairs, self.out / self.pairs
        return {"flicker_in": round(fin, 4), "flicker_out": round(fout, 4),
                "flicker_ratio": round(fout / fin, 4) if fin > 1e-6 else None, "flicker_pairs": self.pairs}


def _score(index_in: int, index_out: int, pts: int | None, lr: np.ndarray, hr: np.ndarray, scale: int,
           degradation: str) -> _Scored:
    back = degrade(hr, scale, degradation)
    return _Scored(index_in, index_out, pts, check_psnr(psnr_y(back, lr)), rgb_to_y(back), rgb_to_y(lr))


def _pairs_of(frames_in: int, frames_out: int, mapping: list[tuple[int, int]] | None,
              input_path: Path, output_path: Path) -> list[tuple[int, int]]:
    """(input index, output index) of every output frame: the manifest's mapping, else frame k to k."""
    if mapping is not None and len(mapping) == frames_out and all(i < frames_in for i, _ in mapping):
        return mapping
    if frames_in != frames_out:
        raise UsageError(f"{output_path} has {frames_out} frames but {input_path} has {frames_in}; "
                         f"they are not input and output of one job")
    return [(k, k) for k in range(frames_in)]


def input_settings(deinterlace: bool = True, crop: tuple[int, ...] | None = None,
                   span: tuple[int, ...] | None = None, field_match: bool = False) -> ReadSettings:
    """How a check reads the job's input: lost frames repeated, deinterlaced (field-matched), cropped and
    trimmed to the part (``--start``/``--end``) as the job did."""
    return ReadSettings(on_corrupt="repeat", deinterlace=deinterlace, crop=tuple(crop) if crop else None,
                        span=tuple(span) if span else None,  # type: ignore[arg-type]
                        field_match=field_match)


def _check_sizes(input_path: Path, output_path: Path, scale: int, read: ReadSettings) -> tuple[Any, Any]:
    info_in, info_out = probe(input_path), probe(output_path)
    if read.crop:
        try:
            info_in = cropped_info(info_in, stored_region(read.crop, info_in.width, info_in.height,
                                                          info_in.rotation))
        except ValueError as exc:
            raise UsageError(f"{input_path}: --crop {exc}") from None
    if (info_out.width, info_out.height) != (info_in.width * scale, info_in.height * scale):
        size = f"{info_in.width}x{info_in.height}"
        raise UsageError(
            f"{output_path} is {info_out.width}x{info_out.height}, not x{scale} of {input_path} "
            + (f"(its {size} crop); give the scale they differ by with --scale" if read.crop else
               f"({size}); give the scale they differ by with --scale, or the region the job upscaled "
               "with --crop"))
    return info_in, info_out


def _stream_pairs(input_path: Path, output_path: Path, pairs: list[tuple[int, int]], read: ReadSettings
                  ) -> Iterator[tuple[int, int, int | None, np.ndarray, np.ndarray]]:
    """(index in, index out, pts out, input frame, output frame) in output order, one sequential pass."""
    with open_reader(input_path, read) as rin, FrameReader(output_path) as rout:
        lr: np.ndarray | None = None
        at = -1
        for index_in, index_out in pairs:
            frames, pts = rout.read(1)
            if not pts:
                raise MediaError(f"{output_path}: ends at frame {index_out}")
            while at < index_in:
                got, _ = rin.read(1)
                if not len(got):
                    raise MediaError(f"{input_path}: ends at frame {at + 1}")
                lr, at = got[0], at + 1
            assert lr is not None
            yield index_in, index_out, pts[0], lr, frames[0]


def check_files(
    input_path: str | Path,
    output_path: str | Path,
    scale: int | None = None,
    degradation: str | None = None,
    heatmap: str | Path | None = None,
    recorded: dict[str, Any] | None = None,
    deinterlace: bool = True,
    crop: tuple[int, ...] | None = None,
) -> dict[str, Any]:
    """Every output frame degraded back and compared with its input frame; returns the `vsr check` JSON
    (``exit_code`` :data:`EXIT_FLAGGED` when a frame is flagged). ``recorded``, the output's manifest
    (``vsr_pipeline.manifest.read_beside``), supplies the scale, the model's training degradation, the
    frame mapping and the crop when they are not given. An interlaced input is deinterlaced as the job did
    (unless ``deinterlace`` is off, or the manifest says the job did not); with ``crop`` (``--crop``) only
    that region of the input is compared."""
    started = time.perf_counter()
    input_path, output_path = Path(input_path), Path(output_path)
    for p in (input_path, output_path):
        if not p.exists():
            raise MediaError(f"{p}: no such file or folder")
    source, span = "--degradation", None
    if degradation is None:
        if recorded is not None:
            degradation, source = recorded["model"]["degradation"], "manifest"
        else:
            degradation, source = "bi", "default"
    if degradation not in DEGRADATIONS:
        raise UsageError(f"--degradation must be bi or bd, not {degradation!r}")
    scale = scale or (int(recorded["model"]["scale"]) if recorded is not None else 4)
    if scale < 2:
        raise UsageError(f"--scale must be >= 2, not {scale}")
    mapping, field_match = None, False
    if recorded is not None:
        mapping = [(r["index_in"], r["index_out"]) for r in recorded["mapping"] if r["index_out"] is not None]
        deinterlace = bool(recorded["settings"].get("deinterlace", deinterlace))
        field_match = bool(recorded["settings"].get("field_match", False))
        crop = crop or recorded["settings"].get("crop")
        span = recorded["settings"].get("span")
        if span:  # the mapping names the input's own frame numbers; the reader counts from the part's first
            mapping = [(i - span[0], o) for i, o in mapping]
    read = input_settings(deinterlace, crop, span, field_match)
    info_in, info_out = _check_sizes(input_path, output_path, scale, read)
    pairs = _pairs_of(info_in.frames, info_out.frames, mapping, input_path, output_path)
    heat_dir = Path(heatmap) if heatmap is not None else None
    writer = None
    if heat_dir is not None:
        if heat_dir.exists() and (not heat_dir.is_dir() or any(heat_dir.iterdir())):
            raise UsageError(f"--heatmap {heat_dir} exists and is not an empty folder; name a new one")
        if heat_dir.exists():
            heat_dir.rmdir()
        writer = ImageFolderWriter(heat_dir)
    rows: list[dict[str, Any]] = []
    flicker = _Flicker()
    try:
        for index_in, index_out, pts, lr, hr in _stream_pairs(input_path, output_path, pairs, read):
            s = _score(index_in, index_out, pts, lr, hr, scale, degradation)
            flicker.add(s)
            rows.append({"index": index_out, "pts": pts, "index_in": index_in, "psnr_y": s.psnr})
            if writer is not None:
                writer.write(heatmap_image(s.y_lr, s.y_in, scale)[None], [index_out])
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
    if writer is not None:
        writer.close()
    values = [r["psnr_y"] for r in rows]
    threshold = flag_threshold(values)
    flagged = [r for r in rows if r["psnr_y"] < threshold]
    return {
        "input": str(input_path), "output": str(output_path), "scale": scale,
        **({"crop": list(read.crop)} if read.crop else {}),
        "degradation": degradation, "degradation_from": source, "frames_checked": len(rows),
        "psnr_y_mean": round(float(np.mean(values)), 4), "psnr_y_min": round(float(np.min(values)), 4),
        "psnr_y_median": round(float(np.median(values)), 4), "threshold": threshold,
        "flagged": flagged, **flicker.result(), "frames": rows,
        "heatmap": str(heat_dir) if heat_dir is not None else None,
        "seconds": round(time.perf_counter() - started, 3),
        "exit_code": EXIT_FLAGGED if flagged else 0,
    }


def heatmap_image(y_back: np.ndarray, y_in: np.ndarray, scale: int) -> np.ndarray:
    """|Y(degraded output) - Y(input)| at the input size, ``HEATMAP_LEVELS`` levels and above the top of the
    inferno colour map, upsampled ``scale`` times (nearest) to the output size: (sH, sW, 3) uint8 RGB."""
    import cv2

    diff = np.clip(np.abs(y_back - y_in) * (255.0 / HEATMAP_LEVELS), 0, 255).astype(np.uint8)
    big = cv2.resize(diff, (diff.shape[1] * scale, diff.shape[0] * scale), interpolation=cv2.INTER_NEAREST)
    return np.ascontiguousarray(cv2.applyColorMap(big, cv2.COLORMAP_INFERNO)[:, :, ::-1])


def sample_runs(frames: int, keyframes: Sequence[int]) -> list[range]:
    """The output frames the per-job report reads: all of them up to :data:`SAMPLE_FRAMES`, else
    :data:`SAMPLE_RUNS` runs of :data:`SAMPLE_RUN` consecutive frames spread evenly from first to last, each
    moved back to the output keyframe at or before it where that keeps the runs apart (a seek there decodes
    nothing wasted; elsewhere at most the frames since the keyframe before it)."""
    if frames <= SAMPLE_FRAMES:
        return [range(frames)]
    keys = sorted(keyframes)
    runs: list[range] = []
    for j in range(SAMPLE_RUNS):
        target = round(j * (frames - SAMPLE_RUN) / (SAMPLE_RUNS - 1))
        k = bisect.bisect_right(keys, target) - 1
        floor = runs[-1].stop if runs else 0
        start = keys[k] if k >= 0 and keys[k] >= floor else max(target, floor)
        if start + SAMPLE_RUN > frames:
            break
        runs.append(range(start, start + SAMPLE_RUN))
    return runs


def _read_runs(reader: FrameReader, runs: list[range]) -> dict[int, np.ndarray]:
    """The frames of ``runs`` (ascending): a seek to a run whose keyframe lies behind the reader's position
    would decode again what reading on decodes once, so the reader reads on there."""
    got: dict[int, np.ndarray] = {}
    for run in runs:
        if reader.position != run.start:
            index = reader.stream_index()
            key = index.keyframe_at_or_before(run.start) if not index.is_image_folder else None
            if key is not None and index.keyframes[key] <= reader.position:
                while reader.position < run.start:
                    reader.read(min(SAMPLE_RUN, run.start - reader.position))
            else:
                reader.seek(run.start)
        frames, _ = reader.read(len(run))
        if len(frames) < len(run):
            raise MediaError(f"{reader.path}: ends at frame {run.start + len(frames)}, before {run.stop - 1}")
        got.update(zip(run, frames, strict=True))
    return got


def quality_report(
    input_path: str | Path,
    output_path: str | Path,
    scale: int,
    degradation: str,
    pairs: list[tuple[int, int]],
    keyframes: Sequence[int],
    read: ReadSettings | None = None,
) -> dict[str, Any]:
    """The check PSNR and flicker figures on the sample of :func:`sample_runs` (``pairs``: input and output
    index of every output frame; ``read``: how the job read its input, :func:`input_settings`). Frames are
    read by seeking; where an input or output cannot be seeked exactly the first ``SAMPLE_FRAMES`` frames
    are read instead."""
    read = read or input_settings()
    started = time.perf_counter()
    runs = sample_runs(len(pairs), keyframes)
    sample = "all frames"
    try:
        hr, lr = _read_sample(input_path, output_path, pairs, runs, read)
        if len(runs) > 1 or len(runs[0]) < len(pairs):
            sample = ", ".join(f"{r.start}-{r.stop - 1}" for r in runs)
    except SeekError:
        runs = [range(min(SAMPLE_FRAMES, len(pairs)))]
        hr, lr = _read_sample(input_path, output_path, pairs, runs, read)
        sample = f"first {len(runs[0])} frames (not seekable exactly)"
    scored: list[_Scored] = []
    flicker = _Flicker()
    for run in runs:
        for k in run:
            s = _score(pairs[k][0], k, None, lr[pairs[k][0]], hr[k], scale, degradation)
            scored.append(s)
            flicker.add(s)
    values = [s.psnr for s in scored]
    threshold = flag_threshold(values)
    worst = min(scored, key=lambda s: s.psnr)
    return {
        "degradation": degradation, "sample": sample, "frames_checked": len(scored),
        "check_psnr_y_mean": round(float(np.mean(values)), 4), "check_psnr_y_min": worst.psnr,
        "check_psnr_y_min_index": worst.index_out, "threshold": threshold,
        "flagged": [s.index_out for s in scored if s.psnr < threshold], **flicker.result(),
        "seconds": round(time.perf_counter() - started, 3),
    }


def _read_sample(input_path: str | Path, output_path: str | Path, pairs: list[tuple[int, int]],
                 runs: list[range], read: ReadSettings) -> tuple[dict[int, Any], dict[int, Any]]:
    """Output frames of ``runs`` and the input frames they map to (by index)."""
    in_runs = [range(pairs[r.start][0], pairs[r.stop - 1][0] + 1) for r in runs]
    with FrameReader(output_path) as rout:
        hr = _read_runs(rout, runs)
    with open_reader(input_path, read) as rin:
        lr = _read_runs(rin, in_runs)
    return hr, lr
