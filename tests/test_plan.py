import pytest

from vsr_pipeline.plan import batches_for, plan_chunks


@pytest.mark.parametrize("frames,chunk,padding", [(1, 5, 2), (10, 3, 0), (10, 3, 5), (100, 7, 3), (7, 7, 1)])
def test_chunks_cover_every_frame_once(frames: int, chunk: int, padding: int) -> None:
    chunks = plan_chunks(frames, chunk, padding)
    core = [i for c in chunks for i in range(c.start, c.stop)]
    assert core == list(range(frames))
    for c in chunks:
        assert c.read_start == max(0, c.start - padding)
        assert c.read_stop == min(frames, c.stop + padding)
        window = list(range(c.read_start, c.read_stop))
        assert window[c.keep] == list(range(c.start, c.stop))
        covered = [i for b in batches_for(c, chunk) for i in range(b * chunk, min(frames, (b + 1) * chunk))]
        assert set(window) <= set(covered)


def test_empty_and_bad_arguments() -> None:
    assert plan_chunks(0, 4, 2) == []
    with pytest.raises(ValueError):
        plan_chunks(10, 0, 1)
    with pytest.raises(ValueError):
        plan_chunks(10, 2, -1)


def test_default_padding_is_the_radius_for_window_models() -> None:
    from models.registry import get_spec
    from vsr_pipeline.plan import default_padding

    assert default_padding("vespcn") == 1
    assert default_padding("edvr-m") == default_padding("edvr-l") == 2
    assert default_padding("espcn") == 0
    assert default_padding("basicvsr") == get_spec("basicvsr").padding == 10  # measured, on its spec


def test_default_chunk_recurrent_takes_what_memory_allows_evenly_others_stay_small() -> None:
    from vsr_pipeline.plan import CHUNK_FEATURE_BYTES, default_chunk

    def recurrent(frames: int, w: int = 160, h: int = 68, budget: int = CHUNK_FEATURE_BYTES) -> int:
        return default_chunk(w, h, frames, 10, True, 1024, 96, budget)

    fit = (CHUNK_FEATURE_BYTES - 20 * 96 * 160 * 68) // (1120 * 160 * 68)  # 174 core frames at 160x68
    assert recurrent(170) == 170 <= fit  # the whole clip fits: no padding recomputed
    assert recurrent(250) == 125  # two even chunks, not 174 + 76
    chunk = recurrent(5000)
    assert chunk <= fit and -(-5000 // chunk) == -(-5000 // fit)  # as few chunks as memory allows
    assert recurrent(0) == 100  # live stream: 10x the padding, for latency
    # real footage (640x272): more memory, larger chunks and less padding recomputed (8 core frames made
    # each output frame cost 2.75 computed ones, docs/benchmarks.md 8.5d)
    assert recurrent(250, 640, 272) == 9
    assert recurrent(250, 640, 272, 3 * 1024**3) == 14
    assert recurrent(250, 1280, 720) == 8  # large frames: the floor
    # single-image and window models: 50 (the encoder starts early), fewer for large frames
    assert default_chunk(160, 68, 250, 0, False) == default_chunk(160, 68, 250, 2, False) == 50
    assert default_chunk(640, 272, 250, 0, False) == 16


def test_chunk_budget_follows_the_machine_within_bounds() -> None:
    from vsr_pipeline.plan import CHUNK_FEATURE_BYTES, MAX_CHUNK_FEATURE_BYTES, chunk_budget, machine_memory

    gib = 1024**3
    assert chunk_budget(None) == CHUNK_FEATURE_BYTES  # unknown (a joined cluster): the floor
    assert chunk_budget(8 * gib) == CHUNK_FEATURE_BYTES  # a small machine: the floor
    assert chunk_budget(32 * gib) == 4 * gib  # an eighth of it
    assert chunk_budget(32 * gib, sharing=2) == CHUNK_FEATURE_BYTES  # two upscalers share it
    assert chunk_budget(512 * gib) == MAX_CHUNK_FEATURE_BYTES
    total = machine_memory("cpu")
    assert total is not None and total > gib  # this machine's RAM, from the OS


def test_live_chunks_equal_the_file_plan_for_a_recurrent_model() -> None:
    """Frames arriving one by one: each chunk is cut once its core and context have arrived, and at the end
    of the stream the chunks are those ``plan_chunks`` gives the whole clip (same HR frames)."""
    from vsr_pipeline.plan import live_policy

    policy = live_policy("recurrent", 0, 4, 16, 10, 10)
    assert policy.latency_frames == 25
    got, done, total = [], 0, 50
    for received in range(1, total + 1):
        while (c := policy.next_chunk(len(got), done, received, received == total)) is not None:
            got.append(c)
            done = c.stop
    assert got == plan_chunks(total, 16, 10)


def test_live_chunks_of_a_window_model_wait_for_the_radius_only() -> None:
    from vsr_pipeline.plan import live_policy

    policy = live_policy("window", 1, 4, None, None, 1)
    assert policy.latency_frames == 1
    assert policy.next_chunk(0, 0, 1, False) is None  # frame 0 needs frame 1
    c = policy.next_chunk(0, 0, 3, False)
    assert c is not None and (c.start, c.stop, c.read_start, c.read_stop) == (0, 2, 0, 3)
    c = policy.next_chunk(1, 2, 3, True)  # end of stream: the last frame with what there is
    assert c is not None and (c.start, c.stop, c.read_start, c.read_stop) == (2, 3, 1, 3)
