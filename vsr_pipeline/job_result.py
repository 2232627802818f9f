"""``UpscaleResult``: what a finished file job reports (``vsr upscale --json``, ``vsr batch``'s summary)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class UpscaleResult:
    input: str
    output: str
    model: str
    weights: str | None
    backbone: str | None
    align: str | None
    device: str
    frames_in: int
    frames_out: int
    width_in: int
    height_in: int
    width_out: int
    height_out: int
    fps_in: float
    chunk: int
    padding: int
    chunks: int
    seconds: float
    fps: float  # frames computed in this run per second
    chunks_resumed: int = 0  # chunks a previous run had finished (taken from the ledger)
    chunks_computed: int = 0  # chunks computed in this run
    retries: int = 0  # failed chunk attempts that were retried
    on_corrupt: str = "repeat"
    corrupt_frames: int = 0  # frames the decoder could not produce
    corrupt: list[dict[str, Any]] = field(default_factory=list)  # the first 100: index, pts, time_s, reason
    #: frames decoded from damaged data, repaired by the decoder (MPEG-1/2/4 flag them; H.264/HEVC do not)
    concealed_frames: int = 0
    concealed: list[dict[str, Any]] = field(default_factory=list)  # the first 100: index, pts, time_s
    #: frames whose pts was missing, repeated or went backwards: each got the previous pts + one frame
    timestamps_repaired: int = 0
    timestamps_renumbered: int = 0  # frames whose pts were not display times: renumbered in display order
    deinterlaced: bool = False  # the input is interlaced and its frames were deinterlaced
    field_matched: bool = False  # frames rebuilt from matching fields first (``--field-match``)
    decimated_frames: int = 0  # repeats dropped after field matching (``--decimate``), the rest retimed
    bit_depth: int = 8  # output bits per sample (8, 10, 12, 16; 16 for the PNGs of a deep input)
    pix_fmt: str | None = None  # the output video's pixel format (yuv420p, yuv422p10le, ...; None: PNGs)
    #: wall seconds the job's own upscalers spent inside their forward calls (summed over actors; None when
    #: the upscalers were shared with other jobs): ``seconds`` minus this is what the pipeline itself cost
    model_seconds: float | None = None
    #: seconds from the job's start to its first forward call (actor start-up, the first chunk's decode),
    #: and from its last forward call's end to the job's end (the last chunk's encode, joining); None with
    #: shared upscalers
    model_head_s: float | None = None
    model_tail_s: float | None = None
    #: the forward pass's precision, and why it was chosen (``vsr_pipeline.autotune``)
    precision: str | None = None
    precision_reason: str | None = None
    #: frames or windows per forward call, and why (``vsr_pipeline.autotune.choose_batch``)
    batch: int | None = None
    batch_reason: str | None = None
    #: torch threads of the CPU upscaler and why (``vsr_pipeline.autotune.choose_threads``; None on CUDA)
    threads: int | None = None
    threads_reason: str | None = None
    #: the provenance manifest beside the output (``vsr_pipeline.manifest``), the quality report on a sample
    #: of frames (``vsr_pipeline.check.quality_report``), and the seconds both took once the output was done
    manifest: str | None = None
    quality: dict[str, Any] | None = None
    report_seconds: float | None = None
    #: per audio stream of the input: its index and codec, how it was written (``copy``, the codec it was
    #: re-encoded as, None: left out) and the packets written (``media.stream_copy.StreamCopier.summary``)
    audio: list[dict[str, Any]] = field(default_factory=list)
    #: per subtitle stream of the input: its index and codec, how it was written (``copy``, the text codec it
    #: was converted to, None: left out) and the cues written (``media.stream_copy``)
    subtitles: list[dict[str, Any]] = field(default_factory=list)
    #: per attachment of the input (a Matroska rip's fonts): name, mimetype, bytes, ``written`` (copied:
    #: Matroska outputs only; ``media.stream_copy.copy_attachments``)
    attachments: list[dict[str, Any]] = field(default_factory=list)
    #: the region upscaled, ``[W, H, X, Y]`` in the picture as displayed (``--crop``); None: whole frames.
    #: ``width_in``/``height_in`` are then the region's size
    crop: list[int] | None = None
    #: ``--start``/``--end`` as given (seconds) and the frames they select, ``first_frame`` to ``stop_frame``
    #: - 1 of the input; None: the whole video. ``frames_in`` counts the selected frames
    trim: dict[str, Any] | None = None
    #: the input's HDR10 mastering-display and light-level metadata and whether the output carries it
    #: (``written``; ``media.hdr_metadata``); None: the input has none
    hdr: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)
