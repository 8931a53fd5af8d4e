"""WindowAccumulator: columnar buffers cut into windows by receive time or by size.

Windows sit on a grid of ``window_ns`` of *receive* time (exchange timestamps are whole
seconds): window ``k`` covers ``[k·W, (k+1)·W)``. Each tick is assigned its cell when it
is added, as the largest cell seen so far and never one already cut, so cells never go
backwards; a late tick lands in the open window instead of being lost. A cell is cut
when the clock passes its end, when a later cell has ticks (replays need no clock), or in
chunks of ``max_batch_size`` ticks. Assignment depends only on the ticks' order and
``received_ns`` and on the clock values given to :meth:`cut`, so a replay that drives the
clock from the recorded times gives the same windows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .columns import TICK_COLUMNS, TickBatch


@dataclass(frozen=True, slots=True)
class CutWindow:
    """The ticks of one window and its bounds ``[start_ns, end_ns)`` of receive time."""

    start_ns: int
    end_ns: int
    ticks: TickBatch
    partial: bool  # cut before its time ran out: full (max_batch_size) or flushed


class WindowAccumulator:
    """Accumulates ticks into preallocated, growable columns and cuts them into windows."""

    def __init__(self, window_ns: int, max_batch_size: int, initial_capacity: int = 8192):
        if window_ns <= 0:
            raise ValueError("window_ns must be positive")
        if max_batch_size <= 0:
            raise ValueError("max_batch_size must be positive")
        self.window_ns = int(window_ns)
        self.max_batch_size = int(max_batch_size)
        capacity = max(16, int(initial_capacity))
        self._cols = {c.name: np.empty(capacity, c.dtype) for c in TICK_COLUMNS}
        self._cell = np.empty(capacity, np.int64)
        self._n = 0
        self._floor: int | None = None   # smallest cell a new tick may get
        self._last_end: int | None = None  # end of the last window cut

    @property
    def held(self) -> int:
        """Ticks waiting in the open window(s)."""
        return self._n

    @property
    def due(self) -> bool:
        """Whether :meth:`cut` would cut a window without the clock: a full window or a
        cell followed by a later one."""
        n = self._n
        return n >= self.max_batch_size or (n > 0 and self._cell[0] != self._cell[n - 1])

    def add(self, batch: TickBatch) -> None:
        """Append a batch (in arrival order); no copy of the caller's arrays is kept."""
        m = len(batch)
        if m == 0:
            return
        cells = np.maximum.accumulate(batch.received_ns // self.window_ns)
        if self._floor is not None:
            np.maximum(cells, self._floor, out=cells)
        self._floor = int(cells[-1])
        self._reserve(self._n + m)
        lo, hi = self._n, self._n + m
        for name, col in batch:
            self._cols[name][lo:hi] = col
        self._cell[lo:hi] = cells
        self._n = hi

    def cut(self, now_ns: int | None = None, *, flush: bool = False) -> list[CutWindow]:
        """Cut every window that is due: full ones, cells followed by a later cell, and —
        when ``now_ns`` is given — cells whose end is at or before ``now_ns``. With
        ``flush`` the open window's ticks are cut too, as a partial window ending after its
        last tick; later ticks of the same cell go to a new window."""
        n = self._n
        if n == 0:
            return []
        cells = self._cell[:n]
        bounds = np.flatnonzero(cells[1:] != cells[:-1]) + 1
        group_starts = np.r_[0, bounds]
        group_ends = np.r_[bounds, n]
        last_cell = int(cells[-1])
        out: list[CutWindow] = []
        consumed = 0
        for lo, hi in zip(group_starts.tolist(), group_ends.tolist(), strict=True):
            cell = int(cells[lo])
            cell_end = (cell + 1) * self.window_ns
            while hi - lo >= self.max_batch_size:
                out.append(self._window(lo, lo + self.max_batch_size, cell, partial=True))
                lo += self.max_batch_size
            consumed = lo
            complete = cell < last_cell or (now_ns is not None and cell_end <= now_ns)
            if not complete:
                if flush and lo < hi:
                    out.append(self._window(lo, hi, cell, partial=True))
                    consumed = hi
                break
            if lo < hi:
                out.append(self._window(lo, hi, cell, partial=False))
            consumed = hi
            self._floor = cell + 1 if self._floor is None else max(self._floor, cell + 1)
        self._drop_front(consumed)
        return out

    def flush(self) -> list[CutWindow]:
        """Cut everything held (at shutdown, or per ingest when batching is disabled)."""
        return self.cut(flush=True)

    def _window(self, lo: int, hi: int, cell: int, *, partial: bool) -> CutWindow:
        cell_start, cell_end = cell * self.window_ns, (cell + 1) * self.window_ns
        start = cell_start if self._last_end is None else max(cell_start, self._last_end)
        if partial:
            last_received = int(self._cols["received_ns"][lo:hi].max())
            end = min(cell_end, max(start, last_received) + 1)
        else:
            end = cell_end
        end = max(end, start)
        self._last_end = end
        ticks = TickBatch(**{name: col[lo:hi].copy() for name, col in self._cols.items()})
        return CutWindow(start, end, ticks, partial)

    def _reserve(self, needed: int) -> None:
        capacity = len(self._cell)
        if needed <= capacity:
            return
        while capacity < needed:
            capacity *= 2
        for name, col in self._cols.items():
            grown = np.empty(capacity, col.dtype)
            grown[: self._n] = col[: self._n]
            self._cols[name] = grown
        grown_cells = np.empty(capacity, np.int64)
        grown_cells[: self._n] = self._cell[: self._n]
        self._cell = grown_cells

    def _drop_front(self, k: int) -> None:
        if k == 0:
            return
        rest = self._n - k
        if rest:
            for col in self._cols.values():
                col[:rest] = col[k : self._n]
            self._cell[:rest] = self._cell[k : self._n]
        self._n = rest
