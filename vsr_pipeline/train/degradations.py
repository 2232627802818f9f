"""On-the-fly LR synthesis for training: optional Gaussian blur of the HR, BI / BD (the benchmark degradations
of ``vsr_pipeline.degrade``), then optional Gaussian noise, JPEG, and one video codec over the whole window
(H.264 or MPEG-4 part 2, as recorders and the compressed-VSR papers, e.g. RealBasicVSR, do).

Frames are uint8 ``(T, H, W, 3)`` RGB; ``H`` and ``W`` multiples of the scale. Every random choice comes
from the ``numpy.random.Generator`` passed in, so a batch is a pure function of the seed.
"""

from __future__ import annotations

import io
from functools import lru_cache

import av
import cv2
import numpy as np
import torch

from vsr_pipeline.degradation import encode_decode
from vsr_pipeline.degrade import degrade_bd, resize_matrix
from vsr_pipeline.media.colour import frame_to_rgb
from vsr_pipeline.train.config import DegradationConfig

__all__ = ["add_noise", "bicubic_down", "blur_hr", "degrade_window", "h264_roundtrip", "jpeg_roundtrip"]


@lru_cache(maxsize=64)
def _matrix(in_length: int, out_length: int, scale: int) -> torch.Tensor:
    return torch.from_numpy(resize_matrix(in_length, out_length, 1.0 / scale))


def bicubic_down(frames: np.ndarray, scale: int) -> np.ndarray:
    """BI: ``vsr_pipeline.degrade.imresize(frames, 1/scale)`` rounded to uint8 -- the same MATLAB weights
    (cached per size) applied as two float64 matrix products, rows then columns as MATLAB orders them."""
    _, h, w, _ = frames.shape
    x = torch.from_numpy(np.ascontiguousarray(frames)).double()
    x = torch.einsum("oh,thwc->towc", _matrix(h, -(-h // scale), scale), x)
    x = torch.einsum("pw,towc->topc", _matrix(w, -(-w // scale), scale), x)
    return x.round_().clamp_(0, 255).to(torch.uint8).numpy()


def _downscale(frames: np.ndarray, scale: int, kind: str, bd_sigma: float) -> np.ndarray:
    if kind == "bi":
        return bicubic_down(frames, scale)
    return degrade_bd(frames, scale, sigma=bd_sigma)


def blur_hr(frames: np.ndarray, sigma: float) -> np.ndarray:
    """Each frame blurred by an isotropic Gaussian of std ``sigma`` HR pixels (kernel 2*ceil(3 sigma)+1,
    reflected borders), rounded to uint8: camera optics and defocus before sampling."""
    k = 2 * int(np.ceil(3 * sigma)) + 1
    return np.stack([cv2.GaussianBlur(f, (k, k), sigma, borderType=cv2.BORDER_REFLECT) for f in frames])


def add_noise(frames: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Additive white Gaussian noise of std ``sigma`` (0-255 scale), rounded and clipped to uint8."""
    noisy = frames.astype(np.float32) + rng.normal(0.0, sigma, frames.shape).astype(np.float32)
    return np.clip(np.rint(noisy), 0, 255).astype(np.uint8)


def jpeg_roundtrip(frames: np.ndarray, quality: int) -> np.ndarray:
    """Each frame encoded as JPEG at ``quality`` (OpenCV, 4:2:0) and decoded back."""
    out = np.empty_like(frames)
    for i, frame in enumerate(frames):
        ok, buf = cv2.imencode(".jpg", frame[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
        if not ok:
            raise RuntimeError("OpenCV could not encode a JPEG")
        out[i] = cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1]
    return out


def h264_roundtrip(frames: np.ndarray, crf: int) -> np.ndarray:
    """The window encoded as one H.264 stream (libx264, yuv420p, ``crf``, ultrafast, no B-frames) and decoded.

    Odd sizes are padded by edge replication for 4:2:0 and cropped back.
    """
    t, h, w, _ = frames.shape
    ph, pw = h + h % 2, w + w % 2
    padded = np.pad(frames, ((0, 0), (0, ph - h), (0, pw - w), (0, 0)), mode="edge")
    buf = io.BytesIO()
    with av.open(buf, "w", format="h264") as out:
        stream = out.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = pw, ph, "yuv420p"
        stream.options = {"crf": str(int(crf)), "preset": "ultrafast", "bf": "0", "threads": "1"}
        for frame in padded:
            for packet in stream.encode(
                av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
            ):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    buf.seek(0)
    with av.open(buf, "r", format="h264") as inp:
        decoded = [frame_to_rgb(f, f.colorspace, f.color_range) for f in inp.decode(video=0)]  # exact BT.601
    if len(decoded) != t:
        raise RuntimeError(f"H.264 round trip returned {len(decoded)} frames for {t}")
    return np.stack(decoded)[:, :h, :w]


def degrade_window(
    hr: np.ndarray, scale: int, cfg: DegradationConfig, rng: np.random.Generator
) -> np.ndarray:
    """LR uint8 ``(T, H/s, W/s, 3)`` of the HR uint8 window ``hr`` ``(T, H, W, 3)``."""
    if cfg.blur_prob > 0 and rng.random() < cfg.blur_prob:
        hr = blur_hr(hr, float(rng.uniform(cfg.blur[0], cfg.blur[1])))
    lr = _downscale(hr, scale, cfg.kind, cfg.bd_sigma)
    if cfg.noise > 0 and rng.random() < cfg.noise_prob:
        lr = add_noise(lr, float(rng.uniform(0.0, cfg.noise)), rng)
    if cfg.jpeg_prob > 0 and rng.random() < cfg.jpeg_prob:
        lr = jpeg_roundtrip(lr, int(rng.integers(cfg.jpeg[0], cfg.jpeg[1] + 1)))
    if cfg.h264_prob > 0 and rng.random() < cfg.h264_prob:
        crf = int(rng.integers(cfg.h264[0], cfg.h264[1] + 1))
        if cfg.h264_presets == ["ultrafast"]:
            lr = h264_roundtrip(lr, crf)
        else:
            preset = cfg.h264_presets[int(rng.integers(len(cfg.h264_presets)))]
            lr = encode_decode(lr, "h264", crf, preset)
    elif cfg.mpeg4_prob > 0 and rng.random() < cfg.mpeg4_prob:
        lr = encode_decode(lr, "mpeg4", int(rng.integers(cfg.mpeg4[0], cfg.mpeg4[1] + 1)))
    return lr
