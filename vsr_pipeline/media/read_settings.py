"""``ReadSettings``: how a job reads its input, the arguments of ``media.reader.FrameReader`` besides the
path, in one value that decoder actors are handed."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction


@dataclass(frozen=True)
class ReadSettings:
    """How a job reads its input: ``FrameReader``'s arguments besides the path (what decoder actors are
    handed; ``media.reader.open_reader`` opens one)."""

    fps: Fraction | None = None
    on_corrupt: str = "fail"
    deinterlace: bool = True
    deep: bool = False
    crop: tuple[int, ...] | None = None
    #: ``--start``/``--end``: (first frame, stop frame, pts shift), :mod:`.trim`
    span: tuple[int, int, int] | None = None
    #: reach a span's first frame by seeking where that is exact (else, or False: by decoding up to it)
    seek_to_span: bool = True
    #: telecined film: frames rebuilt from matching fields before deinterlacing (``ingest.Deinterlacer``)
    field_match: bool = False
    #: with ``field_match``: the repeat in every 5 frames dropped, the others retimed (:mod:`.decimate`)
    decimate: bool = False
