"""Training: configs round-trip, datasets/degradations, losses, a few steps lower the loss, resume is
bit-identical, the CLI writes its outputs. Tiny images and models: each test takes a second or two."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import yaml
from safetensors.torch import load_file

from vsr_pipeline.degrade import degrade_bi
from vsr_pipeline.metrics import psnr_y
from vsr_pipeline.train import config as tc
from vsr_pipeline.train.datasets import PatchSampler, load_pools
from vsr_pipeline.train.degradations import bicubic_down, degrade_window, h264_roundtrip, jpeg_roundtrip
from vsr_pipeline.train.losses import GeneratorLoss, charbonnier, total_variation
from vsr_pipeline.train.trainer import Trainer, lr_factor, read_metrics

ROOT = Path(__file__).resolve().parents[1]


def _texture(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Smooth random texture (blurred noise at two scales) with edges: uint8 RGB."""
    base = rng.random((h // 8 + 1, w // 8 + 1, 3)).astype(np.float32)
    img = cv2.resize(base, (w, h), interpolation=cv2.INTER_CUBIC) * 0.7
    img += cv2.GaussianBlur(rng.random((h, w, 3)).astype(np.float32), (0, 0), 1.0) * 0.3
    return np.clip(img * 255, 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def photo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("photos")
    rng = np.random.default_rng(0)
    for i in range(3):
        cv2.imwrite(str(d / f"img{i}.png"), _texture(rng, 72, 96)[..., ::-1])
    return d


def _cfg(photo_dir: Path, out: Path, **over: object) -> tc.TrainConfig:
    raw = {
        "name": "tiny",
        "model": "espcn",
        "scale": 2,
        "out_dir": str(out),
        "data": {
            "photos": [str(photo_dir)],
            "val_photos": ["img2"],
            "levels": [96],
            "patch": 8,
            "val_crops": 2,
            "val_patch": 12,
        },
        "optim": {"lr": 3e-3, "steps": 6, "batch": 4, "schedule": "cosine"},
        "val_every": 3,
        "ckpt_every": 3,
        "log_every": 1,
        "threads": 1,
    }
    raw.update(over)
    return tc.from_dict(raw)


@pytest.mark.parametrize("path", sorted((ROOT / "configs" / "train").glob("*.yaml")), ids=lambda p: p.stem)
def test_shipped_configs_round_trip(path: Path) -> None:
    cfg = tc.load(path)
    again = tc.from_dict(yaml.safe_load(tc.dump(cfg)))
    assert again == cfg
    assert tc.to_dict(again) == tc.to_dict(cfg)
    # never train on the benchmark sets
    assert not any("benchmarks" in s for s in cfg.data.photos + cfg.data.videos)


def test_config_rejects_unknown_and_bad_fields() -> None:
    with pytest.raises(tc.TrainConfigError, match=r"optim.*unknown field 'lrate'"):
        tc.from_dict({"name": "x", "model": "espcn", "scale": 2, "optim": {"lrate": 1}})
    with pytest.raises(tc.TrainConfigError, match=r"loss\.pixel"):
        tc.from_dict({"name": "x", "model": "espcn", "scale": 2, "loss": {"pixel": "l3"}})
    with pytest.raises(tc.TrainConfigError, match="frames"):
        tc.from_dict({"name": "x", "model": "espcn", "scale": 2, "data": {"frames": 2}})


def test_bicubic_down_equals_benchmark_degradation() -> None:
    frames = _texture(np.random.default_rng(1), 48, 40)[None]
    assert np.array_equal(bicubic_down(frames, 4), degrade_bi(frames, 4))
    assert np.array_equal(bicubic_down(frames, 2), degrade_bi(frames, 2))


def test_compression_round_trips_are_lossy_but_close() -> None:
    frames = np.stack([_texture(np.random.default_rng(i), 32, 48) for i in range(3)])
    for out in (jpeg_roundtrip(frames, 40), h264_roundtrip(frames, 30)):
        assert out.shape == frames.shape and out.dtype == np.uint8
        assert not np.array_equal(out, frames)
        assert 22 < psnr_y(out[1], frames[1]) < 60
    cfg = tc.DegradationConfig(noise=10.0, noise_prob=1.0)
    lr = degrade_window(frames, 2, cfg, np.random.default_rng(0))
    assert lr.shape == (3, 16, 24, 3)
    assert not np.array_equal(lr, degrade_bi(frames, 2))


def test_patches_crop_the_degraded_whole_image(photo_dir: Path) -> None:
    """Without augmentation a patch's LR equals the same region of the degraded whole photo (the margin
    removes border effects) and its HR is the photo's pixels."""
    data = tc.DataConfig(photos=[str(photo_dir)], levels=[96], patch=8, augment=False)
    pools = load_pools(data, "train")
    sampler = PatchSampler(pools, data, tc.DegradationConfig(), 2)
    lr, hr = sampler.sample_pair(np.random.default_rng(3), 8, augment=False)
    assert lr.shape == (1, 8, 8, 3) and hr.shape == (16, 16, 3)
    for img in (p[0] for p in pools.photos):
        for y in range(0, img.shape[0] - 15, 2):  # find where the HR patch came from (even offsets match BI)
            for x in range(0, img.shape[1] - 15, 2):
                if np.array_equal(img[y : y + 16, x : x + 16], hr):
                    whole = degrade_bi(img[None], 2)[0]
                    assert np.array_equal(whole[y // 2 : y // 2 + 8, x // 2 : x // 2 + 8], lr[0])
                    return
    pytest.skip("patch drawn at an odd HR offset (BI phase differs); seed choice changed")


def test_synthetic_camera_path_windows_are_shifted_copies(photo_dir: Path) -> None:
    data = tc.DataConfig(
        photos=[str(photo_dir)], levels=[96], patch=6, frames=3, max_shift=4.0, augment=False
    )
    sampler = PatchSampler(load_pools(data, "train"), data, tc.DegradationConfig(), 2)
    win = sampler._photo_window(np.random.default_rng(5), 28, 3)
    assert win.shape == (3, 28, 28, 3)
    found = 0
    for t in (0, 2):
        for dy in range(-6, 7):
            for dx in range(-6, 7):
                a = win[1, max(0, dy) : 28 + min(0, dy), max(0, dx) : 28 + min(0, dx)]
                b = win[t, max(0, -dy) : 28 + min(0, -dy), max(0, -dx) : 28 + min(0, -dx)]
                if np.array_equal(a, b):
                    found += 1
                    break
    assert found == 2


def test_a_codec_window_gives_single_frames_coded_as_part_of_a_stream() -> None:
    """``codec_window: 5`` with ``frames: 1``: each pair's LR is one frame of a 5-frame window coded as one
    MPEG-4 stream (found by trying every place and direction of the window), for some pairs not the first
    and unlike that frame coded alone (a keyframe): a P-frame's artefacts."""
    from vsr_pipeline.degradation import parse_degradation
    from vsr_pipeline.train.datasets import MARGIN, Pools

    rng, P = np.random.default_rng(1), 24  # LR patches of 4 macroblocks (at 1 the encoder codes most intra)
    clip = np.stack([np.roll(_texture(rng, 72, 96), 3 * i, axis=1) for i in range(8)])
    data = tc.DataConfig(patch=P, frames=1, codec_window=5, augment=False, video_prob=1.0)
    fixed = parse_degradation("bi+mpeg4:10")
    sampler = PatchSampler(Pools([], [clip]), data, tc.DegradationConfig(), 2, fixed=fixed)
    side, m = (P + 2 * MARGIN) * 2, MARGIN * 2
    places, unlike_alone = [], []
    for seed in range(6):
        lr, hr = sampler.sample_pair(np.random.default_rng(seed), P, augment=False)
        assert lr.shape == (1, P, P, 3) and hr.shape == (2 * P, 2 * P, 3)
        spots = [(t, y, x) for t in range(8) for y in range(73 - 2 * P) for x in range(97 - 2 * P)
                 if np.array_equal(clip[t, y : y + 2 * P, x : x + 2 * P], hr)]
        assert len(spots) == 1
        t, y, x = spots[0]
        candidates = [(k, [t + step * (j - k) for j in range(5)]) for k in range(5) for step in (1, -1)]
        windows = [(k, clip[idx, y - m : y - m + side, x - m : x - m + side]) for k, idx in candidates
                   if min(idx) >= 0 and max(idx) <= 7]
        found = next((k for k, w in windows if w.shape[1:3] == (side, side) and np.array_equal(
            fixed.apply(w, 2)[k, MARGIN : MARGIN + P, MARGIN : MARGIN + P], lr[0])), None)
        assert found is not None, seed
        places.append(found)
        alone = fixed.apply(clip[t : t + 1, y - m : y - m + side, x - m : x - m + side], 2)[0]
        unlike_alone.append(not np.array_equal(alone[MARGIN : MARGIN + P, MARGIN : MARGIN + P], lr[0]))
    assert any(k > 0 for k in places) and any(unlike_alone), (places, unlike_alone)


def test_losses() -> None:
    x, y = torch.zeros(1, 3, 8, 8), torch.ones(1, 3, 8, 8)
    assert charbonnier(x, y).item() == pytest.approx(1.0, abs=1e-5)
    assert total_variation(y).item() == 0.0
    ramp = torch.arange(8.0).view(1, 1, 1, 8).expand(1, 3, 8, 8)
    assert total_variation(ramp).item() == pytest.approx(1.0)
    with pytest.raises(tc.TrainConfigError, match="VGG19 weights"):
        GeneratorLoss(tc.LossConfig(perceptual=1.0, vgg_weights="/nonexistent/vgg19.pth"))


def test_schedule() -> None:
    cfg = tc.from_dict(
        {
            "name": "x",
            "model": "espcn",
            "scale": 2,
            "optim": {"lr": 1e-3, "min_lr": 1e-5, "steps": 100, "warmup": 10},
        }
    )
    assert lr_factor(cfg, 0) == pytest.approx(0.1)
    assert lr_factor(cfg, 10) == pytest.approx(1.0)
    assert lr_factor(cfg, 100) == pytest.approx(0.01)


def test_a_few_steps_lower_the_loss_on_a_fixed_batch(photo_dir: Path, tmp_path: Path) -> None:
    torch.set_num_threads(1)
    trainer = Trainer(_cfg(photo_dir, tmp_path))
    lr, hr = trainer.batch(0)
    losses = [trainer.train_step(lr, hr)["total"] for _ in range(15)]
    assert losses[-1] < 0.7 * losses[0]


def test_vespcn_motion_loss_terms(photo_dir: Path, tmp_path: Path) -> None:
    cfg = _cfg(
        photo_dir, tmp_path, model="vespcn", loss={"pixel": "mse", "motion": 0.01, "smoothness": 0.001}
    )
    cfg.data.frames, cfg.data.max_shift = 3, 3.0
    trainer = Trainer(cfg)
    lr, hr = trainer.batch(0)
    assert lr.shape == (4, 3, 3, 8, 8)
    terms = trainer.train_step(lr, hr)
    assert terms["motion"] > 0 and terms["smoothness"] > 0
    assert terms["total"] > terms["mse"]


def test_resume_is_bit_identical(photo_dir: Path, tmp_path: Path) -> None:
    torch.set_num_threads(1)
    straight = Trainer(_cfg(photo_dir, tmp_path / "a"))
    straight.fit(progress=False)
    first = Trainer(_cfg(photo_dir, tmp_path / "b"))
    first.fit(progress=False, max_steps=3)  # checkpoint at step 3, then "killed"
    resumed = Trainer(_cfg(photo_dir, tmp_path / "b"))
    summary = resumed.fit(resume=True, progress=False)
    assert summary["step"] == 6
    a = load_file(tmp_path / "a" / "last.safetensors")
    b = load_file(tmp_path / "b" / "last.safetensors")
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    ckpt = torch.load(tmp_path / "b" / "checkpoints" / "step_0000006" / "optimizer.pt", weights_only=True)
    ref = torch.load(tmp_path / "a" / "checkpoints" / "step_0000006" / "optimizer.pt", weights_only=True)
    assert all(
        torch.equal(ckpt["optimizer"]["state"][i]["exp_avg_sq"], ref["optimizer"]["state"][i]["exp_avg_sq"])
        for i in ref["optimizer"]["state"]
    )
    # and different seeds give different weights (the comparison above can fail)
    other = Trainer(_cfg(photo_dir, tmp_path / "c", seed=1))
    other.fit(progress=False)
    c = load_file(tmp_path / "c" / "last.safetensors")
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_cli_train_writes_weights_log_and_plot(
    photo_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    from vsr_pipeline.cli import main

    cfg_path = tmp_path / "tiny.yaml"
    cfg_path.write_text(tc.dump(_cfg(photo_dir, tmp_path / "run")))
    assert main(["train", str(cfg_path), "--json", "--no-progress"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    run = Path(result["run_dir"])
    assert result["step"] == 6 and np.isfinite(result["best_psnr"])
    for name in ("best.safetensors", "last.safetensors", "curves.png", "metrics.jsonl", "config.yaml"):
        assert (run / name).is_file(), name
    train, val = read_metrics(run / "metrics.jsonl")
    assert sorted(train) == [1, 2, 3, 4, 5, 6] and sorted(val) == [3, 6]
    assert main(["train", str(tmp_path / "missing.yaml")]) == 2


def test_least_squares_fit_recovers_a_known_linear_upscaler() -> None:
    import torch.nn.functional as F

    from vsr_pipeline.train.warm_start import fit_linear_interpolator

    g = torch.Generator().manual_seed(0)
    w0, b0 = torch.randn(12, 3, 5, 5, generator=g), torch.randn(12, generator=g)

    def batches(i: int) -> tuple[torch.Tensor, torch.Tensor]:
        lr = torch.rand(4, 3, 12, 12, generator=g)
        return lr, F.pixel_shuffle(F.conv2d(lr, w0, b0, padding=2), 2)

    w, b = fit_linear_interpolator(batches, 2, 4)
    assert torch.allclose(w, w0, atol=1e-3) and torch.allclose(b, b0, atol=1e-3)


def test_warm_starts_compute_the_fitted_interpolators() -> None:
    import torch.nn.functional as F

    from models.registry import build_model
    from vsr_pipeline.train.warm_start import espcn_linear_init, fsrcnn_linear_init

    g = torch.Generator().manual_seed(1)
    lr = torch.rand(2, 3, 10, 12, generator=g)
    w, b = torch.randn(48, 3, 5, 5, generator=g) * 0.05, torch.rand(48, generator=g) * 0.1
    espcn = build_model("espcn", 4)
    espcn_linear_init(espcn, w, b, rest_gain=0.0)
    ref = F.pixel_shuffle(F.conv2d(lr, w, b, padding=2), 4)
    with torch.no_grad():
        out = espcn(lr)
    assert (out - ref).abs().max().item() < 2e-3  # tanh's curvature at gain 0.05
    fsrcnn = build_model("fsrcnn", 4)
    wd, bd = torch.randn(3, 3, 9, 9, generator=g) * 0.05, torch.rand(3, generator=g)
    fsrcnn_linear_init(fsrcnn, wd, bd)
    torch.nn.init.zeros_(fsrcnn.deconv.weight[3:])  # silence the other channels to compare the linear path
    d = fsrcnn.deconv
    ref = F.conv_transpose2d(lr, wd, bd, stride=4, padding=d.padding, output_padding=d.output_padding)
    with torch.no_grad():
        assert torch.allclose(fsrcnn(lr), ref, atol=1e-5)


def test_refit_espcn_output_recovers_the_output_layer_of_a_known_network() -> None:
    """Targets made by a network with the same feature layers: the refitted output layer reproduces it."""
    import copy

    from models.registry import build_model
    from vsr_pipeline.train.warm_start import refit_espcn_output

    torch.manual_seed(3)
    teacher = build_model("espcn", 3).eval()
    student = copy.deepcopy(teacher)
    torch.nn.init.normal_(student.body[4].weight)
    g = torch.Generator().manual_seed(4)

    def batches(i: int) -> tuple[torch.Tensor, torch.Tensor]:
        lr = torch.rand(4, 3, 12, 12, generator=g)
        with torch.no_grad():
            return lr, teacher(lr)

    refit_espcn_output(student, batches, 6, ridge=0.0)
    lr = torch.rand(2, 3, 10, 10, generator=g)
    with torch.no_grad():
        err = (student(lr) - teacher(lr))[..., 3:-3, 3:-3].abs().max().item()  # interior: fitted there
    assert err < 1e-4


def test_perceptual_and_adversarial_training_step(photo_dir: Path, tmp_path: Path) -> None:
    """With VGG19 weights on disk (random here: the layout is what matters) the SRGAN-style losses train."""
    from safetensors.torch import save_file

    from vsr_pipeline.train.losses import _VGG19

    state, ch, idx = {}, 3, 0
    g = torch.Generator().manual_seed(0)
    for v in _VGG19:
        if v == "M":
            idx += 1
            continue
        state[f"features.{idx}.weight"] = torch.randn(int(v), ch, 3, 3, generator=g) * 0.05
        state[f"features.{idx}.bias"] = torch.zeros(int(v))
        ch, idx = int(v), idx + 2
    save_file(state, tmp_path / "vgg19.safetensors")
    cfg = _cfg(photo_dir, tmp_path / "run", loss={"pixel": "l1", "perceptual": 0.1, "adversarial": 0.01,
                                                  "vgg_weights": str(tmp_path / "vgg19.safetensors")})
    cfg.data.patch = 16  # HR 32: the discriminator halves it four times
    trainer = Trainer(cfg)
    terms = trainer.train_step(*trainer.batch(0))
    assert terms["perceptual"] > 0 and terms["adversarial"] > 0
    assert trainer.disc is not None
    before = [p.detach().clone() for p in trainer.disc.parameters()]
    trainer.train_step(*trainer.batch(1))
    assert any(not torch.equal(a, b) for a, b in zip(before, trainer.disc.parameters(), strict=True))
