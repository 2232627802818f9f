"""Training configs: nested dataclasses read from and written to YAML (``configs/train/*.yaml``).

Unknown fields are errors naming the section and the field; ``dump(load(x)) == x`` field for field.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from vsr_pipeline.errors import EXIT_USAGE, VsrError

DEFAULT_CACHE = Path(os.environ.get("VSR_DATA_CACHE", "~/.cache/vsr-data")).expanduser()


class TrainConfigError(VsrError):
    """A training config with a bad field; the message names the field."""

    exit_code = EXIT_USAGE


@dataclass
class DataConfig:
    """Where patches come from.

    ``photos``: folders of high-resolution images (each read whole, kept at the long sides ``levels``);
    ``videos``: video files or image-sequence folders. ``val_photos``/``val_videos`` are held out for
    validation (file names or stems). ``frames`` = window length (1 = single image). ``max_shift``: largest
    per-frame camera motion (HR pixels) of the synthetic camera paths drawn over photos; ``video_prob``:
    share of windows cut from real clips instead of photos. ``targets``: ``centre`` (window models: the HR
    centre frame) or ``all`` (recurrent models such as BasicVSR: every HR frame of the window).
    ``clip_scale``: clips are area-downscaled by this factor when loaded (softens a compressed source's own
    artefacts before it serves as ground truth). ``val_degradation``: a fixed chain for the validation
    crops in ``vsr degrade`` syntax (e.g. ``bi+h264:28``); empty = the training degradation, drawn once.
    ``codec_window``: frames drawn and degraded together (a video codec's P- and B-frames code the motion
    between them), of which ``frames`` consecutive ones at a random place are kept; 0 = ``frames``. A
    single-image model (``frames: 1``) so learns the artefacts of every frame type, not only a keyframe's.
    """

    photos: list[str] = field(default_factory=list)
    videos: list[str] = field(default_factory=list)
    val_photos: list[str] = field(default_factory=list)
    val_videos: list[str] = field(default_factory=list)
    levels: list[int] = field(default_factory=lambda: [1600, 1024, 640])
    patch: int = 32  # LR patch side
    frames: int = 1
    max_shift: float = 6.0
    video_prob: float = 0.0
    min_std: float = 0.0  # resample crops whose HR grey std (0-255) is below this, up to 4 times
    augment: bool = True
    val_crops: int = 16
    val_patch: int = 64
    targets: str = "centre"
    clip_scale: float = 1.0
    val_degradation: str = ""
    codec_window: int = 0


@dataclass
class DegradationConfig:
    """LR synthesis: optional Gaussian blur of the HR (sigma drawn in ``blur``), ``kind`` bi | bd, then
    optional Gaussian noise (sigma drawn in [0, noise], 0-255), JPEG (quality drawn in ``jpeg``) and one video
    codec over the whole window: H.264 (CRF drawn in ``h264``, x264 preset drawn from ``h264_presets``) with
    probability ``h264_prob``, else MPEG-4 part 2 (qscale drawn in ``mpeg4``) with ``mpeg4_prob``."""

    kind: str = "bi"
    bd_sigma: float = 1.6
    blur: list[float] = field(default_factory=lambda: [0.2, 1.2])
    blur_prob: float = 0.0
    noise: float = 0.0
    noise_prob: float = 0.0
    jpeg: list[int] = field(default_factory=lambda: [30, 95])
    jpeg_prob: float = 0.0
    h264: list[int] = field(default_factory=lambda: [18, 35])
    h264_prob: float = 0.0
    h264_presets: list[str] = field(default_factory=lambda: ["ultrafast"])
    mpeg4: list[int] = field(default_factory=lambda: [2, 12])
    mpeg4_prob: float = 0.0


@dataclass
class LossConfig:
    """Weighted sum of terms; ``pixel`` is mse | l1 | charbonnier. ``motion``/``smoothness`` weight VESPCN's
    motion-compensation terms; ``perceptual``/``adversarial`` need ``vgg_weights`` (a local VGG19 file)."""

    pixel: str = "charbonnier"
    pixel_weight: float = 1.0
    charbonnier_eps: float = 1e-3
    tv: float = 0.0
    motion: float = 0.0
    smoothness: float = 0.0
    perceptual: float = 0.0
    vgg_weights: str = ""
    adversarial: float = 0.0


@dataclass
class OptimConfig:
    """Adam, ``schedule`` cosine | step | constant (with ``warmup`` linear steps)."""

    lr: float = 1e-3
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    weight_decay: float = 0.0
    steps: int = 10000
    batch: int = 16
    schedule: str = "cosine"
    min_lr: float = 1e-5
    step_size: int = 5000
    gamma: float = 0.5
    warmup: int = 0
    grad_clip: float = 0.0


@dataclass
class TrainConfig:
    """One training run: model, data, degradation, loss, optimiser and bookkeeping."""

    name: str
    model: str
    scale: int
    arch: dict[str, Any] = field(default_factory=dict)
    init: str = ""  # weights to start from: a file or the model's registered weights name (shape-matching
    # tensors are copied)
    warm_start: str = ""  # "linear": ESPCN/FSRCNN start as a least-squares linear interpolator;
    # "refit_output": ESPCN keeps its (init) feature layers and fits the output convolution
    data: DataConfig = field(default_factory=DataConfig)
    degradation: DegradationConfig = field(default_factory=DegradationConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    out_dir: str = "runs/{name}"
    val_every: int = 500
    ckpt_every: int = 500
    log_every: int = 50
    keep_checkpoints: int = 2
    seed: int = 0
    threads: int = 0  # torch threads; 0 = leave as is
    frozen: list[str] = field(default_factory=list)  # parameter-name prefixes left untrained (e.g. spynet.)
    autocast: str = ""  # "bf16": forward under CPU bf16 autocast (weights, optimiser and loss in float32)

    @property
    def run_dir(self) -> Path:
        return Path(self.out_dir.format(name=self.name)).expanduser()


_SECTIONS = {"data": DataConfig, "degradation": DegradationConfig, "loss": LossConfig, "optim": OptimConfig}


def _build(cls: type, raw: Any, where: str) -> Any:
    if not isinstance(raw, dict):
        raise TrainConfigError(f"{where}: expected a mapping, got {type(raw).__name__}")
    names = {f.name: f for f in dataclasses.fields(cls)}
    unknown = [k for k in raw if k not in names]
    if unknown:
        raise TrainConfigError(f"{where}: unknown field {unknown[0]!r} (fields: {', '.join(names)})")
    kwargs: dict[str, Any] = {}
    for key, value in raw.items():
        if cls is TrainConfig and key in _SECTIONS:
            value = _build(_SECTIONS[key], value or {}, f"{where}.{key}")
        kwargs[key] = value
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise TrainConfigError(f"{where}: {exc}") from None


def from_dict(raw: Any, where: str = "config") -> TrainConfig:
    """A checked :class:`TrainConfig` from plain data."""
    cfg = _build(TrainConfig, raw, where)
    if cfg.degradation.kind not in ("bi", "bd"):
        raise TrainConfigError(f"{where}: degradation.kind must be bi or bd, not {cfg.degradation.kind!r}")
    if cfg.loss.pixel not in ("mse", "l1", "charbonnier"):
        raise TrainConfigError(f"{where}: loss.pixel must be mse, l1 or charbonnier, not {cfg.loss.pixel!r}")
    if cfg.optim.schedule not in ("cosine", "step", "constant"):
        raise TrainConfigError(f"{where}: optim.schedule must be cosine, step or constant")
    if cfg.warm_start not in ("", "linear", "refit_output"):
        raise TrainConfigError(
            f"{where}: warm_start must be empty, 'linear' or 'refit_output', not {cfg.warm_start!r}"
        )
    if cfg.data.targets not in ("centre", "all"):
        raise TrainConfigError(f"{where}: data.targets must be centre or all, not {cfg.data.targets!r}")
    if cfg.autocast not in ("", "bf16"):
        raise TrainConfigError(f"{where}: autocast must be empty or bf16, not {cfg.autocast!r}")
    if cfg.data.val_degradation:
        from vsr_pipeline.degradation import DegradationError, parse_degradation

        try:
            parse_degradation(cfg.data.val_degradation)
        except DegradationError as exc:
            raise TrainConfigError(f"{where}: data.val_degradation: {exc}") from None
    if cfg.data.codec_window and cfg.data.codec_window < cfg.data.frames:
        raise TrainConfigError(f"{where}: data.codec_window ({cfg.data.codec_window}) must be 0 or at least "
                               f"data.frames ({cfg.data.frames})")
    if cfg.data.frames < 1 or (cfg.data.frames % 2 == 0 and cfg.data.targets == "centre"):
        raise TrainConfigError(f"{where}: data.frames must be odd and >= 1 (any >= 1 with targets: all), "
                               f"got {cfg.data.frames}")
    return cfg


def to_dict(cfg: TrainConfig) -> dict[str, Any]:
    """Plain data (YAML-ready) of ``cfg``."""
    return dataclasses.asdict(cfg)


def load(path: str | os.PathLike[str]) -> TrainConfig:
    """Read a YAML training config."""
    try:
        raw = yaml.safe_load(Path(path).read_text())
    except OSError as exc:
        raise TrainConfigError(f"cannot read training config {path}: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        raise TrainConfigError(f"{path}: not valid YAML: {exc}") from None
    return from_dict(raw, str(path))


def dump(cfg: TrainConfig) -> str:
    """YAML text of ``cfg`` (every field, defaults included)."""
    return yaml.safe_dump(to_dict(cfg), sort_keys=False)


def resolve_path(text: str) -> Path:
    """``~`` and ``$VSR_DATA_CACHE``-style variables expanded; ``{cache}`` = the data cache folder."""
    return Path(os.path.expandvars(text.replace("{cache}", str(DEFAULT_CACHE)))).expanduser()
