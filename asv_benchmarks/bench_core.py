"""asv suites for the core: accumulator, compute_window, payload, and the whole
ingest → cut → compute → encode pipeline (no sink I/O). Kernels are warmed in setup.

Windows are one 100 ms window of the synthetic market at 50,000 ticks/s (≈5,000 ticks).
"""

import time

import numpy as np

from vectorticks import payload
from vectorticks.chain import GreeksParams
from vectorticks.columns import TickBatch
from vectorticks.compute import Carry, compute_window
from vectorticks.sources import SyntheticMarket
from vectorticks.window import WindowAccumulator

WINDOW_NS = 100_000_000
RATE = 50_000.0


def market_windows(n_instruments, seconds, seed=1):
    """The synthetic market cut into 100 ms windows: (registry, [TickBatch, ...])."""
    market = SyntheticMarket(n_instruments, rate=RATE, seed=seed, burst_probability=0)
    batches = [market.next_batch(market.now_ns + WINDOW_NS) for _ in range(int(seconds * 10))]
    return market.registry, batches


def warm_window(n_instruments, validation=None):
    """The sixth 100 ms window of the market, after five that set the carry (prices of
    futures and indices are known, as in a live run): (registry, batch, carry, end_ns)."""
    registry, batches = market_windows(n_instruments, 0.6)
    carry = Carry.initial(len(registry))
    for b in batches[:5]:
        _, carry = compute_window(b, registry, carry, seq=1, start_ns=0, end_ns=1,
                                  validation=validation)
    return registry, batches[5], carry, int(batches[5].received_ns[-1])


class Accumulator:
    """Adding one window of ticks in 10 ms slices, then cutting it."""

    def setup(self):
        _, (self.window,) = market_windows(5000, 0.1)
        self.slices = np.array_split(np.arange(len(self.window)), 10)
        self.parts = [self.window.take(s) for s in self.slices]
        self.acc = WindowAccumulator(WINDOW_NS, 10**9)
        self.time_add_and_cut()

    def time_add_and_cut(self):
        for part in self.parts:
            self.acc.add(part)
        self.acc.flush()


class ComputeWindow:
    """compute_window on one 100 ms window, with and without IV and Greeks."""

    params = ([1000, 5000], [False, True])
    param_names = ["instruments", "greeks"]

    def setup(self, n, greeks):
        self.registry, self.batch, self.carry, self.end_ns = warm_window(n)
        self.greeks = GreeksParams() if greeks else None
        self.time_compute_window(n, greeks)

    def time_compute_window(self, n, greeks):
        compute_window(self.batch, self.registry, self.carry, seq=1, start_ns=0,
                       end_ns=self.end_ns, greeks=self.greeks)

    def peakmem_compute_window(self, n, greeks):
        self.time_compute_window(n, greeks)


class Payload:
    """Encoding and decoding the payload of a window in which every instrument ticked."""

    params = [1000, 5000]
    param_names = ["instruments"]

    def setup(self, n):
        market = SyntheticMarket(n, rate=RATE, seed=2)
        registry = market.registry
        # Every instrument ticks once: the largest payload a window of this market can have.
        batch = TickBatch.concat([market.next_batch(market.now_ns + 10 * WINDOW_NS),
                                  TickBatch.from_columns(instrument_token=registry.token,
                                                         received_ns=market.now_ns,
                                                         last_price=100.0)])
        self.result, _ = compute_window(batch, registry, Carry.initial(len(registry)),
                                        seq=1, start_ns=0, end_ns=1)
        self.data = payload.encode(self.result)

    def time_encode(self, n):
        payload.encode(self.result)

    def time_decode(self, n):
        payload.decode(self.data)

    def track_payload_bytes(self, n):
        return len(self.data)

    track_payload_bytes.unit = "bytes"


class Pipeline:
    """ingest → cut → compute (IV and Greeks on) → encode for 2 s of the 5,000-instrument
    market."""

    def setup(self):
        self.registry, self.batches = market_windows(5000, 2.0)
        self.ticks = sum(len(b) for b in self.batches)
        self.run()

    def run(self):
        acc = WindowAccumulator(WINDOW_NS, 50_000)
        carry = Carry.initial(len(self.registry))
        compute_ns = []
        for seq, batch in enumerate(self.batches, 1):
            acc.add(batch)
            for w in acc.cut():
                t0 = time.perf_counter_ns()
                result, carry = compute_window(w.ticks, self.registry, carry, seq=seq,
                                               start_ns=w.start_ns, end_ns=w.end_ns,
                                               greeks=GreeksParams())
                payload.encode(result)
                compute_ns.append(time.perf_counter_ns() - t0)
        return compute_ns

    def time_pipeline(self):
        self.run()

    def track_ticks_per_second(self):
        t0 = time.perf_counter()
        self.run()
        return self.ticks / (time.perf_counter() - t0)

    track_ticks_per_second.unit = "ticks/s"

    def track_window_compute_p99_ms(self):
        return float(np.percentile(self.run(), 99)) / 1e6

    track_window_compute_p99_ms.unit = "ms"
