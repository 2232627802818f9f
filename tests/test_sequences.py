"""Several chunks of a recurrent model per forward pass (``--sequences``): grouped like the scheduler groups
them, padded like ``forward_full`` pads a batch, so a chunk's frames do not depend on its company; through
the real pipeline (Ray actors, PyAV) they equal the module run chunk by chunk."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from models.registry import load_model
from tests.conftest import make_clip, textured_frames
from tests.test_models_basicvsr import _weights
from vsr_pipeline import UpscaleOptions
from vsr_pipeline.batch_runner import BatchOptions, run_batch
from vsr_pipeline.engine import Engine, run_sequences, set_threads
from vsr_pipeline.errors import UsageError
from vsr_pipeline.media import FrameReader, list_images, read_images
from vsr_pipeline.plan import Chunk, grouped, plan_chunks

CPU = torch.device("cpu")


def test_grouped_keeps_order_splits_on_shape_and_gives_a_full_group_at_once() -> None:
    chunks = plan_chunks(14, 2, 2)  # windows 4, 6, 6, 6, 6, 6, 4 frames
    groups = list(grouped(chunks, 2, lambda c: c.shape))
    assert [[c.index for c in g] for g in groups] == [[0], [1, 2], [3, 4], [5], [6]]
    assert [[c.index for c in g] for g in grouped(chunks, 1, lambda c: c.shape)] == [[i] for i in range(7)]
    asked: list[int] = []

    def live() -> object:  # a live source: the next chunk may be far away, a full group must not wait for it
        for c in chunks[1:]:
            asked.append(c.index)
            yield c

    first = next(grouped(live(), 2, lambda c: c.shape))  # type: ignore[arg-type]
    assert [c.index for c in first] == [1, 2] and asked == [1, 2]


def test_a_chunk_gives_the_same_frames_alone_or_with_others() -> None:
    """Engine.process_group == Engine.process per chunk, bit for bit (every pass holds 3 sequences); against
    one sequence per pass (other kernels for another batch size) at most a rounding step."""
    _weights()
    frames = textured_frames(10, 24, 16)
    chunks = [Chunk(i, 2 + 2 * i, 4 + 2 * i, 2 * i, 6 + 2 * i) for i in range(3)]  # windows of 6, keep 2:4
    items = [(slice(c.read_start, c.read_stop), c.keep, 1) for c in chunks]
    three = Engine("basicvsr", None, 4, "cpu", threads=2, precision="fp32", sequences=3)
    together = three.process_group(items, frames, frames, frames)
    alone = [three.process(w, k, frames) for w, k, _ in items]
    assert len(together) == 3 and all(np.array_equal(a, b) for a, b in zip(together, alone, strict=True))
    assert three.stats()["calls"] == 4 and three.stats()["frames"] == 12
    one = Engine("basicvsr", None, 4, "cpu", threads=2, precision="fp32")
    single = [one.process(w, k, frames) for w, k, _ in items]
    diff = np.abs(np.stack(single).astype(int) - np.stack(together).astype(int))
    assert diff.max() <= 1 and (diff > 0).mean() < 0.01
    with pytest.raises(ValueError, match="equal windows"):
        three.process_group([items[0], (slice(0, 4), slice(1, 3), 1)], frames, frames)
    assert Engine("espcn", None, 2, "cpu", threads=1, sequences=4).sequences == 1  # per-frame: --batch


@pytest.mark.slow
@pytest.mark.usefixtures("ray_local")
def test_pipeline_runs_neighbouring_chunks_together_and_equals_the_module(tmp_path: Path) -> None:
    """14 frames in chunks of 2 with 2 padding: the five middle chunks share one shape and go to the upscaler
    in pairs (5 forward calls for 7 chunks); every frame equals BasicVSR run chunk by chunk in passes of 2."""
    _weights()
    clip = make_clip(tmp_path / "in.mp4", textured_frames(14, 24, 16))
    opts = UpscaleOptions(model="basicvsr", chunk=2, padding=2, precision="fp32", sequences=2, progress=False)
    out = tmp_path / "out"
    summary = run_batch([str(clip)], BatchOptions(opts, out, format="png", upscalers=1, threads=2))
    assert summary["exit_code"] == 0, summary["videos"]
    assert sum(summary["upscaler_calls"]) == 5
    got = read_images(list_images(out / "in"))
    with FrameReader(clip) as reader:
        lr = reader.read(14)[0]
    set_threads(2)
    model = load_model("basicvsr", "reds4", 4)
    want = np.concatenate([run_sequences(model, [lr[c.read_start : c.read_stop]], CPU, 2, c.keep)[0]
                           for c in plan_chunks(14, 2, 2)])
    assert got.shape == (14, 64, 96, 3) and np.array_equal(got, want)


def test_a_stream_refuses_sequences(tmp_path: Path) -> None:
    from vsr_pipeline.streaming import stream_upscale

    with pytest.raises(UsageError, match="--sequences"):
        stream_upscale("-", tmp_path / "out.mkv", UpscaleOptions(model="basicvsr", sequences=2))


def test_out_of_memory_halves_the_sequences_per_pass_before_tiling() -> None:
    """Four chunks sent together to an engine whose forward pass fails on more than two sequences: they run
    as two passes of two, untiled, and give what an engine of two sequences gives; the smaller setting stays,
    and ``reset`` undoes it."""
    _weights()
    frames = textured_frames(10, 24, 16)
    chunks = [Chunk(i, 2 + 2 * i, 4 + 2 * i, 2 * i, 6 + 2 * i) for i in range(2)]
    items = [(slice(c.read_start, c.read_stop), c.keep, 1) for c in chunks] * 2  # 4 chunks, equal windows
    two = Engine("basicvsr", None, 4, "cpu", threads=2, precision="fp32", sequences=2)
    want = two.process_group(items[:2], frames, frames) * 2
    four = Engine("basicvsr", None, 4, "cpu", threads=2, precision="fp32", sequences=4)
    real, passes = four.forward, []

    def fails_above_two(x: torch.Tensor, **kw: object) -> torch.Tensor:
        passes.append(len(x))
        if len(x) > 2:
            raise torch.OutOfMemoryError("injected: out of memory")
        return real(x, **kw)

    four.forward = fails_above_two
    got = four.process_group(items, *[frames] * 4)
    assert passes == [4, 2, 2] and (four.sequences, four.tile) == (2, None)
    assert four.backoffs == [{"tile": None, "batch": 4, "sequences": 2}]
    assert all(np.array_equal(a, b) for a, b in zip(got, want, strict=True))
    four.reset()
    assert four.sequences == 4 and not four.backoffs
