"""Core-engine figures of docs/performance.md: the suites of asv_benchmarks/bench_core.py
driven directly with repeats, printing medians (asv --quick takes one sample only).

Run: .venv/bin/python scripts/perf_core.py
"""

import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "asv_benchmarks"))
from bench_core import ComputeWindow, Payload, Pipeline


def timings_us(fn, repeats):
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter_ns()
        fn()
        out.append((time.perf_counter_ns() - t0) / 1e3)
    return sorted(out)


def main():
    p = Pipeline()
    p.setup()
    rates = [p.track_ticks_per_second() for _ in range(7)]
    p99s = [p.track_window_compute_p99_ms() for _ in range(7)]
    print(f"pipeline: {p.ticks} ticks in {len(p.batches)} windows")
    print(f"  ticks/s median {statistics.median(rates):,.0f} "
          f"(min {min(rates):,.0f}, max {max(rates):,.0f})")
    print(f"  window compute+encode p99 median {statistics.median(p99s):.3f} ms "
          f"(runs: {', '.join(f'{x:.2f}' for x in p99s)})")
    for n in (1000, 5000):
        for greeks in (False, True):
            c = ComputeWindow()
            c.setup(n, greeks)
            t = timings_us(lambda c=c, n=n, g=greeks: c.time_compute_window(n, g), 200)
            print(f"compute_window, {n} instruments, {len(c.batch)} ticks, greeks={greeks}: "
                  f"median {t[100]:.0f} us, p99 {t[198]:.0f} us")
        q = Payload()
        q.setup(n)
        enc = timings_us(lambda q=q, n=n: q.time_encode(n), 100)
        dec = timings_us(lambda q=q, n=n: q.time_decode(n), 100)
        print(f"payload, {n} instruments: {q.track_payload_bytes(n):,} bytes, "
              f"encode median {enc[50]:.0f} us, decode median {dec[50]:.0f} us")


if __name__ == "__main__":
    main()
