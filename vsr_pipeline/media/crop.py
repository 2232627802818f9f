"""A region of interest (``--crop W:H[:X:Y]``): only that part of each frame is upscaled.

The region is given as a player shows the video: a video with a display rotation (a phone held upright)
is cropped in its upright picture, as FFmpeg's ``crop`` filter does after its automatic rotation. It is
in the stored pixels otherwise (a non-square pixel aspect is not applied, as in FFmpeg). X and Y left
out centre the region. :func:`stored_region` maps it onto the decoded frame, whose rotation tag the output
keeps; :func:`crop_frames` cuts it out of (H, W, 3) frames or (T, H, W, 3) batches.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from .probe import VideoInfo


@dataclass(frozen=True)
class Region:
    """A rectangle of the decoded (stored) frame: ``x, y`` its top-left corner, ``width x height``."""

    width: int
    height: int
    x: int
    y: int


def parse_crop(text: str) -> tuple[int, ...]:
    """``"W:H"`` or ``"W:H:X:Y"`` (FFmpeg's crop order) as ints; ValueError naming what is wrong."""
    parts = text.split(":")
    if len(parts) not in (2, 4):
        raise ValueError(f"expects W:H or W:H:X:Y in pixels, got {text!r}")
    try:
        values = tuple(int(p) for p in parts)
    except ValueError:
        raise ValueError(f"expects whole numbers W:H or W:H:X:Y, got {text!r}") from None
    check_crop(values)
    return values


def check_crop(crop: tuple[int, ...]) -> None:
    """A crop's own values can work (size >= 1, corner >= 0); ValueError otherwise."""
    if len(crop) not in (2, 4):
        raise ValueError(f"expects (W, H) or (W, H, X, Y), got {crop!r}")
    if crop[0] < 1 or crop[1] < 1:
        raise ValueError(f"width and height must be >= 1, got {crop[0]}x{crop[1]}")
    if len(crop) == 4 and (crop[2] < 0 or crop[3] < 0):
        raise ValueError(f"X and Y must be >= 0, got {crop[2]}:{crop[3]}")


def crop_text(crop: tuple[int, ...]) -> str:
    """The ``--crop`` spelling of ``crop``."""
    return ":".join(str(v) for v in crop)


def _quarter_turns(rotation: int) -> int:
    """Counter-clockwise quarter turns from the stored frame to the displayed one (0 for odd angles)."""
    return (rotation % 360) // 90 if rotation % 90 == 0 else 0


def resolve_crop(crop: tuple[int, ...], width: int, height: int,
                 rotation: int = 0) -> tuple[int, int, int, int]:
    """``crop`` as ``(W, H, X, Y)`` in the displayed picture of a ``width x height`` stored frame turned
    ``rotation`` degrees counter-clockwise (PyAV's ``VideoFrame.rotation``): X and Y filled in (centred)
    where left out. ValueError when it reaches past the picture, naming the displayed size."""
    check_crop(crop)
    turned = _quarter_turns(rotation) % 2
    shown_w, shown_h = (height, width) if turned else (width, height)
    w, h = crop[0], crop[1]
    upright = " as displayed (upright)" if turned else ""
    if w > shown_w or h > shown_h:
        raise ValueError(f"{w}x{h} is larger than the {shown_w}x{shown_h} picture{upright}")
    x, y = (crop[2], crop[3]) if len(crop) == 4 else ((shown_w - w) // 2, (shown_h - h) // 2)
    if x + w > shown_w or y + h > shown_h:
        raise ValueError(f"{crop_text((w, h, x, y))} reaches past the {shown_w}x{shown_h} picture{upright}")
    return w, h, x, y


def stored_region(crop: tuple[int, ...], width: int, height: int, rotation: int = 0) -> Region:
    """The region of a ``width x height`` stored frame that ``crop`` covers (:func:`resolve_crop`)."""
    w, h, x, y = resolve_crop(crop, width, height, rotation)
    turn = _quarter_turns(rotation)
    # the displayed picture is the stored one turned ``turn`` quarter turns counter-clockwise (np.rot90)
    if turn == 1:
        return Region(h, w, width - y - h, x)
    if turn == 2:
        return Region(w, h, width - x - w, height - y - h)
    if turn == 3:
        return Region(h, w, y, height - x - w)
    return Region(w, h, x, y)


#: LR pixels of picture around a region that the model sees too (its output there is dropped): without them
#: BasicVSR lost 1.3 dB within 16 HR pixels of the region's edge (docs/benchmarks.md 8.5n)
CONTEXT = 16


def with_context(crop: tuple[int, int, int, int], width: int, height: int, rotation: int = 0,
                 margin: int | None = None) -> tuple[int, int, int, int]:
    """A resolved ``crop`` (:func:`resolve_crop`) grown by ``margin`` pixels (default :data:`CONTEXT`) each
    side, within the picture."""
    margin = CONTEXT if margin is None else margin
    w, h, x, y = crop
    shown_w, shown_h = (height, width) if _quarter_turns(rotation) % 2 else (width, height)
    x0, y0 = max(0, x - margin), max(0, y - margin)
    x1, y1 = min(shown_w, x + w + margin), min(shown_h, y + h + margin)
    return x1 - x0, y1 - y0, x0, y0


def output_offset(crop: tuple[int, ...], context: tuple[int, ...], width: int, height: int,
                  rotation: int, scale: int) -> tuple[int, int]:
    """Where the region's HR pixels lie in the HR frames of its context (stored orientation): ``(x, y)``."""
    inner = stored_region(crop, width, height, rotation)
    outer = stored_region(context, width, height, rotation)
    return (inner.x - outer.x) * scale, (inner.y - outer.y) * scale


def cropped_info(info: VideoInfo, region: Region | None) -> VideoInfo:
    """``info`` with the region's size: what the model sees and the output is sized by."""
    if region is None:
        return info
    return replace(info, width=region.width, height=region.height)


def crop_frames(frames: np.ndarray, region: Region | None) -> np.ndarray:
    """The region of (H, W, C) frames or (T, H, W, C) batches, C-contiguous (a copy; as is when None)."""
    if region is None:
        return frames
    rows, cols = slice(region.y, region.y + region.height), slice(region.x, region.x + region.width)
    return np.ascontiguousarray(frames[..., rows, cols, :])
