"""asv suite: what metrics add to a window (issue 6: ≤ 1 % of window compute at 5,000
instruments).

A window's metrics are one ``EngineMetrics.on_window`` in the window loop (a dozen
per-window values: O(1) in the ticks) and one ``on_published`` in the sender thread (one
Numba pass over the window's ticks: tick types, outcomes, both latency distributions).
The window-loop ratio is measured against ``compute_window`` of the same window with the
engine's default settings (validation and Greeks on), interleaved in one process and
reported as the median of per-round ratios, so machine noise hits both sides alike.

Run directly for the figures: ``.venv/bin/python asv_benchmarks/bench_metrics.py``.
"""

import time

import numpy as np
from prometheus_client import CollectorRegistry, generate_latest

from vectorticks.compute import compute_window
from vectorticks.config import Settings
from vectorticks.metrics import EngineMetrics

try:
    from .bench_core import warm_window
except ImportError:  # run as a script
    from bench_core import warm_window


def _window(n_instruments, greeks):
    settings = Settings(greeks_enabled=greeks)
    registry, batch, carry, end_ns = warm_window(n_instruments, settings.validation_limits)

    def compute():
        result, _ = compute_window(batch, registry, carry, seq=1, start_ns=0, end_ns=end_ns,
                                   greeks=settings.greeks_params,
                                   validation=settings.validation_limits)
        return result

    return registry, batch, end_ns, compute


class WindowMetrics:
    """The metrics of one 100 ms window of the 5,000-instrument market."""

    params = [False, True]
    param_names = ["greeks"]

    def setup(self, greeks):
        self.registry, self.batch, end_ns, self.compute = _window(5000, greeks)
        self.result = self.compute()
        self.metrics = EngineMetrics(CollectorRegistry(), clock=lambda: end_ns + 1_000_000)
        self.metrics.warm_up(self.result, self.batch, self.registry.kind)
        self.pending = self.time_on_window(greeks)
        self.time_on_published(greeks)

    def time_on_window(self, greeks):
        return self.metrics.on_window(self.result, self.batch, self.registry.kind,
                                      compute_s=0.003, greeks_s=0.002, encode_s=0.0005,
                                      rejected=False)

    def time_on_published(self, greeks):
        self.metrics.on_published(self.pending, 1, 0, 900_000, 0.001)

    def track_on_published_percent_of_compute(self, greeks):
        """The sender thread's share, for comparison (it runs beside the window loop)."""
        return overhead_percent(self.compute, self.time_on_published, greeks)

    track_on_published_percent_of_compute.unit = "%"

    def time_compute_window(self, greeks):
        self.compute()

    def track_on_window_percent_of_compute(self, greeks):
        """Median over interleaved rounds of on_window / compute_window, in percent."""
        return overhead_percent(self.compute, self.time_on_window, greeks)

    track_on_window_percent_of_compute.unit = "%"

    def time_scrape(self, greeks):
        generate_latest(self.metrics.registry)


def overhead_percent(compute, on_window, greeks, rounds=60, inner=5):
    ratios = []
    for _ in range(rounds):
        t0 = time.perf_counter_ns()
        for _ in range(inner):
            compute()
        t1 = time.perf_counter_ns()
        for _ in range(inner):
            on_window(greeks)
        t2 = time.perf_counter_ns()
        ratios.append((t2 - t1) / (t1 - t0))
    return float(np.median(ratios) * 100)


if __name__ == "__main__":
    for greeks in (True, False):
        b = WindowMetrics()
        b.setup(greeks)
        n = 200

        def median_us(fn, greeks=greeks, n=n):
            samples = []
            for _ in range(n):
                t0 = time.perf_counter_ns()
                fn(greeks)
                samples.append(time.perf_counter_ns() - t0)
            return np.median(samples) / 1e3

        print(f"greeks={greeks}: ticks={len(b.batch)} "
              f"compute_window {median_us(b.time_compute_window):.0f} µs, "
              f"on_window {median_us(b.time_on_window):.1f} µs, "
              f"on_published {median_us(b.time_on_published):.1f} µs, "
              f"scrape {median_us(b.time_scrape):.0f} µs, "
              f"on_window / compute (median of interleaved rounds) "
              f"{b.track_on_window_percent_of_compute(greeks):.2f} %, "
              f"on_published / compute {b.track_on_published_percent_of_compute(greeks):.2f} %")
