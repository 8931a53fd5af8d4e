"""The dead-letter stream against a real redis-server: with ``dead_letter_stream`` set,
every window that quarantined ticks also lands there, holding exactly those rows, under the
window's own seq; and the window header's per-reason counts match its quarantine."""

import numpy as np
import pytest

from vectorticks import payload
from vectorticks.columns import TickBatch
from vectorticks.config import Settings
from vectorticks.engine import Engine
from vectorticks.masks import reason_counts
from vectorticks.sinks import make_sink, redis_client
from vectorticks.sources import SyntheticMarket

MS = 1_000_000


def with_bad_ticks(batch: TickBatch, rng: np.random.Generator) -> TickBatch:
    cols = {name: col.copy() for name, col in batch}
    bad = rng.choice(len(batch), size=max(1, len(batch) // 50), replace=False)
    cols["last_price"][bad[0::2]] = np.nan
    cols["oi"][bad[1::2]] = -1
    return TickBatch(**cols)


@pytest.mark.redis
def test_quarantined_rows_go_to_the_dead_letter_stream(redis_url):
    market = SyntheticMarket(300, rate=20_000, seed=3)
    rng = np.random.default_rng(1)
    settings = Settings(sink="stream", redis_url=redis_url, dead_letter_stream="vt:dead",
                        tick_validation_enabled=True)
    engine = Engine(market.registry, make_sink("stream", redis_url=redis_url), settings)
    assert engine.dead_letter is not None  # built from the settings alone
    for _ in range(12):
        batch = with_bad_ticks(market.next_batch(market.now_ns + 50 * MS), rng)
        engine.ingest(batch)
        engine.poll(int(batch.received_ns[-1]))
    summary = engine.close(timeout=10)

    client = redis_client(redis_url)
    windows = {w.seq: w for w in (payload.decode(f[b"payload"])
                                  for _, f in client.xrange("vt:windows"))}
    dead = [(entry_id, payload.decode(f[b"payload"])) for entry_id, f in
            client.xrange("vt:dead")]
    with_quarantine = sorted(seq for seq, w in windows.items() if len(w.quarantine))
    assert [d.seq for _, d in dead] == with_quarantine
    assert len(dead) == summary["dead_letter_windows"] >= 5
    assert sum(len(d.quarantine) for _, d in dead) == summary["ticks_quarantined"]
    for entry_id, d in dead:
        w = windows[d.seq]
        assert entry_id.decode().endswith(f"-{d.seq}")           # idempotent entry ID
        assert list(d.tables) == ["quarantine"]
        assert d.quarantine.equals(w.quarantine)
        assert (d.start_ns, d.end_ns, d.ticks_in) == (w.start_ns, w.end_ns, len(w.quarantine))
        expected = reason_counts(w.quarantine.reason.to_numpy())
        assert w.reason_counts == d.reason_counts == expected
        assert expected["NON_FINITE_PRICE"] + expected["BAD_OI"] > 0
    clean = [w for w in windows.values() if not len(w.quarantine)]
    assert all(not any(w.reason_counts.values()) for w in clean)
