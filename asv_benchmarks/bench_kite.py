"""asv suites for the Kite edge: the binary frame decoder against kiteconnect's own parser
(``KiteTicker._parse_binary``) and the tick-dict adapter.

Frames hold 500 packets of the synthetic market (real-looking prices, quantities and
timestamps). ``full``: derivatives in full mode (184 B packets). ``mixed``: every packet
kind in one frame — LTP, index quote, index full, quote and full, 100 of each, shuffled.

The ``track_*`` benchmarks measure both sides in the same process, alternating, and report
the median ratio (speed-up per tick) or median ns per tick: compare those, not timings
from different runs. kiteconnect is needed (``pip install kiteconnect``); without it the
suites are skipped.
"""

import gc
import statistics
import struct
import time

import numpy as np

from vectorticks.kite import decode_frame, encode_frame, ticks_from_dicts
from vectorticks.sources import SyntheticMarket

PACKETS = 500


def _ticker():
    try:
        from kiteconnect import KiteTicker
    except ImportError as exc:  # asv skips a benchmark whose setup raises this
        raise NotImplementedError("kiteconnect is not installed") from exc
    return KiteTicker("api_key", "access_token")


def _ticks(n_derivatives, n_indices, seed=1):
    """Ticks of the synthetic market: derivatives, and index ticks from two minutes of a
    slower market (indices tick about once a second at any rate)."""
    def first(n, rate, seconds, index):
        market = SyntheticMarket(5000, rate=rate, seed=seed, burst_probability=0)
        batch = market.next_batch(market.now_ns + seconds * 1_000_000_000)
        picked = np.flatnonzero(((batch.instrument_token & 0xFF) == 9) == index)[:n]
        assert len(picked) == n
        return batch.take(picked)

    return first(n_derivatives, 50_000, 2, False), first(n_indices, 1_000, 120, True)


def _packets(frame):
    """The (length-prefixed) packets of a frame."""
    out, pos = [], 2
    for _ in range(struct.unpack_from(">H", frame)[0]):
        size = struct.unpack_from(">H", frame, pos)[0]
        out.append(frame[pos:pos + 2 + size])
        pos += 2 + size
    return out


def frame_of(kind):
    """A 500-packet frame: ``full`` or ``mixed`` (every packet kind, shuffled)."""
    if kind == "full":
        derivatives, _ = _ticks(PACKETS, 0)
        return encode_frame(derivatives, "full")
    derivatives, indices = _ticks(3 * PACKETS // 5, 2 * PACKETS // 5)
    k = PACKETS // 5
    packets = (_packets(encode_frame(derivatives.take(slice(0, k)), "ltp"))
               + _packets(encode_frame(derivatives.take(slice(k, 2 * k)), "quote"))
               + _packets(encode_frame(derivatives.take(slice(2 * k, 3 * k)), "full"))
               + _packets(encode_frame(indices.take(slice(0, k)), "quote"))
               + _packets(encode_frame(indices.take(slice(k, 2 * k)), "full")))
    order = np.random.default_rng(0).permutation(len(packets))
    return struct.pack(">H", len(packets)) + b"".join(packets[i] for i in order)


def _per_call_ns(fn, number):
    """ns per call of ``fn`` over ``number`` calls, garbage collector enabled."""
    t0 = time.perf_counter_ns()
    for _ in range(number):
        fn()
    return (time.perf_counter_ns() - t0) / number


def side_by_side(ours, theirs, *, rounds=15, ours_number=50, theirs_number=2):
    """Median over alternating rounds of (theirs / ours) time per call, and the medians."""
    gc.enable()
    ratios, a, b = [], [], []
    for _ in range(rounds):
        t_ours = _per_call_ns(ours, ours_number)
        t_theirs = _per_call_ns(theirs, theirs_number)
        ratios.append(t_theirs / t_ours)
        a.append(t_ours)
        b.append(t_theirs)
    return statistics.median(ratios), statistics.median(a), statistics.median(b)


class DecodeFrame:
    """decode_frame vs kiteconnect's parser on one 500-packet frame."""

    params = [["full", "mixed"]]
    param_names = ["frame"]
    timeout = 300

    def setup(self, kind):
        self.kt = _ticker()
        self.frame = frame_of(kind)
        assert len(decode_frame(self.frame, 0)) == PACKETS  # JIT warmed here
        self.kt._parse_binary(self.frame)

    def time_decode_frame(self, kind):
        decode_frame(self.frame, 0)

    def time_kiteconnect_parse_binary(self, kind):
        self.kt._parse_binary(self.frame)

    def track_speedup_per_tick(self, kind):
        ratio, _, _ = side_by_side(lambda: decode_frame(self.frame, 0),
                                   lambda: self.kt._parse_binary(self.frame))
        return ratio

    track_speedup_per_tick.unit = "x"

    def track_decode_ns_per_tick(self, kind):
        _, ours, _ = side_by_side(lambda: decode_frame(self.frame, 0),
                                  lambda: self.kt._parse_binary(self.frame), rounds=5)
        return ours / PACKETS

    track_decode_ns_per_tick.unit = "ns"

    def track_kiteconnect_ns_per_tick(self, kind):
        _, _, theirs = side_by_side(lambda: decode_frame(self.frame, 0),
                                    lambda: self.kt._parse_binary(self.frame), rounds=5)
        return theirs / PACKETS

    track_kiteconnect_ns_per_tick.unit = "ns"


class TicksFromDicts:
    """The dict adapter on kiteconnect's own tick dicts (``on_ticks`` payloads of 500).

    ``quote``: derivatives in quote mode; ``quote_indices``: quote mode with 10 % index
    ticks (two dict shapes); ``full``: derivatives in full mode (depth, timestamps)."""

    params = [["quote", "quote_indices", "full"]]
    param_names = ["ticks"]
    timeout = 300

    def setup(self, kind):
        kt = _ticker()
        if kind == "quote_indices":
            derivatives, indices = _ticks(PACKETS - PACKETS // 10, PACKETS // 10)
            packets = (_packets(encode_frame(derivatives, "quote"))
                       + _packets(encode_frame(indices, "quote")))
            order = np.random.default_rng(0).permutation(len(packets))  # interleaved
            frame = struct.pack(">H", len(packets)) + b"".join(packets[i] for i in order)
        else:
            derivatives, _ = _ticks(PACKETS, 0)
            frame = encode_frame(derivatives, kind)
        # kiteconnect allocates the dicts in frame order, as on_ticks delivers them
        self.ticks = kt._parse_binary(frame)
        assert len(ticks_from_dicts(self.ticks, 0)) == PACKETS

    def time_ticks_from_dicts(self, kind):
        ticks_from_dicts(self.ticks, 0)

    def track_ns_per_tick(self, kind):
        """Best of 15 rounds of 20 calls, garbage collector enabled (the machine's other
        load only ever adds time, so the minimum is the adapter's own cost)."""
        gc.enable()
        return min(_per_call_ns(lambda: ticks_from_dicts(self.ticks, 0), 20)
                   for _ in range(15)) / PACKETS

    track_ns_per_tick.unit = "ns"
