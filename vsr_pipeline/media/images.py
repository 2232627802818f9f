"""Folders of images: listing in natural order, reading to uint8 RGB, atomic PNG-folder writing."""

from __future__ import annotations

import os
import re
import shutil
import struct
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from .atomic import AtomicOutput
from .errors import MediaError, short_reason

#: DPX (film scans, 10/12/16-bit) is read by FFmpeg's decoder, the others by OpenCV
IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".dpx"})
_SOF_MARKERS = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF})


def natural_key(name: str) -> list[object]:
    """Sort key where digit runs compare as numbers: ``f2.png`` < ``f10.png``."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name.lower())]


def list_images(folder: str | os.PathLike[str], missing_ok: bool = False) -> list[Path]:
    """Image files (png/jpg/bmp/tif/dpx) directly in ``folder``, in natural order.

    MediaError when ``folder`` is not a folder or has no images, unless ``missing_ok`` (then ``[]``).
    """
    folder = Path(folder)
    if not folder.is_dir():
        if missing_ok:
            return []
        raise MediaError(f"{folder}: not a folder")
    paths = [p for p in folder.iterdir()
             if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file() and not p.name.startswith(".")]
    if not paths and not missing_ok:
        raise MediaError(f"{folder}: folder has no images (png, jpg, bmp, tif, dpx)")
    return sorted(paths, key=lambda p: natural_key(p.name))


def _header_size(path: Path) -> tuple[int, int] | None:
    """(width, height) from a PNG/BMP/JPEG header without decoding; None when not parsed."""
    with open(path, "rb") as f:
        head = f.read(32)
        if head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR":
            w, h = struct.unpack(">II", head[16:24])
            return w, h
        if head[:2] == b"BM" and len(head) >= 26:
            w, h = struct.unpack("<ii", head[18:26])
            return w, abs(h)
        if head[:2] == b"\xff\xd8":
            f.seek(2)
            while True:
                marker = f.read(2)
                if len(marker) < 2 or marker[0] != 0xFF:
                    return None
                if marker[1] in (0xD8, 0x01) or 0xD0 <= marker[1] <= 0xD7:
                    continue
                (length,) = struct.unpack(">H", f.read(2))
                if marker[1] in _SOF_MARKERS:
                    h, w = struct.unpack(">xHH", f.read(5))
                    return w, h
                f.seek(length - 2, os.SEEK_CUR)
    return None


def image_size(path: str | os.PathLike[str]) -> tuple[int, int]:
    """(width, height) of an image, from its header where possible."""
    path = Path(path)
    try:
        size = _header_size(path)
    except (OSError, struct.error) as exc:
        raise MediaError(f"{path}: cannot read image header ({exc})") from None
    if size is None:
        img = _imread(path)
        size = (img.shape[1], img.shape[0])
    return size


def _imread(path: Path) -> np.ndarray:
    if path.suffix.lower() == ".dpx":
        return _read_dpx(path)[0]
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except OSError as exc:
        raise MediaError(f"{path}: cannot read image ({exc.strerror or exc})") from None
    img = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    if img is None:
        raise MediaError(f"{path}: not a readable image")
    return img


def _read_dpx(path: Path) -> tuple[np.ndarray, int]:
    """A DPX frame through FFmpeg's decoder: OpenCV's BGR layout, uint16 (0-65535) above 8 bits (a 10-bit
    sample v as v * 65535 / 1023, bits replicated), and its bits per sample. Values are taken as they are:
    a log-encoded (Cineon) scan stays log."""
    import av

    try:
        with av.open(str(path)) as container:
            frame = next(container.decode(video=0))
    except (av.FFmpegError, StopIteration, OSError, ValueError) as exc:
        raise MediaError(f"{path}: not a readable DPX image ({short_reason(exc)})") from None
    bits = max(c.bits for c in frame.format.components)
    rgb = frame.to_ndarray(format="rgb48le" if bits > 8 else "rgb24")
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), bits


def image_bits(path: str | os.PathLike[str]) -> int:
    """Bits per sample of an image: 16 for a 16-bit PNG or TIFF (or a float TIFF), a DPX's own (10, 12,
    16), else 8. PNG from its header; TIFF and DPX decoded."""
    path = Path(path)
    if path.suffix.lower() == ".dpx":
        return _read_dpx(path)[1]
    try:
        with open(path, "rb") as f:
            head = f.read(26)
    except OSError as exc:
        raise MediaError(f"{path}: cannot read image ({exc.strerror or exc})") from None
    if head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR":
        return 16 if head[24] == 16 else 8
    if head[:2] in (b"II", b"MM"):  # TIFF
        return 8 if _imread(path).dtype == np.uint8 else 16
    return 8


def to_rgb(img: np.ndarray, dtype: type = np.uint8) -> np.ndarray:
    """OpenCV image (BGR/BGRA/gray, 8 or 16 bit, or float) -> (H, W, 3) RGB of ``dtype``, uint8 or uint16
    (0-65535: an 8-bit image's values x 257)."""
    top = 65535 if dtype == np.uint16 else 255
    if img.dtype == np.uint16 and top == 255:
        img = cv2.convertScaleAbs(img, alpha=1 / 257)
    elif img.dtype == np.uint8 and top == 65535:
        img = img.astype(np.uint16) * 257
    elif img.dtype not in (np.uint8, np.uint16):
        img = np.clip(img.astype(np.float32) * top + 0.5, 0, top).astype(dtype)
    if img.ndim == 2:
        return cv2.cvtColor(img, cv2.COLOR_GRAY2RGB)
    if img.shape[2] == 4:
        return cv2.cvtColor(img, cv2.COLOR_BGRA2RGB)
    if img.shape[2] == 1:
        return cv2.cvtColor(img[:, :, 0], cv2.COLOR_GRAY2RGB)
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def read_images(paths: Sequence[str | os.PathLike[str]], deep: bool = False,
                size: tuple[int, int] | None = None) -> np.ndarray:
    """Read images into one (T, H, W, 3) RGB C-contiguous array, uint8 (``deep``: uint16, 0-65535);
    MediaError where one's size differs from the first's, or from ``size`` (W, H: the folder's)."""
    dtype = np.uint16 if deep else np.uint8
    if not paths:
        return np.empty((0, 0, 0, 3), dtype)
    out: np.ndarray | None = None
    for i, p in enumerate(paths):
        rgb = to_rgb(_imread(Path(p)), dtype)
        if size is not None and rgb.shape[1::-1] != size:
            raise MediaError(f"{p}: size differs from the folder's {size[0]}x{size[1]}")
        if out is None:
            out = np.empty((len(paths), *rgb.shape), dtype)
        elif rgb.shape != out.shape[1:]:
            raise MediaError(f"{p}: size {rgb.shape[1]}x{rgb.shape[0]} differs from the first image's "
                             f"{out.shape[2]}x{out.shape[1]}")
        out[i] = rgb
    assert out is not None
    return out


def check_frames(frames: np.ndarray, pts: Sequence[int], dtype: type | tuple[type, ...] = np.uint8) -> None:
    """Frames are a ``dtype`` (one of them) array of shape (T, H, W, 3), one pts each (ValueError)."""
    dtypes = dtype if isinstance(dtype, tuple) else (dtype,)
    if not (isinstance(frames, np.ndarray) and frames.dtype in dtypes and frames.ndim == 4
            and frames.shape[3] == 3):
        names = " or ".join(np.dtype(d).name for d in dtypes)
        raise ValueError(f"frames must be a {names} array of shape (T, H, W, 3)")
    if len(pts) != frames.shape[0]:
        raise ValueError(f"{frames.shape[0]} frames but {len(pts)} pts")


class ImageFolderWriter(AtomicOutput):
    """Write frames as ``%06d.png`` (0-based running index) into a folder that appears only when complete.

    Frames go to a hidden sibling ``.NAME.partial`` renamed to ``NAME`` on :meth:`close`; :meth:`abort`
    (or an exception inside ``with``) deletes it. An existing ``NAME`` is refused unless ``overwrite``.
    ``pts`` are accepted for symmetry with :class:`VideoWriter` and checked for length only.
    """

    def __init__(self, folder: str | os.PathLike[str], overwrite: bool = False, png_compression: int = 1):
        self.path = Path(folder)
        self.overwrite = overwrite
        if self.path.exists() and not overwrite:
            raise MediaError(f"{self.path}: output exists (pass overwrite to replace it)")
        if not self.path.parent.is_dir():
            raise MediaError(f"{self.path.parent}: output folder does not exist")
        self.tmp_path = self.path.parent / f".{self.path.name}.partial"
        if self.tmp_path.exists():
            shutil.rmtree(self.tmp_path)
        self.tmp_path.mkdir()
        self._params = [cv2.IMWRITE_PNG_COMPRESSION, png_compression]
        self.count = 0
        self._open = True

    def write(self, frames: np.ndarray, pts: Sequence[int]) -> None:
        """Append frames (T, H, W, 3) RGB: uint8 as 8-bit PNGs, uint16 (deep video) as 16-bit PNGs."""
        if not self._open:
            raise ValueError("writer is closed")
        check_frames(frames, pts, (np.uint8, np.uint16))
        for rgb in frames:
            ok, buf = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), self._params)
            if not ok:
                raise MediaError(f"{self.path}: PNG encoding failed")
            buf.tofile(self.tmp_path / f"{self.count:06d}.png")
            self.count += 1

    def close(self) -> None:
        """Move the finished folder into place."""
        if not self._open:
            return
        self._open = False
        if self.path.exists():
            if not self.overwrite:
                shutil.rmtree(self.tmp_path, ignore_errors=True)
                raise MediaError(f"{self.path}: output appeared while writing; not replaced")
            old = self.path.parent / f".{self.path.name}.old"
            if old.exists():
                shutil.rmtree(old)
            os.replace(self.path, old)
            os.replace(self.tmp_path, self.path)
            if old.is_dir():
                shutil.rmtree(old)
            else:
                old.unlink()
        else:
            os.replace(self.tmp_path, self.path)

    def abort(self) -> None:
        """Delete everything written; the output name is left as it was."""
        self._open = False
        shutil.rmtree(self.tmp_path, ignore_errors=True)
