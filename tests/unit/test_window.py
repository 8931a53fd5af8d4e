"""WindowAccumulator: time cuts on a fake clock, size cuts, boundaries, nothing lost."""

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vectorticks.columns import TickBatch
from vectorticks.window import WindowAccumulator

MS = 1_000_000
W = 100 * MS


def ticks(received_ns, token=1):
    received_ns = np.asarray(received_ns, np.int64)
    return TickBatch.from_columns(instrument_token=np.full(len(received_ns), token),
                                  received_ns=received_ns,
                                  last_price=np.arange(len(received_ns), dtype=float))


def times(windows):
    return [w.ticks.received_ns.tolist() for w in windows]


def test_time_cut_waits_for_clock_and_includes_boundary_tick_in_next_window():
    acc = WindowAccumulator(W, 1000)
    acc.add(ticks([0, 50 * MS, W - 1]))
    assert acc.cut(now_ns=W - 1) == []            # window [0, W) not over yet
    (w0,) = acc.cut(now_ns=W)                      # cell 0 over exactly at W
    assert (w0.start_ns, w0.end_ns, w0.partial) == (0, W, False)
    assert w0.ticks.received_ns.tolist() == [0, 50 * MS, W - 1]
    acc.add(ticks([W, W + 1, 2 * W - 1, 2 * W]))  # 2W belongs to [2W, 3W)
    (w1,) = acc.cut()
    assert (w1.start_ns, w1.end_ns) == (W, 2 * W)
    assert w1.ticks.received_ns.tolist() == [W, W + 1, 2 * W - 1]
    assert acc.held == 1


def test_later_cell_cuts_earlier_one_without_clock():
    acc = WindowAccumulator(W, 1000)
    acc.add(ticks([10, 20]))
    assert not acc.due
    acc.add(ticks([3 * W + 5]))
    assert acc.due
    windows = acc.cut()
    assert times(windows) == [[10, 20]]
    assert acc.held == 1


def test_late_tick_goes_to_open_window_never_to_a_cut_one():
    acc = WindowAccumulator(W, 1000)
    acc.add(ticks([10]))
    assert times(acc.cut(now_ns=W)) == [[10]]
    acc.add(ticks([W - 5]))                        # stamped in cell 0, which is already cut
    assert acc.cut(now_ns=W + 1) == []             # it waits in cell 1 ...
    (w,) = acc.cut(now_ns=2 * W)
    assert (w.start_ns, w.end_ns) == (W, 2 * W)    # ... and is published with it
    assert w.ticks.received_ns.tolist() == [W - 5]


def test_out_of_order_ticks_within_a_batch_follow_arrival_order():
    acc = WindowAccumulator(W, 1000)
    acc.add(ticks([W + 1, 5, W + 2]))              # 5 arrives after a cell-1 tick
    (w,) = acc.cut(now_ns=2 * W)
    assert w.ticks.received_ns.tolist() == [W + 1, 5, W + 2]
    assert (w.start_ns, w.end_ns) == (W, 2 * W)


def test_size_cut_in_chunks_and_bounds_chain():
    acc = WindowAccumulator(W, 3)
    acc.add(ticks([1, 2, 3, 4, 5, 6, 7]))
    assert acc.due
    w1, w2 = acc.cut()
    assert times([w1, w2]) == [[1, 2, 3], [4, 5, 6]]
    assert w1.partial and w2.partial
    assert (w1.start_ns, w1.end_ns) == (0, 4)
    assert (w2.start_ns, w2.end_ns) == (4, 7)
    (w3,) = acc.cut(now_ns=W)
    assert w3.ticks.received_ns.tolist() == [7]
    assert (w3.start_ns, w3.end_ns, w3.partial) == (7, W, False)


def test_flush_cuts_partial_window_and_next_ticks_start_a_new_one():
    acc = WindowAccumulator(W, 1000)
    acc.add(ticks([1, 2]))
    (w,) = acc.flush()
    assert (w.start_ns, w.end_ns, w.partial) == (0, 3, True)
    acc.add(ticks([5]))
    (w2,) = acc.flush()
    assert (w2.start_ns, w2.end_ns) == (3, 6)
    assert acc.flush() == [] and acc.held == 0


def test_buffers_grow_and_keep_every_column():
    acc = WindowAccumulator(W, 10**9, initial_capacity=16)
    batch = TickBatch.from_columns(instrument_token=np.arange(1000) % 7 + 1,
                                   received_ns=np.arange(1000),
                                   volume_traded=np.arange(1000) * 3,
                                   bid_price=np.linspace(1, 2, 1000))
    for part in np.array_split(np.arange(1000), 13):
        acc.add(batch.take(part))
    (w,) = acc.cut(now_ns=W)
    for name, col in batch:
        np.testing.assert_array_equal(getattr(w.ticks, name), col, err_msg=name)


def test_rejects_bad_parameters():
    with pytest.raises(ValueError):
        WindowAccumulator(0, 10)
    with pytest.raises(ValueError):
        WindowAccumulator(W, 0)


@settings(max_examples=150, deadline=None)
@given(
    gaps=st.lists(st.integers(0, 3 * W), min_size=1, max_size=200),
    split=st.lists(st.integers(1, 40), min_size=1, max_size=50),
    polls=st.lists(st.integers(0, 5 * W), max_size=30),
    max_size=st.integers(1, 50),
)
def test_no_tick_lost_or_duplicated_and_windows_ordered(gaps, split, polls, max_size):
    received = np.cumsum(gaps).astype(np.int64)
    batch = TickBatch.from_columns(instrument_token=np.ones(len(received)),
                                   received_ns=received,
                                   last_price=np.arange(len(received), dtype=float))
    acc = WindowAccumulator(W, max_size)
    out, pos, clock = [], 0, 0
    polls = iter(polls)
    for size in split * (len(received) // len(split) + 1):
        if pos >= len(received):
            break
        acc.add(batch.take(slice(pos, pos + size)))
        pos = min(pos + size, len(received))
        if acc.due:
            out += acc.cut()
        clock = max(clock, int(received[pos - 1]) + next(polls, 0))
        out += acc.cut(clock)
    out += acc.flush()
    seen = np.concatenate([w.ticks.last_price for w in out])
    np.testing.assert_array_equal(seen, np.arange(len(received), dtype=float))
    assert all(len(w.ticks) <= max_size for w in out)
    assert all(w.start_ns <= w.end_ns for w in out)
    ends = [w.end_ns for w in out]
    assert ends == sorted(ends)
    assert all(a.end_ns <= b.start_ns for a, b in itertools.pairwise(out))
