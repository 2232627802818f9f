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

    def info(frames: int, w: int = 160, h: int = 68) -> tuple[int, int, int]:
        return w, h, frames

    fit = CHUNK_FEATURE_BYTES // (64 * 4 * 160 * 68 * 3) - 20  # 236 at 68x160, padding 10
    assert default_chunk(*info(250), 10) == 125  # two even chunks, not 236 + 14
    assert default_chunk(*info(200), 10) == 200 <= fit  # the whole clip fits: no padding recomputed
    chunk = default_chunk(*info(1000), 10)
    assert chunk <= fit and -(-1000 // chunk) == -(-1000 // fit)  # as few chunks as memory allows
    assert default_chunk(*info(0), 10) == 100  # live stream: 10x the padding, for latency
    assert default_chunk(*info(250), 0) == 50  # single-image models: the encoder starts early
    assert default_chunk(*info(250, 1280, 720), 10) == 8  # large frames: memory decides, floor of 8


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
