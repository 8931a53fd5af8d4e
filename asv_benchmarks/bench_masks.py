"""asv suite of the validation masks: ``tick_reasons`` on 1,000,000 ticks of the synthetic
market in one call, and on the same ticks cut into 100 ms windows of ≈5,000 ticks (what
the engine does). Kernels are warmed in setup; ``track_*`` report ns per tick.
"""

import time

import numpy as np

from vectorticks.columns import MISSING_INT
from vectorticks.masks import tick_reasons
from vectorticks.sources import SyntheticMarket

N_TICKS = 1_000_000
WINDOW_NS = 100_000_000


def _market_ticks():
    """One second of a 5,000-instrument market at 1,000,000 ticks/s (no bursts), and the
    first-window carries (nothing carried)."""
    market = SyntheticMarket(5000, rate=float(N_TICKS), seed=7, burst_probability=0)
    batch = market.next_batch(market.now_ns + 1_000_000_000)
    registry = market.registry
    m = len(registry)
    carry = (np.full(m, np.nan), np.full(m, MISSING_INT, np.int64),
             np.full(m, MISSING_INT, np.int64))
    return registry, batch, carry


class TickReasons:
    """tick_reasons on ≈1,000,000 ticks."""

    timeout = 300

    def setup(self):
        self.registry, self.batch, self.carry = _market_ticks()
        self.rows = self.registry.rows_of(self.batch.instrument_token)
        # Windows of 100 ms of the same ticks at 50,000 ticks/s: ≈5,000 ticks each.
        received = self.batch.received_ns
        cuts = np.searchsorted(received, np.arange(received[0], received[-1],
                                                   WINDOW_NS // 20))[1:]
        self.windows = [(self.batch.take(s), self.rows[s])
                        for s in np.split(np.arange(len(self.batch)), cuts)[:50]]
        self.window_ticks = sum(len(w) for w, _ in self.windows)
        self.time_one_call()
        self.time_windows()

    def time_one_call(self):
        tick_reasons(self.batch, self.rows, self.registry.kind, *self.carry)

    def time_windows(self):
        for batch, rows in self.windows:
            tick_reasons(batch, rows, self.registry.kind, *self.carry)

    def peakmem_one_call(self):
        tick_reasons(self.batch, self.rows, self.registry.kind, *self.carry)

    def track_ns_per_tick_one_call(self):
        best = min(_timed(self.time_one_call) for _ in range(5))
        return best / len(self.batch) * 1e9

    track_ns_per_tick_one_call.unit = "ns/tick"

    def track_ns_per_tick_5k_windows(self):
        best = min(_timed(self.time_windows) for _ in range(5))
        return best / self.window_ticks * 1e9

    track_ns_per_tick_5k_windows.unit = "ns/tick"


def _timed(fn):
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0
