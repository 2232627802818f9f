"""HDR10 static metadata: the mastering display's colour volume (SMPTE ST 2086) and the content light levels
(MaxCLL/MaxFALL, CTA-861.3) that a PQ video carries beside its colour tags.

A display tone-maps PQ video to what it can show by these numbers; without them a TV or player assumes a
1,000 or 4,000 cd/m2 master and may clip highlights or dim the picture. FFmpeg's decoders attach them to
the decoded frames (from HEVC/H.264 SEI, the AV1 metadata OBU, or the container's ``mdcv``/``clli`` boxes
and Matroska's ``MasteringMetadata``): HEVC to every frame, H.264 and AV1 to the keyframes that carry them.
Its encoders take them only as encoder parameters, and write them into the bitstream at every keyframe:
x265 ``master-display``/``max-cll`` and x264 ``mastering-display``/``cll`` (both in HEVC SEI units),
SVT-AV1 ``mastering-display``/``content-light`` (decimals). Other encoders (FFV1, ProRes, DNxHR, VP9,
MPEG-1/2/4) cannot be given them from here: :func:`dropped_by` says so.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

#: encoders that write the metadata, and the option their parameters go in
PARAM_OPTION = {"libx265": "x265-params", "libx264": "x264-params", "libsvtav1": "svtav1-params"}
#: x265/x264 ``master-display`` units: chromaticity in 0.00002, luminance in 0.0001 cd/m2 (as HEVC SEI)
CHROMA_UNIT, LUMA_UNIT = 50000, 10000

Point = tuple[Fraction, Fraction]


@dataclass(frozen=True)
class HdrStatic:
    """HDR10 static metadata. ``red``/``green``/``blue``/``white``: the mastering display's primaries and
    white point as CIE 1931 (x, y); ``luminance``: its (min, max) in cd/m2; ``max_cll``/``max_fall``: the
    brightest pixel and the brightest frame average of the content, cd/m2. Each part None where absent."""

    red: Point | None = None
    green: Point | None = None
    blue: Point | None = None
    white: Point | None = None
    luminance: tuple[Fraction, Fraction] | None = None
    max_cll: int | None = None
    max_fall: int | None = None

    @property
    def has_primaries(self) -> bool:
        return None not in (self.red, self.green, self.blue, self.white)

    def to_json(self) -> dict[str, Any]:
        """Plain numbers, for the job's JSON and manifest."""
        out: dict[str, Any] = {}
        if self.has_primaries:
            out["mastering_primaries"] = {name: [round(float(v), 5) for v in p]  # type: ignore[union-attr]
                                          for name, p in (("red", self.red), ("green", self.green),
                                                          ("blue", self.blue), ("white", self.white))}
        if self.luminance is not None:
            out["mastering_luminance"] = [round(float(v), 4) for v in self.luminance]
        if self.max_cll is not None:
            out["max_cll"], out["max_fall"] = self.max_cll, self.max_fall
        return out


def _rationals(data: bytes, count: int) -> list[Fraction | None]:
    ints = struct.unpack(f"<{2 * count}i", data[:8 * count])
    return [Fraction(n, d) if d > 0 else None for n, d in zip(ints[::2], ints[1::2], strict=True)]


def parse_mastering(data: bytes) -> dict[str, Any]:
    """FFmpeg's ``AVMasteringDisplayMetadata`` (R, G, B primaries, white point, min and max luminance as
    AVRationals, then ``has_primaries`` and ``has_luminance``) as :class:`HdrStatic` fields."""
    if len(data) < 88:
        return {}
    values = _rationals(data, 10)
    has_primaries, has_luminance = struct.unpack("<2i", data[80:88])
    out: dict[str, Any] = {}
    points = [(values[i], values[i + 1]) for i in range(0, 8, 2)]
    if has_primaries and all(v is not None for p in points for v in p):
        out.update(zip(("red", "green", "blue", "white"), points, strict=True))
    if has_luminance and values[8] is not None and values[9] is not None:
        out["luminance"] = (values[8], values[9])
    return out


