"""A five-instrument registry (NIFTY index, a future, a call/put pair, a stock) shared by
unit tests that need real registry rows but no market."""

import pandas as pd

from vectorticks.instruments import InstrumentRegistry

NIFTY, FUT, CE, PE, STOCK = 256265, 13238786, 10000002, 10000258, 408065


def small_registry() -> InstrumentRegistry:
    rows = [
        (NIFTY, 1001, "NIFTY 50", "NIFTY 50", "", 0, "EQ", "INDICES", "NSE"),
        (FUT, 51714, "NIFTY26DECFUT", "NIFTY", "2026-12-29", 0, "FUT", "NFO-FUT", "NFO"),
        (CE, 39062, "NIFTY26D0124000CE", "NIFTY", "2026-12-01", 24000, "CE", "NFO-OPT", "NFO"),
        (PE, 39063, "NIFTY26D0124000PE", "NIFTY", "2026-12-01", 24000, "PE", "NFO-OPT", "NFO"),
        (STOCK, 1594, "INFY", "INFOSYS", "", 0, "EQ", "NSE", "NSE"),
    ]
    frame = pd.DataFrame(rows, columns=["instrument_token", "exchange_token", "tradingsymbol",
                                        "name", "expiry", "strike", "instrument_type",
                                        "segment", "exchange"])
    frame["last_price"], frame["tick_size"], frame["lot_size"] = 0.0, 0.05, 75
    return InstrumentRegistry.from_frame(frame)
