"""kpng.fanout.history: the same answers as a plain bounded deque, across block boundaries."""

from __future__ import annotations

import gc
from collections import deque

from hypothesis import given, settings
from hypothesis import strategies as st

from kpng.fanout.history import BLOCK, Entry, History


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.integers(0, 50), max_size=4 * BLOCK + 7),
    st.integers(0, 3 * BLOCK),
    st.integers(0, 2000),
    st.data(),
)
def test_history_matches_a_bounded_deque(
    sizes: list[int], max_runs: int, max_bytes: int, data: st.DataObject
) -> None:
    history, model = History(), deque[Entry]()
    model_size = 0
    for seq, size in enumerate(sizes, start=1):
        run = bytes(size)
        history.add(seq, 1, run, max_runs, max_bytes)
        model.append((seq, 1, run))
        model_size += size
        while model and (len(model) > max_runs or model_size > max_bytes):
            model_size -= len(model.popleft()[2])
        assert list(history.entries()) == list(model)
        assert (history.count, history.size) == (len(model), model_size)
        since = data.draw(st.integers(-1, seq + 1), label="since")
        want = (
            None
            if not model or model[0][0] > since + 1
            else [(c, r) for s, c, r in model if s > since]
        )
        assert history.since(since) == want


def test_the_collector_stops_walking_full_blocks() -> None:
    history = History()
    for seq in range(1, 10 * BLOCK + 3):
        history.add(seq, 1, b"run", 1000, 1 << 20)
    for _ in range(4):  # a tuple is untracked once what it holds is: the outer one later
        gc.collect()
    tracked = [o for o in gc.get_referents(history) if gc.is_tracked(o) and o is not History]
    assert tracked == [history._tail] and len(history._tail) == 2  # blocks: untracked