def parse_light_level(data: bytes) -> dict[str, Any]:
    """FFmpeg's ``AVContentLightMetadata`` (MaxCLL, MaxFALL, unsigned) as :class:`HdrStatic` fields."""
    if len(data) < 8:
        return {}
    max_cll, max_fall = struct.unpack("<2I", data[:8])
    return {"max_cll": max_cll, "max_fall": max_fall} if max_cll or max_fall else {}


def hdr_static(frame: Any) -> HdrStatic | None:
    """The HDR10 static metadata a decoded ``av.VideoFrame`` carries, or None."""
    fields: dict[str, Any] = {}
    for sd in getattr(frame, "side_data", ()):
        kind = getattr(sd.type, "name", str(sd.type))
        if kind == "MASTERING_DISPLAY_METADATA":
            fields.update(parse_mastering(bytes(sd)))
        elif kind == "CONTENT_LIGHT_LEVEL":
            fields.update(parse_light_level(bytes(sd)))
    return HdrStatic(**fields) if fields else None


def _units(p: Point) -> str:
    return f"({round(p[0] * CHROMA_UNIT)},{round(p[1] * CHROMA_UNIT)})"


def _decimal(v: Fraction) -> str:
    return f"{float(v):.5f}".rstrip("0").rstrip(".")


def encoder_params(codec: str, hdr: HdrStatic | None) -> dict[str, str]:
    """The option (``x265-params``, ``x264-params``, ``svtav1-params``) that makes ``codec`` write ``hdr``
    into its bitstream, or {} for none or an encoder that cannot (:func:`dropped_by`)."""
    if hdr is None or codec not in PARAM_OPTION:
        return {}
    parts = []
    lum = hdr.luminance
    if codec == "libsvtav1":  # decimal numbers, luminance in cd/m2
        if hdr.has_primaries and lum is not None:
            pts = "".join(f"{n}({_decimal(p[0])},{_decimal(p[1])})" for n, p in  # type: ignore[index]
                          (("G", hdr.green), ("B", hdr.blue), ("R", hdr.red), ("WP", hdr.white)))
            parts.append(f"mastering-display={pts}L({_decimal(lum[1])},{_decimal(lum[0])})")
        if hdr.max_cll is not None:
            parts.append(f"content-light={hdr.max_cll},{hdr.max_fall}")
    else:  # x265 and x264: HEVC SEI units, each under its own names
        display, cll = ("master-display", "max-cll") if codec == "libx265" else ("mastering-display", "cll")
        if hdr.has_primaries and lum is not None:
            pts = "".join(f"{n}{_units(p)}" for n, p in  # type: ignore[arg-type]
                          (("G", hdr.green), ("B", hdr.blue), ("R", hdr.red), ("WP", hdr.white)))
            parts.append(f"{display}={pts}L({round(lum[1] * LUMA_UNIT)},{round(lum[0] * LUMA_UNIT)})")
        if hdr.max_cll is not None:
            parts.append(f"{cll}={hdr.max_cll},{hdr.max_fall}")
    return {PARAM_OPTION[codec]: ":".join(parts)} if parts else {}


def dropped_by(codec: str | None, hdr: HdrStatic | None) -> str | None:
    """Why ``hdr`` does not reach an output written by ``codec`` (None: a PNG folder), one line; None
    where it does or there is none."""
    if hdr is None or codec in PARAM_OPTION:
        return None
    what = "a folder of PNG frames" if codec is None else f"{codec} output"
    return (f"its HDR10 mastering-display and light-level metadata cannot be written to {what} and is left "
            f"out (libx265, libx264 and libsvtav1 write it); players will assume their own")


def hdr_report(hdr: HdrStatic | None, codec: str | None) -> dict[str, Any] | None:
    """The job's JSON entry: the input's metadata and whether an output by ``codec`` (None: PNGs) has it."""
    return None if hdr is None else {**hdr.to_json(), "written": codec in PARAM_OPTION}
