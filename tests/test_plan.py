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
    from vsr_pipeline.pipeline import RECURRENT_PADDING, default_padding

    assert default_padding("vespcn") == 1
    assert default_padding("edvr-m") == default_padding("edvr-l") == 2
    assert default_padding("espcn") == 0
    assert default_padding("basicvsr") == RECURRENT_PADDING
