"""Media I/O: probe, decode to uint8 RGB batches, encode with exact pts, image folders.

PyAV + numpy + OpenCV only (no torch, no Ray). Frames are (T, H, W, 3) uint8 RGB C-contiguous arrays;
pts are ints in the source video stream's time base. Every failure on bad input is a :class:`MediaError`
with one line naming the file and the problem.
"""

from .colour import frame_to_rgb, rgb_to_frame
from .errors import MediaError
from .images import ImageFolderWriter, image_size, list_images, natural_key, read_images
from .probe import ColourTags, StreamSummary, VideoInfo, probe, probe_image_folder
from .reader import FrameReader
from .writer import EncodeSettings, VideoWriter

__all__ = [
    "ColourTags",
    "EncodeSettings",
    "FrameReader",
    "ImageFolderWriter",
    "MediaError",
    "StreamSummary",
    "VideoInfo",
    "VideoWriter",
    "frame_to_rgb",
    "image_size",
    "list_images",
    "natural_key",
    "probe",
    "probe_image_folder",
    "read_images",
    "rgb_to_frame",
]
