"""asv suite of the validation masks: ``tick_reasons`` on 1,000,000 ticks of the synthetic
market in one call, and on the same ticks cut into 100 ms windows of ≈5,000 ticks (what
the engine does); and what validation adds to ``compute_window`` at 5,000 instruments.
Kernels are warmed in setup; ``track_*`` report ns per tick or a growth in %.
"""

import statistics
import time

import numpy as np

from vectorticks.chain import GreeksParams
from vectorticks.columns import MISSING_INT
from vectorticks.compute import compute_window
from vectorticks.masks import Limits, tick_reasons
from vectorticks.sources import SyntheticMarket

try:
    from .bench_core import warm_window
except ImportError:  # imported from the benchmarks folder
    from bench_core import warm_window

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
        return _median_s(self.time_one_call, 7) / len(self.batch) * 1e9

    track_ns_per_tick_one_call.unit = "ns/tick"

    def track_ns_per_tick_5k_windows(self):
        return _median_s(self.time_windows, 7) / self.window_ticks * 1e9

    track_ns_per_tick_5k_windows.unit = "ns/tick"


class ValidationGrowth:
    """compute_window on one 100 ms window (≈5,000 ticks) of a 5,000-instrument market,
    with validation (default Limits) and without, Greeks off and on. Issue 5 asks window
    compute at 5,000 instruments to grow by at most 10 %: Greeks on, the engine's default
    window (as ``bench_metrics`` measures issue 6's share of window compute); Greeks off
    shows validation against the bare window."""

    params = [False, True]
    param_names = ["greeks"]
    timeout = 600

    def setup(self, greeks):
        self.registry, self.batch, self.carry, self.end_ns = warm_window(5000)
        self.greeks = GreeksParams() if greeks else None
        self.limits = Limits()
        self.time_validated(greeks)
        self.time_unvalidated(greeks)

    def _window(self, validation):
        compute_window(self.batch, self.registry, self.carry, seq=1, start_ns=0,
                       end_ns=self.end_ns, greeks=self.greeks, validation=validation)

    def time_validated(self, greeks):
        self._window(self.limits)

    def time_unvalidated(self, greeks):
        self._window(None)

    def track_growth_percent(self, greeks):
        """Median time per call with validation over without, minus 1: 30 rounds, each a
        block of 10 calls of either in turn (a block runs warm, as a live engine does)."""
        off, on = [], []
        for _ in range(30):
            off.append(_median_s(lambda: self._window(None), 1, 10))
            on.append(_median_s(lambda: self._window(self.limits), 1, 10))
        return (statistics.median(on) / statistics.median(off) - 1) * 100

    track_growth_percent.unit = "%"


def _median_s(fn, repeats, calls=1):
    """Median over ``repeats`` of the mean wall time of ``calls`` calls of ``fn``, in s."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(calls):
            fn()
        times.append((time.perf_counter() - t0) / calls)
    return statistics.median(times)
