"""The packed payload v1: round trips, the header, every malformed-input rule, files."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vectorticks import payload
from vectorticks.columns import (
    BAR_COLUMNS,
    MISSING_INT,
    OPTION_COLUMNS,
    QUARANTINE_COLUMNS,
    Column,
    empty_table,
)
from vectorticks.compute import WindowResult
from vectorticks.errors import PayloadError, SchemaError, VectorticksError
from vectorticks.masks import REASONS, Reason
from vectorticks.payload import (
    Header,
    Window,
    checksum,
    decode,
    encode,
    iter_file,
    read_header,
    reason_bit_counts,
)

DOCS = Path(__file__).resolve().parents[2] / "docs" / "payload.md"
HEADER = struct.Struct("<4sHHQqqIHHII")
T0 = 1_700_000_000_000_000_000  # 2023-11-14T22:13:20Z in ns


# -- fixtures -----------------------------------------------------------------------------


def bars_table() -> dict[str, np.ndarray]:
    t = empty_table(BAR_COLUMNS, 3)
    t["instrument_token"][:] = [256265, 260105, 12345678]
    t["open"][:] = [22000.5, 48000.0, np.nan]
    t["high"][:] = [22010.25, 48100.0, np.nan]
    t["low"][:] = [21990.0, 47950.5, np.nan]
    t["close"][:] = [22005.0, 48050.0, np.nan]
    t["volume"][:] = [0, 1500, 0]
    t["volume_traded"][:] = [MISSING_INT, 2_000_000, MISSING_INT]
    t["tick_count"][:] = [12, 7, 1]
    t["oi"][:] = [MISSING_INT, 12_500_000, MISSING_INT]
    t["first_received_ns"][:] = [T0 + 1, T0 + 2, T0 + 3]
    t["last_received_ns"][:] = [T0 + 900_000_000, T0 + 950_000_000, T0 + 3]
    return t


def options_table() -> dict[str, np.ndarray]:
    t = empty_table(OPTION_COLUMNS, 4)
    t["instrument_token"][:] = [10_001, 10_002, 10_003, 2**32 - 1]
    t["underlying_token"][:] = 256265
    t["future_token"][:] = [13_001, 13_001, 0, 0]
    t["strike"][:] = [22000.0, 22000.0, 22100.0, 22100.0]
    t["expiry_ns"][:] = T0 + 86_400_000_000_000
    t["is_call"][:] = [True, False, True, False]
    t["last_price"][:] = [105.05, 98.4, np.nan, 0.05]
    t["bid_price"][:] = [105.0, 98.35, np.nan, 0.05]
    t["bid_quantity"][:] = [750, 50, MISSING_INT, 1]
    t["ask_price"][:] = [105.1, 98.5, np.nan, np.inf]
    t["ask_quantity"][:] = [1500, 25, MISSING_INT, 0]
    t["mid_price"][:] = [105.05, 98.425, np.nan, np.nan]
    t["oi"][:] = [1_000_000, 2_000_000, MISSING_INT, 0]
    t["volume_traded"][:] = [5_000_000, 4_000_000, MISSING_INT, 2**62]
    t["volume"][:] = [750, 0, 0, 0]
    t["tick_count"][:] = [3, 1, 1, 2**31 - 1]
    t["last_received_ns"][:] = [T0 + 5, T0 + 6, T0 + 7, T0 + 8]
    t["iv"][:] = [0.1432, 0.1501, np.nan, np.nan]
    t["delta"][:] = [0.52, -0.48, np.nan, -0.0]
    t["gamma"][:] = [0.0011, 0.0011, np.nan, 5e-324]
    t["theta"][:] = [-12.5, -11.9, np.nan, -np.inf]
    t["vega"][:] = [12.1, 12.0, np.nan, 0.0]
    t["rho"][:] = [2.1, -2.0, np.nan, 0.0]
    return t


def quarantine_table() -> dict[str, np.ndarray]:
    t = empty_table(QUARANTINE_COLUMNS, 2)
    t["instrument_token"][:] = [999, 0]
    t["received_ns"][:] = [T0 + 10, MISSING_INT]
    t["reason"][:] = [1, 0x8000_0001]
    t["last_price"][:] = [-1.0, np.nan]
    t["volume_traded"][:] = [MISSING_INT, -5]
    return t


def make_result(seq: int = 42, *, empty: bool = False) -> WindowResult:
    if empty:
        return WindowResult(seq=seq, start_ns=T0, end_ns=T0 + 1_000_000_000, ticks_in=0,
                            bars=empty_table(BAR_COLUMNS), options=empty_table(OPTION_COLUMNS),
                            quarantine=empty_table(QUARANTINE_COLUMNS))
    return WindowResult(seq=seq, start_ns=T0, end_ns=T0 + 1_000_000_000, ticks_in=2**32 - 1,
                        bars=bars_table(), options=options_table(),
                        quarantine=quarantine_table())


@pytest.fixture(scope="module")
def valid() -> bytes:
    return encode(make_result())


def assert_same_table(got: pa.Table, expected: dict[str, np.ndarray],
                      columns: tuple[Column, ...]) -> None:
    assert got.column_names == [c.name for c in columns]
    for c in columns:
        a = got.column(c.name).to_numpy()
        assert a.dtype == c.dtype, c.name
        np.testing.assert_array_equal(a, expected[c.name], err_msg=c.name)  # NaN == NaN


# -- raw payload construction (independent of the module under test) ----------------------


def section_bytes(name: bytes, data: bytes) -> bytes:
    return bytes([len(name)]) + name + struct.pack("<I", len(data)) + data


def build(sections: list[tuple[bytes, bytes]] | bytes, *, magic: bytes = b"VTKW",
          version: int = 1, header_size: int = 48, extension: bytes = b"", seq: int = 7,
          ticks_in: int = 3, section_count: int | None = None, flags: int = 0,
          body_len: int | None = None, crc: int | None = None) -> bytes:
    body = sections if isinstance(sections, bytes) else b"".join(
        section_bytes(n, d) for n, d in sections)
    count = len(sections) if section_count is None and not isinstance(sections, bytes) \
        else (section_count or 0)
    header = HEADER.pack(magic, version, header_size, seq, T0, T0 + 1, ticks_in, count,
                         flags, len(body) if body_len is None else body_len, crc or 0)
    if crc is None:
        header = header[:44] + struct.pack("<I", checksum(header, body))
    return header + extension + body


def arrow_stream(table: pa.Table, **options) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema,
                           options=pa.ipc.IpcWriteOptions(**options)) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def sections_of(data: bytes) -> list[tuple[bytes, bytes]]:
    """Split a (valid) payload into its sections."""
    (header_size,) = struct.unpack_from("<H", data, 6)
    pos, out = header_size, []
    while pos < len(data):
        n = data[pos]
        (size,) = struct.unpack_from("<I", data, pos + 1 + n)
        out.append((data[pos + 1:pos + 1 + n], data[pos + 5 + n:pos + 5 + n + size]))
        pos += 5 + n + size
    return out


def refresh(data: bytes) -> bytes:
    """Make body_len and the CRC agree with the bytes (when header_size allows it)."""
    if len(data) < 48:
        return data
    (header_size,) = struct.unpack_from("<H", data, 6)
    if not 48 <= header_size <= len(data):
        return data
    body = data[header_size:]
    head = data[:40] + struct.pack("<I", len(body))
    return head + struct.pack("<I", checksum(head, body)) + data[48:header_size] + body


# -- round trips ----------------------------------------------------------------------------


def test_round_trip_realistic_window(valid: bytes) -> None:
    w = decode(valid)
    assert isinstance(w, Window)
    assert (w.seq, w.start_ns, w.end_ns, w.ticks_in) == (42, T0, T0 + 1_000_000_000, 2**32 - 1)
    assert w.nbytes == len(valid)
    assert list(w.tables) == ["bars", "options", "quarantine"]
    assert_same_table(w.tables["bars"], bars_table(), BAR_COLUMNS)
    assert_same_table(w.tables["options"], options_table(), OPTION_COLUMNS)
    assert_same_table(w.tables["quarantine"], quarantine_table(), QUARANTINE_COLUMNS)
    assert w.table("options") is w.tables["options"]


def test_dataframes_keep_dtypes_and_missing_values(valid: bytes) -> None:
    w = decode(valid)
    bars = w.bars
    assert isinstance(bars, pd.DataFrame)
    assert list(bars.columns) == [c.name for c in BAR_COLUMNS]
    assert [bars[c.name].dtype for c in BAR_COLUMNS] == [c.dtype for c in BAR_COLUMNS]
    assert bars["volume_traded"].tolist() == [MISSING_INT, 2_000_000, MISSING_INT]
    assert bars["close"].isna().tolist() == [False, False, True]
    options = w.options
    assert options["is_call"].dtype == np.bool_
    assert options["is_call"].tolist() == [True, False, True, False]
    assert options["instrument_token"].tolist()[-1] == 2**32 - 1
    assert options["ask_price"].iloc[3] == np.inf
    assert np.signbit(options["delta"].iloc[3])  # -0.0 survives
    assert options["gamma"].iloc[3] == 5e-324
    assert w.quarantine["reason"].tolist() == [1, 0x8000_0001]
    assert w.bars is bars  # converted once


def test_round_trip_empty_tables() -> None:
    data = encode(make_result(seq=0, empty=True))
    w = decode(data)
    assert (w.seq, w.ticks_in) == (0, 0)
    assert {name: t.num_rows for name, t in w.tables.items()} == {
        "bars": 0, "options": 0, "quarantine": 0}
    for frame, columns in ((w.bars, BAR_COLUMNS), (w.options, OPTION_COLUMNS),
                           (w.quarantine, QUARANTINE_COLUMNS)):
        assert len(frame) == 0
        assert list(frame.columns) == [c.name for c in columns]
        assert [frame[c.name].dtype for c in columns] == [c.dtype for c in columns]


@pytest.mark.parametrize("n", [1, 7, 8, 9, 63, 64, 65, 1000])
def test_round_trip_sizes_around_bitmap_and_padding_boundaries(n: int) -> None:
    rng = np.random.default_rng(n)
    opts = empty_table(OPTION_COLUMNS, n)
    opts["is_call"][:] = rng.random(n) < 0.5
    opts["tick_count"][:] = rng.integers(-(2**31), 2**31 - 1, n)
    opts["instrument_token"][:] = rng.integers(0, 2**32, n)
    opts["iv"][:] = rng.standard_normal(n)
    bars = empty_table(BAR_COLUMNS, n)
    bars["instrument_token"][:] = np.arange(n)  # n * 4 bytes: padded to 8 when n is odd
    result = WindowResult(seq=n, start_ns=-1, end_ns=2**63 - 1, ticks_in=n, bars=bars,
                          options=opts, quarantine=empty_table(QUARANTINE_COLUMNS, n))
    w = decode(encode(result))
    assert (w.start_ns, w.end_ns) == (-1, 2**63 - 1)
    assert_same_table(w.tables["options"], opts, OPTION_COLUMNS)
    assert_same_table(w.tables["bars"], bars, BAR_COLUMNS)


def test_record_batches_match_pyarrows_own_writer(valid: bytes) -> None:
    """The hand-packed record batch message: pyarrow reads it back, and its body is
    byte-identical to what pyarrow itself writes for the same columns."""
    for name, data in sections_of(valid):
        reader = pa.BufferReader(data)
        schema_message = pa.ipc.read_message(reader)
        ours = pa.ipc.read_message(reader)
        with pytest.raises(EOFError):
            pa.ipc.read_message(reader)  # then the end-of-stream marker
        table = pa.ipc.open_stream(data).read_all()
        table.validate(full=True)
        assert schema_message.type == "schema"
        theirs = pa.ipc.read_message(pa.BufferReader(table.to_batches()[0].serialize()))
        assert ours.body.equals(theirs.body), name
        assert ours.metadata.size % 8 == 0
        assert data.endswith(b"\xff\xff\xff\xff\x00\x00\x00\x00")


def test_decode_is_zero_copy(valid: bytes) -> None:
    w = decode(valid)
    base = pa.py_buffer(valid).address
    values = w.tables["options"].column("strike").chunk(0).buffers()[1]
    assert base <= values.address < base + len(valid)


def test_decode_accepts_bytearray_and_memoryview(valid: bytes) -> None:
    for data in (bytearray(valid), memoryview(valid), memoryview(b"xx" + valid)[2:]):
        w = decode(data)
        assert w.seq == 42
        assert w.tables["bars"].column("high").to_pylist()[:2] == [22010.25, 48100.0]
    with pytest.raises(TypeError):
        decode("VTKW")  # type: ignore[arg-type]


def test_payload_error_is_a_value_error_and_reexported() -> None:
    assert payload.PayloadError is PayloadError
    assert issubclass(PayloadError, ValueError)
    assert issubclass(PayloadError, VectorticksError)


# -- header ---------------------------------------------------------------------------------


def test_header_layout_and_read_header(valid: bytes) -> None:
    fields = HEADER.unpack_from(valid)
    extension, body = valid[48:184], valid[184:]
    assert fields == (b"VTKW", 1, 184, 42, T0, T0 + 1_000_000_000, 2**32 - 1, 3, 0, len(body),
                      zlib.crc32(body, zlib.crc32(valid[:44])))
    # extension: one record (tag 1, 128 bytes: 32 u32 counts), then its own CRC-32
    assert extension[:4] == struct.pack("<HH", 1, 128)
    counts = struct.unpack_from("<32I", extension, 4)
    assert counts == (2,) + (0,) * 30 + (1,)  # reasons [1, 0x8000_0001]: bit 0 twice, bit 31
    assert struct.unpack_from("<I", extension, 132)[0] == zlib.crc32(extension[:132])
    h = read_header(valid)
    expected_counts = {r.name: 0 for r in REASONS} | {"UNKNOWN_INSTRUMENT": 2, "BIT_31": 1}
    assert h == Header(version=1, header_size=184, seq=42, start_ns=T0,
                       end_ns=T0 + 1_000_000_000, ticks_in=2**32 - 1, section_count=3,
                       flags=0, body_len=len(body), crc32=checksum(valid, body),
                       reason_counts=expected_counts)
    assert h.total_len == len(valid)
    assert decode(valid).reason_counts == expected_counts
    # the fixed header alone is enough to learn the length; the counts need the extension
    fixed = read_header(valid[:48])
    assert (fixed.total_len, fixed.reason_counts) == (len(valid), None)
    assert [name for name, _ in sections_of(valid)] == [b"bars", b"options", b"quarantine"]


def test_reason_counts_follow_the_quarantine_rows() -> None:
    r = make_result()
    reasons = np.array([Reason.DUPLICATE | Reason.PRICE_JUMP, Reason.DUPLICATE,
                        Reason.BAD_OI], np.uint32)
    quarantine = empty_table(QUARANTINE_COLUMNS, 3)
    quarantine["reason"] = reasons
    w = decode(encode(WindowResult(**{**{f: getattr(r, f) for f in r.__dataclass_fields__},
                                      "quarantine": quarantine})))
    assert w.reason_counts is not None
    assert {k: v for k, v in w.reason_counts.items() if v} == {
        "PRICE_JUMP": 1, "BAD_OI": 1, "DUPLICATE": 2}
    assert list(w.reason_counts)[:3] == ["UNKNOWN_INSTRUMENT", "NON_FINITE_PRICE",
                                         "NON_POSITIVE_PRICE"]  # bit order
    np.testing.assert_array_equal(reason_bit_counts(reasons)[[4, 6, 10]], [1, 1, 2])
    assert reason_bit_counts(np.array([], np.uint32)).tolist() == [0] * 32


def test_seq_uses_all_64_bits() -> None:
    result = make_result(seq=2**64 - 1, empty=True)
    assert decode(encode(result)).seq == 2**64 - 1
    assert read_header(encode(result)).seq == 2**64 - 1


def with_extension(valid: bytes, extension: bytes) -> bytes:
    """``valid`` with its header extension replaced (header_size, body_len, CRC fixed)."""
    (header_size,) = struct.unpack_from("<H", valid, 6)
    out = bytearray(valid[:48]) + extension + valid[header_size:]
    struct.pack_into("<H", out, 6, 48 + len(extension))
    return refresh(bytes(out))  # header_size is covered by the payload CRC


def ext(*records: tuple[int, bytes]) -> bytes:
    body = b"".join(struct.pack("<HH", tag, len(data)) + data for tag, data in records)
    return body + struct.pack("<I", zlib.crc32(body))


def test_unknown_extension_records_are_skipped(valid: bytes) -> None:
    counts = struct.pack("<32I", *range(32))
    extended = with_extension(valid, ext((7, b"\x01" * 16), (1, counts), (8, b"")))
    w = decode(extended)
    assert (w.seq, w.tables["options"].num_rows) == (42, 4)
    assert w.reason_counts is not None
    assert w.reason_counts["PRICE_JUMP"] == 4 and w.reason_counts["BIT_31"] == 31
    assert read_header(extended).total_len == len(extended)
    no_counts = with_extension(valid, ext((9, b"later")))
    assert decode(no_counts).reason_counts is None
    assert decode(with_extension(valid, b"")).reason_counts is None  # a bare 48-byte header


@pytest.mark.parametrize("extension, message", [
    (b"\x01" * 16, "extension CRC-32"),                              # bytes, not records
    (b"\x01\x00", "no room for its CRC-32"),
    (ext((1, b"\x00" * 64)), "reason counts record of 64 bytes"),
    (ext((1, b"\x00" * 128))[:-6] + struct.pack("<H", 9) + b"\x00" * 4, "CRC-32"),
])
def test_malformed_extensions_are_rejected(valid: bytes, extension: bytes,
                                           message: str) -> None:
    with pytest.raises(PayloadError, match=message):
        decode(with_extension(valid, extension))


def test_extension_record_running_past_its_crc_is_rejected(valid: bytes) -> None:
    body = struct.pack("<HH", 5, 200) + b"\x00" * 10
    with pytest.raises(PayloadError, match="announces 200 bytes"):
        decode(with_extension(valid, body + struct.pack("<I", zlib.crc32(body))))
    body = b"\x05\x00"
    with pytest.raises(PayloadError, match="cut short"):
        decode(with_extension(valid, body + struct.pack("<I", zlib.crc32(body))))


# -- encode errors --------------------------------------------------------------------------


def test_encode_rejects_tables_that_do_not_match_the_schema() -> None:
    r = make_result()
    wrong_dtype = dict(r.bars, volume=r.bars["volume"].astype(np.float64))
    missing = {k: v for k, v in r.options.items() if k != "rho"}
    reordered = dict(reversed(list(r.quarantine.items())))
    for kw in ({"bars": wrong_dtype}, {"options": missing}, {"quarantine": reordered}):
        bad = WindowResult(**{**{f: getattr(r, f) for f in r.__dataclass_fields__}, **kw})
        with pytest.raises(SchemaError):
            encode(bad)


@pytest.mark.parametrize("field,value", [("seq", -1), ("seq", 2**64), ("ticks_in", 2**32),
                                         ("ticks_in", -1), ("start_ns", 2**63),
                                         ("end_ns", -(2**63) - 1)])
def test_encode_rejects_header_fields_out_of_range(field: str, value: int) -> None:
    args = {"seq": 1, "start_ns": 0, "end_ns": 0, "ticks_in": 0}
    args[field] = value
    with pytest.raises(PayloadError, match=field):
        payload.encode_sections(**args, sections={})


def test_encode_accepts_numpy_integers_and_strided_columns() -> None:
    bars = empty_table(BAR_COLUMNS, 4)
    bars["open"] = np.arange(8, dtype=np.float64)[::2]  # not contiguous
    data = payload.encode_sections(np.uint64(5), np.int64(1), np.int64(2), np.int32(3),
                                   {"bars": bars})
    w = decode(data)
    assert w.seq == 5
    assert w.tables["bars"].column("open").to_pylist() == [0.0, 2.0, 4.0, 6.0]


# -- extra and missing sections -------------------------------------------------------------


def test_extra_sections_are_kept_and_missing_known_ones_read_as_empty() -> None:
    extra = {"count": np.array([1, 2, 3], np.int16),
             "when": np.array([1, 2, 3], "datetime64[ns]"),
             "ok": np.array([True, False, True])}
    data = payload.encode_sections(9, 0, 1, 3, {"extra_stats": extra, "bars": bars_table()})
    w = decode(data)
    assert list(w.tables) == ["extra_stats", "bars"]
    assert w.table("extra_stats").to_pydict()["count"] == [1, 2, 3]
    assert w.table("extra_stats").schema.field("when").type == pa.timestamp("ns")
    assert w.table("extra_stats").column("ok").to_pylist() == [True, False, True]
    assert_same_table(w.tables["bars"], bars_table(), BAR_COLUMNS)
    assert len(w.options) == 0
    assert list(w.options.columns) == [c.name for c in OPTION_COLUMNS]
    assert w.table("quarantine").num_rows == 0
    with pytest.raises(KeyError):
        w.table("nope")


def test_extra_sections_of_other_fixed_width_types() -> None:
    half = {"h": np.array([1.5, -2.0], np.float16), "u": np.array([2**64 - 1, 0], np.uint64),
            "big_endian": np.array([1, 2], ">i4")}
    w = decode(payload.encode_sections(1, 0, 0, 0, {"nothing": {}, "half": half}))
    assert w.tables["nothing"].shape == (0, 0)
    assert w.tables["half"].to_pydict() == {"h": [1.5, -2.0], "u": [2**64 - 1, 0],
                                            "big_endian": [1, 2]}
    assert w.tables["half"].schema.types == [pa.float16(), pa.uint64(), pa.int32()]


def test_encode_sections_validates_names_and_columns() -> None:
    with pytest.raises(SchemaError):
        payload.encode_sections(1, 0, 0, 0, {"Bad-Name": {"a": np.zeros(1)}})
    with pytest.raises(SchemaError):
        payload.encode_sections(1, 0, 0, 0, {"x": {"a": np.array(["s"], object)}})
    with pytest.raises(SchemaError):
        payload.encode_sections(1, 0, 0, 0, {"x": {"a": np.zeros(1), "b": np.zeros(2)}})
    with pytest.raises(PayloadError):
        payload.encode_sections(1, 0, 0, 0, {f"s{i}": {} for i in range(65)})


def test_foreign_writer_streams_are_accepted() -> None:
    """A stream written by any Arrow writer with the right columns decodes: nullable
    fields, several batches, and a column appended after the known ones (allowed in v1)."""
    bars = pa.table(bars_table())
    appended = bars.append_column("vwap", pa.array([1.0, 2.0, 3.0]))
    two_batches = pa.concat_tables([pa.table(quarantine_table())] * 2)
    data = build([(b"bars", arrow_stream(appended)),
                  (b"quarantine", arrow_stream(two_batches, allow_64bit=True))])
    w = decode(data)
    assert w.tables["bars"].column_names[-1] == "vwap"
    assert w.bars["vwap"].tolist() == [1.0, 2.0, 3.0]
    assert w.tables["quarantine"].num_rows == 4
    assert_same_table(w.tables["bars"].drop_columns(["vwap"]), bars_table(), BAR_COLUMNS)


def test_unknown_section_with_dictionary_column_is_read() -> None:
    symbols = pa.table({"symbol": pa.array(["NIFTY", "BANKNIFTY", "NIFTY"]).dictionary_encode()})
    w = decode(build([(b"symbols", arrow_stream(symbols))]))
    assert w.tables["symbols"].column("symbol").to_pylist() == ["NIFTY", "BANKNIFTY", "NIFTY"]


# -- malformed payloads ---------------------------------------------------------------------


def _patched(data: bytes, offset: int, fmt: str, value: int) -> bytes:
    out = bytearray(data)
    struct.pack_into(fmt, out, offset, value)
    return bytes(out)


def _bars_stream(table: pa.Table | None = None) -> bytes:
    return arrow_stream(table if table is not None else pa.table(bars_table()))


def _batch_length_lies(valid: bytes) -> bytes:
    """Our options stream with the record batch claiming more rows than its buffers hold."""
    name, data = sections_of(valid)[1]
    (schema_len,) = struct.unpack_from("<i", data, 4)
    batch = 8 + schema_len  # the record batch message follows the schema message
    out = bytearray(data)
    struct.pack_into("<q", out, batch + 8 + 56, 1000)  # RecordBatch.length (layout above)
    return build([(name, bytes(out))])


def _buffers_too_short(valid: bytes) -> bytes:
    """Our options stream claiming 1000 more rows in the batch and every field node, so the
    buffers are too small for the rows (caught by validation, not by the reader)."""
    name, data = sections_of(valid)[1]
    (schema_len,) = struct.unpack_from("<i", data, 4)
    fb = 8 + schema_len + 8  # flatbuffer of the record batch message
    out = bytearray(data)
    (rows,) = struct.unpack_from("<q", out, fb + 56)
    struct.pack_into("<q", out, fb + 56, rows + 1000)
    for k in range(len(OPTION_COLUMNS)):
        struct.pack_into("<q", out, fb + 80 + 16 * k, rows + 1000)
    return build([(name, bytes(out))])


def _invalid_utf8() -> bytes:
    strings = pa.array([b"ok", b"\xff\xfe"], pa.binary()).view(pa.string())
    return build([(b"future", arrow_stream(pa.table({"s": strings})))])


def _with_trailer_after_eos() -> bytes:
    return build([(b"bars", _bars_stream() + b"\x00" * 8)])


def _compressed() -> bytes:
    if not pa.Codec.is_available("zstd"):  # pragma: no cover - zstd ships with pyarrow wheels
        pytest.skip("pyarrow without zstd")
    return build([(b"bars", arrow_stream(pa.table(bars_table()), compression="zstd"))])


def _with_nulls() -> bytes:
    table = pa.table(bars_table())
    i = table.column_names.index("volume")
    table = table.set_column(i, "volume", pa.array([1, None, 3], pa.int64()))
    return build([(b"bars", _bars_stream(table))])


def _wrong_type() -> bytes:
    t = bars_table()
    t["volume"] = t["volume"].astype(np.float64)
    return build([(b"bars", _bars_stream(pa.table(t)))])


def _missing_column() -> bytes:
    return build([(b"bars", _bars_stream(pa.table(bars_table()).drop_columns(["oi"])))])


def _renamed_column() -> bytes:
    table = pa.table(bars_table())
    return build([(b"bars", _bars_stream(table.rename_columns(
        ["token", *table.column_names[1:]])))])


def _duplicate_column() -> bytes:
    table = pa.table(bars_table())
    return build([(b"bars", _bars_stream(table.append_column("open", table.column("open"))))])


MALFORMED = {
    "empty": lambda v: b"",
    "47 bytes": lambda v: v[:47],
    "header only": lambda v: v[:48],
    "wrong magic": lambda v: b"VTKX" + v[4:],
    "version 2": lambda v: _patched(v, 4, "<H", 2),
    "version 0": lambda v: _patched(v, 4, "<H", 0),
    "header_size < 48": lambda v: _patched(v, 6, "<H", 47),
    "header_size > len": lambda v: _patched(v, 6, "<H", 0xFFFF),
    "header_size past body": lambda v: _patched(v, 6, "<H", 56),
    "body_len too large": lambda v: _patched(v, 40, "<I", len(v) - 47),
    "body_len too small": lambda v: _patched(v, 40, "<I", len(v) - 49),
    "body_len max": lambda v: _patched(v, 40, "<I", 2**32 - 1),
    "truncated": lambda v: v[:-1],
    "trailing bytes": lambda v: v + b"\x00",
    "bad crc field": lambda v: _patched(v, 44, "<I", checksum(v, v[48:]) ^ 1),
    "seq flipped": lambda v: _patched(v, 8, "<Q", 43),
    "end_ns flipped": lambda v: _patched(v, 24, "<q", T0 + 5),
    "body byte flipped": lambda v: v[:-20] + bytes([v[-20] ^ 0x40]) + v[-19:],
    "flags set": lambda v: _patched(v, 38, "<H", 1),
    "section_count 65": lambda v: build(v[48:], section_count=65),
    "section_count 0xffff": lambda v: build(v[48:], section_count=0xFFFF),
    "section_count too high": lambda v: build(v[48:], section_count=4),
    "section_count too low (left over bytes)": lambda v: build(v[48:], section_count=2),
    "section_count 0 with a body": lambda v: build(v[48:], section_count=0),
    "name_len 0": lambda v: build(b"\x00" + struct.pack("<I", 0), section_count=1),
    "name_len 65": lambda v: build(b"\x41" + b"a" * 65 + struct.pack("<I", 0),
                                   section_count=1),
    "name_len past end": lambda v: build(b"\x40bars", section_count=1),
    "data_len cut off": lambda v: build(b"\x04bars\x00\x00", section_count=1),
    "name upper case": lambda v: build([(b"Bars", _bars_stream())]),
    "name with dash": lambda v: build([(b"ba-rs", _bars_stream())]),
    "name with space": lambda v: build([(b"bars ", _bars_stream())]),
    "name not ascii": lambda v: build([(b"b\xe4rs", _bars_stream())]),
    "data_len past end": lambda v: build(b"\x04bars" + struct.pack("<I", 10**6) + b"xx",
                                         section_count=1),
    "data_len max": lambda v: build(b"\x04bars" + struct.pack("<I", 2**32 - 1),
                                    section_count=1),
    "garbage arrow, good crc": lambda v: build([(b"bars", bytes(range(256)) * 3)]),
    "garbage unknown section": lambda v: build([(b"future", b"\xff\xff\xff\xff" + b"\x7f" * 60)]),
    "empty section data": lambda v: build([(b"bars", b"")]),
    "eos only": lambda v: build([(b"bars", b"\xff\xff\xff\xff\x00\x00\x00\x00")]),
    "arrow stream cut short": lambda v: build([(b"bars", _bars_stream()[:-100])]),
    "arrow schema only cut": lambda v: build([(b"bars", _bars_stream()[:20])]),
    "huge metadata length": lambda v: build([(b"bars", b"\xff\xff\xff\xff\xf0\xff\xff\x7f"
                                              + b"\x00" * 16)]),
    "negative metadata length": lambda v: build([(b"bars", b"\xff\xff\xff\xff\x00\x00\x00\x80"
                                                  + b"\x00" * 16)]),
    "record batch longer than buffers": _batch_length_lies,
    "buffers shorter than the rows": _buffers_too_short,
    "invalid utf-8 in a string column": lambda v: _invalid_utf8(),
    "bytes after end-of-stream": lambda v: _with_trailer_after_eos(),
    "duplicate section": lambda v: build([(b"bars", _bars_stream()),
                                          (b"bars", _bars_stream())]),
    "bars with float volume": lambda v: _wrong_type(),
    "bars missing a column": lambda v: _missing_column(),
    "bars with renamed column": lambda v: _renamed_column(),
    "bars with duplicate column": lambda v: _duplicate_column(),
    "bars with nulls": lambda v: _with_nulls(),
    "compressed record batch": lambda v: _compressed(),
    "options stream under bars": lambda v: build([(b"bars", sections_of(v)[1][1])]),
}


@pytest.mark.parametrize("case", list(MALFORMED))
def test_malformed_payloads_raise_payload_error(case: str, valid: bytes) -> None:
    data = MALFORMED[case](valid)
    with pytest.raises(PayloadError):
        decode(data)


def test_malformed_cases_are_otherwise_valid() -> None:
    """The hand-built payloads of the table above are only wrong where they mean to be."""
    w = decode(build([(b"bars", _bars_stream())]))
    assert_same_table(w.tables["bars"], bars_table(), BAR_COLUMNS)
    assert decode(build(b"", section_count=0)).tables == {}


def test_errors_name_the_problem(valid: bytes) -> None:
    with pytest.raises(PayloadError, match="magic"):
        decode(b"XXXX" + valid[4:])
    with pytest.raises(PayloadError, match="version 2"):
        decode(_patched(valid, 4, "<H", 2))
    with pytest.raises(PayloadError, match="CRC"):
        decode(_patched(valid, 44, "<I", 0))
    with pytest.raises(PayloadError, match="duplicate section 'bars'"):
        decode(MALFORMED["duplicate section"](valid))
    with pytest.raises(PayloadError, match="'volume'"):
        decode(_wrong_type())
    with pytest.raises(PayloadError, match="compressed"):
        decode(_compressed())
    with pytest.raises(PayloadError, match="nulls"):
        decode(_with_nulls())


def test_read_header_checks_only_the_header(valid: bytes) -> None:
    assert read_header(valid[:48] + b"junk").seq == 42  # body not checked
    for case in ("empty", "47 bytes", "wrong magic", "version 2", "header_size < 48",
                 "flags set", "section_count 65"):
        with pytest.raises(PayloadError):
            read_header(MALFORMED[case](valid))


# -- property tests -------------------------------------------------------------------------


def _decode_or_payload_error(data: bytes) -> None:
    try:
        w = decode(data)
    except PayloadError:
        return
    assert isinstance(w.seq, int)
    for table in w.tables.values():
        assert isinstance(table, pa.Table)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=400))
def test_random_bytes_never_raise_anything_but_payload_error(data: bytes) -> None:
    _decode_or_payload_error(data)
    _decode_or_payload_error(b"VTKW\x01\x00\x30\x00" + data)


SMALL = encode(WindowResult(seq=1, start_ns=0, end_ns=1, ticks_in=2,
                            bars=bars_table(), options=empty_table(OPTION_COLUMNS, 1),
                            quarantine=quarantine_table()))

mutation = st.one_of(
    st.tuples(st.just("flip"), st.integers(0, len(SMALL) - 1), st.integers(1, 255)),
    st.tuples(st.just("set"), st.integers(0, len(SMALL) - 1), st.integers(0, 255)),
    st.tuples(st.just("truncate"), st.integers(0, len(SMALL)), st.just(0)),
    st.tuples(st.just("delete"), st.integers(0, len(SMALL) - 1), st.integers(1, 16)),
    st.tuples(st.just("insert"), st.integers(0, len(SMALL)), st.integers(0, 255)),
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(mutation, min_size=1, max_size=4), st.booleans())
def test_mutated_payloads_never_raise_anything_but_payload_error(ops, fix_crc: bool) -> None:
    data = bytearray(SMALL)
    for op, pos, arg in ops:
        pos = min(pos, len(data))
        if op == "flip" and pos < len(data):
            data[pos] ^= arg
        elif op == "set" and pos < len(data):
            data[pos] = arg
        elif op == "truncate":
            del data[pos:]
        elif op == "delete":
            del data[pos:pos + arg]
        elif op == "insert":
            data[pos:pos] = bytes([arg])
    mutated = refresh(bytes(data)) if fix_crc else bytes(data)
    _decode_or_payload_error(mutated)


def test_refresh_reaches_the_arrow_parser() -> None:
    """The CRC fix-up of the property test really gets mutations past the CRC check."""
    data = bytearray(SMALL)
    data[len(SMALL) // 2] ^= 0xFF
    with pytest.raises(PayloadError, match="section"):
        decode(refresh(bytes(data)))


# -- files of concatenated payloads ---------------------------------------------------------


def _payloads(n: int = 3) -> list[bytes]:
    return [encode(make_result(seq=s, empty=s % 2 == 0)) for s in range(1, n + 1)]


def test_iter_file_reads_back_to_back_payloads(tmp_path: Path) -> None:
    records = _payloads(3)
    path = tmp_path / "windows.vtk"
    path.write_bytes(b"".join(records))
    for source in (path, str(path)):
        windows = list(iter_file(source))
        assert [w.seq for w in windows] == [1, 2, 3]
        assert [w.nbytes for w in windows] == [len(r) for r in records]
        assert [w.tables["options"].num_rows for w in windows] == [4, 0, 4]
    with path.open("rb") as f:
        assert [w.seq for w in iter_file(f)] == [1, 2, 3]
        assert not f.closed  # a file object is left to its owner
    assert list(iter_file(io.BytesIO(b""))) == []


@pytest.mark.parametrize("keep", [-1, -100, 10, 48], ids=["1 byte short", "100 bytes short",
                                                         "in header", "header only"])
def test_iter_file_torn_last_record(keep: int) -> None:
    records = _payloads(3)
    data = b"".join(records[:2]) + records[-1][:keep]
    offset = len(records[0]) + len(records[1])
    seen = []
    with pytest.raises(PayloadError, match=rf"torn record at offset {offset}\b"):
        for w in iter_file(io.BytesIO(data)):
            seen.append(w.seq)
    assert seen == [1, 2]


def test_iter_file_corrupt_record_names_its_offset() -> None:
    records = _payloads(3)
    bad = bytearray(records[1])
    bad[-30] ^= 1
    data = records[0] + bytes(bad) + records[2]
    seen = []
    with pytest.raises(PayloadError, match=rf"record at offset {len(records[0])}: .*CRC"):
        for w in iter_file(io.BytesIO(data)):
            seen.append(w.seq)
    assert seen == [1]


def test_iter_file_bad_header_length_does_not_allocate_it() -> None:
    """A corrupt body_len of 4 GiB on a small file is reported as torn, not read."""
    record = bytearray(_payloads(1)[0])
    struct.pack_into("<I", record, 40, 2**32 - 1)
    with pytest.raises(PayloadError, match="torn record at offset 0"):
        list(iter_file(io.BytesIO(bytes(record))))


# -- the specification ----------------------------------------------------------------------


ARROW_TYPES = {"uint32": "Int(bitWidth=32, is_signed=false)",
               "int32": "Int(bitWidth=32, is_signed=true)",
               "int64": "Int(bitWidth=64, is_signed=true)",
               "float64": "FloatingPoint(precision=DOUBLE)",
               "int8": "Int(bitWidth=8, is_signed=true)",
               "uint8": "Int(bitWidth=8, is_signed=false)",
               "bool": "Bool"}


def _fill(c: Column) -> str:
    if c.missing_value is not None:
        return str(c.missing_value)
    if c.dtype.kind == "f":
        return "NaN"
    if c.dtype == np.int64:
        return f"{MISSING_INT} (int64 min)"
    if c.dtype.kind == "b":
        return "false"
    return "0"


def markdown_table(columns: tuple[Column, ...]) -> str:
    """The column table of docs/payload.md, generated from columns.py."""
    rows = ["| # | column | Arrow type | pyarrow / NumPy | missing | meaning |",
            "|---|--------|------------|-----------------|---------|---------|"]
    for i, c in enumerate(columns):
        rows.append(f"| {i} | `{c.name}` | {ARROW_TYPES[str(c.dtype)]} | "
                    f"{pa.from_numpy_dtype(c.dtype)} / {c.dtype} | {_fill(c)} | {c.doc} |")
    return "\n".join(rows)


def example_payload() -> bytes:
    """The worked example of docs/payload.md."""
    bars = empty_table(BAR_COLUMNS, 1)
    bars.update(instrument_token=np.array([256265], np.uint32),
                open=np.array([22000.5]), high=np.array([22010.0]), low=np.array([21995.0]),
                close=np.array([22005.25]), volume=np.array([0], np.int64),
                tick_count=np.array([3], np.int32),
                first_received_ns=np.array([T0 + 100_000_000], np.int64),
                last_received_ns=np.array([T0 + 900_000_000], np.int64))
    return encode(WindowResult(seq=42, start_ns=T0, end_ns=T0 + 1_000_000_000, ticks_in=3,
                               bars=bars, options=empty_table(OPTION_COLUMNS),
                               quarantine=empty_table(QUARANTINE_COLUMNS)))


def header_dump(data: bytes) -> list[str]:
    """The annotated header hex dump of docs/payload.md, one line per field."""
    names = ["magic", "version", "header_size", "seq", "start_ns", "end_ns", "ticks_in",
             "section_count", "flags", "body_len", "crc32"]
    sizes = [4, 2, 2, 8, 8, 8, 4, 2, 2, 4, 4]
    values = HEADER.unpack_from(data)
    lines, offset = [], 0
    for name, size, value in zip(names, sizes, values, strict=True):
        shown = repr(value)[1:] if name == "magic" else (
            f"0x{value:08x}" if name == "crc32" else str(value))
        lines.append(f"{offset:>6}  {data[offset:offset + size].hex(' '):<23}  {name} = {shown}")
        offset += size
    return lines


@pytest.fixture(scope="module")
def docs() -> str:
    return DOCS.read_text(encoding="utf-8")


def test_docs_mention_every_column(docs: str) -> None:
    for columns in payload.SECTION_COLUMNS.values():
        for c in columns:
            assert f"`{c.name}`" in docs, c.name


def test_docs_column_tables_match_columns_py(docs: str) -> None:
    for name, columns in payload.SECTION_COLUMNS.items():
        assert markdown_table(columns) in docs, f"regenerate the {name} table"


def test_docs_worked_example_matches_the_encoder(docs: str) -> None:
    data = example_payload()
    dump = header_dump(data)
    # body_len and the CRC depend on pyarrow's schema message bytes; the rest is fixed
    for line in dump[:9]:
        assert line in docs, line
    assert data[48:52].hex(" ") in docs                          # extension record: tag, len
    assert data[180:184].hex(" ") in docs                        # extension CRC-32
    first_section = data[184:184 + 1 + 4].hex(" ")  # name_len, name
    assert first_section in docs
    assert f"payload is {len(data)} bytes" in docs
