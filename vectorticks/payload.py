"""The packed window payload, version 1: one checksummed binary payload per window.

A payload is a fixed 48-byte little-endian header, an optional header extension (written
by :func:`encode`: the window's quarantine counts per reason bit) and named sections; each
section holds one table as an uncompressed Arrow IPC *stream*. The byte-level
specification is ``docs/payload.md``; this module is its reference implementation.

>>> data = encode(result)                 # doctest: +SKIP
>>> window = decode(data)                 # doctest: +SKIP
>>> window.seq, window.bars.head()        # doctest: +SKIP

The decoder trusts nothing: every length is checked against the input before use, the
body is CRC-checked, and any malformed input raises :class:`PayloadError` (never another
exception type, never an allocation larger than the input). Decoded Arrow tables are
zero-copy views of the input buffer, so a ``bytearray`` given to :func:`decode` must not be
modified while the :class:`Window` is in use.
"""

from __future__ import annotations

import functools
import operator
import os
import re
import struct
import sys
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any, Final

import numpy as np
import pyarrow as pa

from .columns import BAR_COLUMNS, OPTION_COLUMNS, QUARANTINE_COLUMNS, Column, check_table
from .errors import PayloadError, SchemaError
from .masks import REASONS

if TYPE_CHECKING:
    import pandas as pd

    from .compute import WindowResult

__all__ = [
    "HEADER_SIZE",
    "MAGIC",
    "MAX_SECTIONS",
    "SECTION_COLUMNS",
    "VERSION",
    "Header",
    "PayloadError",
    "Window",
    "checksum",
    "decode",
    "encode",
    "encode_sections",
    "iter_file",
    "read_header",
    "reason_bit_counts",
]

MAGIC: Final = b"VTKW"
VERSION: Final = 1
HEADER_SIZE: Final = 48
MAX_SECTIONS: Final = 64
MAX_NAME_LEN: Final = 64

#: The sections this version knows, in the order :func:`encode` writes them.
SECTION_COLUMNS: Final[Mapping[str, tuple[Column, ...]]] = {
    "bars": BAR_COLUMNS,
    "options": OPTION_COLUMNS,
    "quarantine": QUARANTINE_COLUMNS,
}

# magic, version, header_size, seq, start_ns, end_ns, ticks_in, section_count, flags,
# body_len, crc32 (of header bytes 0-43, then the body)
_HEADER = struct.Struct("<4sHHQqqIHHII")
assert _HEADER.size == HEADER_SIZE
_CRC_OFFSET: Final = 44
_U16 = struct.Struct("<H")
_I16 = struct.Struct("<h")
_U32 = struct.Struct("<I")
_I32 = struct.Struct("<i")
_NAME = re.compile(rb"[a-z0-9_]{1,64}")
_EOS: Final = b"\xff\xff\xff\xff\x00\x00\x00\x00"  # Arrow IPC end-of-stream marker
_U32_MAX = 0xFFFF_FFFF
# Header extension: records of (u16 tag, u16 length, data), then a CRC-32 of the records.
_EXT_RECORD = struct.Struct("<HH")
_TAG_REASON_COUNTS: Final = 1
_REASON_BITS: Final = 32  # one u32 count per bit of the uint32 reason mask
_REASON_COUNTS = struct.Struct(f"<{_REASON_BITS}I")
_FILE_CHUNK = 1 << 20  # iter_file never reads more than this beyond what the file holds
_READ_OPTIONS = pa.ipc.IpcReadOptions(use_threads=False)


@dataclass(frozen=True, slots=True)
class _Section:
    """Everything about a section that can be built once."""

    name: str
    columns: tuple[str, ...]
    schema: pa.Schema
    schema_message: bytes          # the encapsulated IPC schema message opening the stream
    schema_metadata: pa.Buffer     # its flatbuffer, to recognise our own schema when reading
    name_prefix: bytes             # name_len u8 + name
    batch_metadata: struct.Struct  # the record batch message's flatbuffer (see below)


def _section(name: str, fields: list[tuple[str, pa.DataType]]) -> _Section:
    raw = name.encode("ascii")
    if not _NAME.fullmatch(raw):
        raise SchemaError(f"section name {name!r} must be 1..64 characters of [a-z0-9_]")
    schema = pa.schema([pa.field(n, t, nullable=False) for n, t in fields])
    message = schema.serialize()
    return _Section(name, tuple(n for n, _ in fields), schema, message.to_pybytes(),
                    pa.ipc.read_message(message).metadata, bytes([len(raw)]) + raw,
                    _batch_struct(len(fields)))


# The record batch message of a section is written here rather than by pyarrow: for flat,
# fixed-width, null-free columns its flatbuffer has one fixed shape, and packing it with one
# struct call is several times faster than building pyarrow arrays (pyarrow writes the schema
# message, once per section, and reads everything). The tests check that the body is
# byte-identical to pyarrow's and that pyarrow reads the message back.
#
# Flatbuffer layout (offsets from its start; k columns; all scalars naturally aligned):
#   0  u32 root offset -> Message table at 16
#   4  Message vtable: size 12, table size 20, fields version@16 header_type@18 header@4
#      bodyLength@8
#  16  Message table: soffset 12 (vtable at 4), header -> 48, bodyLength i64, version i16 = 4
#      (MetadataVersion V5), header_type u8 = 3 (RecordBatch), 1 byte pad
#  36  RecordBatch vtable: size 10, table size 24, fields length@8 nodes@4 buffers@16; 2 pad
#  48  RecordBatch table: soffset 12 (vtable at 36), nodes -> 76, length i64,
#      buffers -> 84 + 16k, 4 pad
#  72  4 pad; 76 u32 k, then k FieldNode {length i64, null_count i64} at 80
#  80 + 16k  4 pad; u32 2k, then 2k Buffer {offset i64, length i64} at 88 + 16k
#  88 + 48k  end (a multiple of 8, so the message body that follows is 8-byte aligned)
_BATCH_FIXED = (
    16,                     # root offset -> Message table
    12, 20, 16, 18, 4, 8,   # Message vtable: its size, table size, 4 field offsets
    12,                     # Message table: soffset -> vtable at 4
    28,                     #   header: offset from 20 -> RecordBatch table at 48
)                           #   then bodyLength
_BATCH_MIDDLE = (
    4, 3,                   #   version V5, header_type RecordBatch
    10, 24, 8, 4, 16,       # RecordBatch vtable: its size, table size, 3 field offsets
    12,                     # RecordBatch table: soffset -> vtable at 36
    24,                     #   nodes: offset from 52 -> vector at 76
)                           #   then length, buffers offset, k, nodes, 2k, buffers
_CONTINUATION = b"\xff\xff\xff\xff"
_PADDING = tuple(b"\0" * i for i in range(8))
_LITTLE_ENDIAN_HOST = sys.byteorder == "little"


@functools.cache
def _batch_struct(k: int) -> struct.Struct:
    return struct.Struct(f"<I6HiIqhBx5H2xiIqI8xI{2 * k}q4xI{4 * k}q")


def _record_batch(spec: _Section, arrays: list[np.ndarray], parts: list[Any]) -> int:
    """Append the encapsulated record batch message of ``arrays`` (fixed-width, 1-d, one
    length) to ``parts``; return its size in bytes."""
    k = len(arrays)
    n = len(arrays[0]) if k else 0
    head = len(parts)
    parts += (None, None)  # continuation + metadata size, metadata: filled in below
    buffers: list[int] = []
    offset = 0
    for a in arrays:
        if a.dtype.kind == "b":
            a = np.packbits(a, bitorder="little")  # Arrow booleans are LSB-first bitmaps
        elif not (_LITTLE_ENDIAN_HOST and a.flags.c_contiguous) or a.dtype.byteorder == ">":
            a = np.ascontiguousarray(a, dtype=a.dtype.newbyteorder("<"))
        size = a.nbytes
        buffers += (offset, 0, offset, size)  # validity (absent: no nulls), values
        parts.append(a)
        pad = -size % 8
        if pad:
            parts.append(_PADDING[pad])
        offset += size + pad
    metadata = spec.batch_metadata.pack(*_BATCH_FIXED, offset, *_BATCH_MIDDLE, n,
                                        20 + 16 * k, k, *([n, 0] * k), 2 * k, *buffers)
    parts[head] = _CONTINUATION + _I32.pack(len(metadata))
    parts[head + 1] = metadata
    return 8 + len(metadata) + offset


_KNOWN: Final[dict[str, _Section]] = {
    name: _section(name, [(c.name, pa.from_numpy_dtype(c.dtype)) for c in cols])
    for name, cols in SECTION_COLUMNS.items()
}


# -- encoding -----------------------------------------------------------------------------


def encode(result: WindowResult) -> bytes:
    """Pack one window into a version-1 payload.

    Parameters
    ----------
    result
        The window; its ``bars``, ``options`` and ``quarantine`` tables must match
        :data:`~vectorticks.columns.BAR_COLUMNS`, ``OPTION_COLUMNS`` and
        ``QUARANTINE_COLUMNS`` exactly (names, order, dtypes).

    Returns
    -------
    bytes
        Header and the sections ``bars``, ``options``, ``quarantine`` in that order.

    Raises
    ------
    SchemaError
        A table does not match its schema.
    PayloadError
        A header field is out of range (``seq`` < 0, ``ticks_in`` >= 2**32, ...).
    """
    return encode_sections(result.seq, result.start_ns, result.end_ns, result.ticks_in,
                           {"bars": result.bars, "options": result.options,
                            "quarantine": result.quarantine},
                           reason_counts=reason_bit_counts(result.quarantine["reason"]))


def reason_bit_counts(reasons: np.ndarray) -> np.ndarray:
    """How many of ``reasons`` (uint32 bitmasks) have each bit set: ``int64[32]``, bit 0
    first (the header extension's per-reason quarantine counts)."""
    le = np.ascontiguousarray(reasons, dtype="<u4")
    bits = np.unpackbits(le.view(np.uint8).reshape(-1, 4), axis=1, bitorder="little")
    return bits.sum(axis=0, dtype=np.int64)


def encode_sections(seq: int, start_ns: int, end_ns: int, ticks_in: int,
                    sections: Mapping[str, Mapping[str, np.ndarray]], *,
                    reason_counts: np.ndarray | None = None) -> bytes:
    """Pack any named sections into a version-1 payload (the engine of :func:`encode`).

    Sections are written in the mapping's order. A known section (``bars``, ``options``,
    ``quarantine``) must match its schema from :mod:`vectorticks.columns`. Any other name
    (1..64 characters of ``[a-z0-9_]``) is written with the Arrow types of its columns,
    which must be 1-d NumPy arrays of one length and of a fixed-width dtype (bool,
    integer, float, datetime64, timedelta64). ``reason_counts`` (32 counts, one per bit
    of the quarantine reason mask) goes into the header extension.

    Raises
    ------
    SchemaError
        A table does not match its schema, or a section name is invalid.
    PayloadError
        A header field is out of range or the payload would exceed the format's limits.
    """
    seq = _in_range("seq", seq, 0, 2**64 - 1)
    start_ns = _in_range("start_ns", start_ns, -(2**63), 2**63 - 1)
    end_ns = _in_range("end_ns", end_ns, -(2**63), 2**63 - 1)
    ticks_in = _in_range("ticks_in", ticks_in, 0, _U32_MAX)
    if len(sections) > MAX_SECTIONS:
        raise PayloadError(f"{len(sections)} sections; at most {MAX_SECTIONS} fit a payload")
    extension = b"" if reason_counts is None else _extension(reason_counts)

    parts: list[Any] = [b"", extension]  # the header goes first, once the body is known
    body_len = 0
    for name, table in sections.items():
        spec = _KNOWN.get(name)
        if spec is None:
            spec = _adhoc_section(name, table)
        else:
            check_table(table, SECTION_COLUMNS[name])
        prefix = len(parts)
        parts += (None, spec.schema_message)
        data_len = (len(spec.schema_message)
                    + _record_batch(spec, [table[c] for c in spec.columns], parts)
                    + len(_EOS))
        if data_len > _U32_MAX:
            raise PayloadError(f"section {name!r} is {data_len} bytes; at most 2**32 - 1 fit")
        parts.append(_EOS)
        parts[prefix] = spec.name_prefix + _U32.pack(data_len)
        body_len += len(parts[prefix]) + data_len
    if body_len > _U32_MAX:
        raise PayloadError(f"body is {body_len} bytes; at most 2**32 - 1 fit")
    fields = (MAGIC, VERSION, HEADER_SIZE + len(extension), seq, start_ns, end_ns, ticks_in,
              len(sections), 0, body_len)
    crc = zlib.crc32(_HEADER.pack(*fields, 0)[:_CRC_OFFSET])
    for part in parts[2:]:
        crc = zlib.crc32(part, crc)
    parts[0] = _HEADER.pack(*fields, crc)
    return b"".join(parts)


def _extension(reason_counts: np.ndarray) -> bytes:
    counts = np.asarray(reason_counts)
    if counts.shape != (_REASON_BITS,) or counts.min() < 0 or counts.max() > _U32_MAX:
        raise PayloadError(f"reason_counts must be {_REASON_BITS} counts in 0..2**32-1")
    records = (_EXT_RECORD.pack(_TAG_REASON_COUNTS, _REASON_COUNTS.size)
               + _REASON_COUNTS.pack(*counts.tolist()))
    return records + _U32.pack(zlib.crc32(records))


def checksum(header: bytes | memoryview, body: bytes | memoryview) -> int:
    """The payload's CRC-32: over the first 44 header bytes (every field before the
    checksum), continued over the body; extension bytes are not covered."""
    return zlib.crc32(body, zlib.crc32(header[:_CRC_OFFSET]))


def _in_range(field: str, value: int, lo: int, hi: int) -> int:
    v = operator.index(value)
    if not lo <= v <= hi:
        raise PayloadError(f"{field}={v} does not fit the header (range {lo}..{hi})")
    return v


def _adhoc_section(name: str, table: Mapping[str, np.ndarray]) -> _Section:
    lengths = set()
    fields = []
    for col, a in table.items():
        if not isinstance(a, np.ndarray) or a.ndim != 1 or a.dtype.kind not in "biufmM":
            raise SchemaError(f"section {name!r}: column {col!r} must be a 1-d NumPy array "
                              f"of a fixed-width dtype")
        try:
            fields.append((col, pa.from_numpy_dtype(a.dtype)))
        except (pa.ArrowException, TypeError, ValueError) as exc:
            raise SchemaError(f"section {name!r}: column {col!r}: {exc}") from exc
        lengths.add(len(a))
    if len(lengths) > 1:
        raise SchemaError(f"section {name!r}: columns have different lengths {sorted(lengths)}")
    return _section(name, fields)


# -- decoding -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Header:
    """The fixed 48-byte header of a payload (see ``docs/payload.md``), plus what its
    extension says when the extension was among the bytes read."""

    version: int
    header_size: int
    seq: int
    start_ns: int
    end_ns: int
    ticks_in: int
    section_count: int
    flags: int
    body_len: int
    crc32: int
    reason_counts: dict[str, int] | None = None
    """Quarantined ticks per reason (every :class:`~vectorticks.masks.Reason` name, plus
    ``BIT_<k>`` for a set bit no reason defines); ``None`` without the extension."""

    @property
    def total_len(self) -> int:
        """Bytes of the whole payload: ``header_size + body_len``."""
        return self.header_size + self.body_len


def read_header(data: bytes | bytearray | memoryview) -> Header:
    """Parse and check the fixed header only (cheap: no CRC, no Arrow).

    Only the first 48 bytes are needed, so this also works on the start of a payload
    (``iter_file`` uses it to learn a record's length). It checks the magic, the version,
    ``header_size >= 48``, ``flags == 0`` and ``section_count <= 64``; the lengths against
    the rest of the data and the CRC are checked by :func:`decode`. When ``data`` holds
    the whole header extension, its records are checked (their own CRC-32) and read.

    Raises
    ------
    PayloadError
        The bytes do not start with a valid version-1 header.
    """
    view = _byte_view(data)
    if len(view) < HEADER_SIZE:
        raise PayloadError(f"payload of {len(view)} bytes is shorter than the "
                           f"{HEADER_SIZE}-byte header")
    (magic, version, header_size, seq, start_ns, end_ns, ticks_in, section_count, flags,
     body_len, crc) = _HEADER.unpack_from(view)
    if magic != MAGIC:
        raise PayloadError(f"bad magic {magic!r}, expected {MAGIC!r}")
    if version != VERSION:
        raise PayloadError(f"unsupported payload version {version} (this reader knows "
                           f"version {VERSION})")
    if header_size < HEADER_SIZE:
        raise PayloadError(f"header_size {header_size} < {HEADER_SIZE}")
    if flags != 0:
        raise PayloadError(f"flags 0x{flags:04x} set; version {VERSION} defines none")
    if section_count > MAX_SECTIONS:
        raise PayloadError(f"section_count {section_count} > {MAX_SECTIONS}")
    counts = (_read_extension(view[HEADER_SIZE:header_size])
              if HEADER_SIZE < header_size <= len(view) else None)
    return Header(version, header_size, seq, start_ns, end_ns, ticks_in, section_count, flags,
                  body_len, crc, counts)


def _read_extension(ext: memoryview) -> dict[str, int] | None:
    """The reason counts of a header extension (``None`` if it has no such record).
    Unknown record tags are skipped; a malformed extension raises :class:`PayloadError`."""
    if len(ext) < 4:
        raise PayloadError(f"header extension of {len(ext)} bytes has no room for its CRC-32")
    records, (crc,) = ext[:-4], _U32.unpack_from(ext, len(ext) - 4)
    if zlib.crc32(records) != crc:
        raise PayloadError(f"header extension CRC-32 0x{zlib.crc32(records):08x} != "
                           f"0x{crc:08x}")
    counts = None
    pos = 0
    while pos < len(records):
        if len(records) - pos < _EXT_RECORD.size:
            raise PayloadError(f"header extension record at byte {pos} is cut short")
        tag, size = _EXT_RECORD.unpack_from(records, pos)
        pos += _EXT_RECORD.size
        if size > len(records) - pos:
            raise PayloadError(f"header extension record {tag} announces {size} bytes; "
                               f"{len(records) - pos} are left")
        if tag == _TAG_REASON_COUNTS:
            if size != _REASON_COUNTS.size:
                raise PayloadError(f"reason counts record of {size} bytes, expected "
                                   f"{_REASON_COUNTS.size}")
            counts = _name_reason_counts(_REASON_COUNTS.unpack_from(records, pos))
        pos += size
    return counts


def _name_reason_counts(per_bit: tuple[int, ...]) -> dict[str, int]:
    names = {int(r).bit_length() - 1: r.name for r in REASONS}
    out = {name: per_bit[k] for k, name in sorted(names.items())}
    out.update({f"BIT_{k}": c for k, c in enumerate(per_bit) if c and k not in names})
    return out


@dataclass(frozen=True, eq=False)
class Window:
    """One decoded window.

    ``tables`` holds every section of the payload by name as a :class:`pyarrow.Table`
    (zero-copy views of the decoded bytes), including sections this version does not know.
    ``bars``, ``options`` and ``quarantine`` are pandas DataFrames converted on first
    access; a section missing from the payload gives an empty DataFrame of its schema.
    """

    seq: int
    start_ns: int
    end_ns: int
    ticks_in: int
    nbytes: int
    tables: dict[str, pa.Table]
    reason_counts: dict[str, int] | None = None
    """Quarantined ticks per reason, from the header extension (``None`` without one)."""

    def table(self, name: str) -> pa.Table:
        """The section ``name``; an empty table of its schema for a known, absent section.

        Raises ``KeyError`` for an unknown name that is not in the payload.
        """
        t = self.tables.get(name)
        if t is not None:
            return t
        if name in _KNOWN:
            return _KNOWN[name].schema.empty_table()
        raise KeyError(name)

    @functools.cached_property
    def bars(self) -> pd.DataFrame:
        """OHLCV bars as a pandas DataFrame (columns of ``BAR_COLUMNS``)."""
        return self.table("bars").to_pandas()

    @functools.cached_property
    def options(self) -> pd.DataFrame:
        """Option snapshots with IV and Greeks as a pandas DataFrame."""
        return self.table("options").to_pandas()

    @functools.cached_property
    def quarantine(self) -> pd.DataFrame:
        """Quarantined ticks with their reason bitmask as a pandas DataFrame."""
        return self.table("quarantine").to_pandas()


def decode(data: bytes | bytearray | memoryview) -> Window:
    """Decode one payload; ``data`` must be exactly one payload (no trailing bytes).

    Raises
    ------
    PayloadError
        The payload is truncated, corrupted, of another version or otherwise malformed.
    TypeError
        ``data`` is not a contiguous bytes-like object.
    """
    view = _byte_view(data)
    n = len(view)
    h = read_header(view)
    if h.header_size > n:
        raise PayloadError(f"header_size {h.header_size} > payload length {n}")
    if h.body_len != n - h.header_size:
        raise PayloadError(f"body_len {h.body_len} but {n - h.header_size} bytes follow the "
                           f"header")
    crc = checksum(view, view[h.header_size:])
    if crc != h.crc32:
        raise PayloadError(f"CRC-32 0x{crc:08x} != header's 0x{h.crc32:08x}")

    buffer = pa.py_buffer(view)
    tables: dict[str, pa.Table] = {}
    pos = h.header_size
    for i in range(h.section_count):
        if pos >= n:
            raise PayloadError(f"section {i} at offset {pos}: the body ends before "
                               f"{h.section_count} sections")
        name_len = view[pos]
        if not 1 <= name_len <= MAX_NAME_LEN:
            raise PayloadError(f"section {i} at offset {pos}: name_len {name_len} not in "
                               f"1..{MAX_NAME_LEN}")
        if n - pos < 1 + name_len + 4:
            raise PayloadError(f"section {i} at offset {pos}: its name and data_len "
                               f"({1 + name_len + 4} bytes) run past the end")
        raw = bytes(view[pos + 1:pos + 1 + name_len])
        if not _NAME.fullmatch(raw):
            raise PayloadError(f"section {i} at offset {pos}: name {raw!r} is not "
                               f"[a-z0-9_]+")
        name = raw.decode("ascii")
        if name in tables:
            raise PayloadError(f"section {i} at offset {pos}: duplicate section {name!r}")
        (data_len,) = _U32.unpack_from(view, pos + 1 + name_len)
        start = pos + 1 + name_len + 4
        if data_len > n - start:
            raise PayloadError(f"section {name!r} at offset {pos}: data_len {data_len} > "
                               f"{n - start} bytes left")
        tables[name] = _read_section(name, buffer.slice(start, data_len), start)
        pos = start + data_len
    if pos != n:
        raise PayloadError(f"{n - pos} bytes after the last of {h.section_count} sections "
                           f"(offset {pos})")
    return Window(seq=h.seq, start_ns=h.start_ns, end_ns=h.end_ns, ticks_in=h.ticks_in,
                  nbytes=n, tables=tables, reason_counts=h.reason_counts)


def _byte_view(data: bytes | bytearray | memoryview) -> memoryview:
    view = memoryview(data)
    if view.format != "B" or view.ndim != 1:
        view = view.cast("B")  # TypeError if not contiguous
    return view


class _Bad(Exception):
    """Internal: a section's Arrow stream breaks a rule of this format."""


def _read_section(name: str, data: pa.Buffer, offset: int) -> pa.Table:
    """Read one section's Arrow IPC stream (zero-copy) and check it."""
    known = _KNOWN.get(name)
    source = pa.BufferReader(data)
    try:
        msg = _next_message(source)
        if msg is None or msg.type != "schema":
            raise _Bad("the stream does not start with a schema message")
        if known is not None and msg.metadata.equals(known.schema_metadata):
            schema = known.schema  # our own schema message, byte for byte
        else:
            _check_message(msg)
            schema = pa.ipc.read_schema(msg)
            if known is not None:
                _check_schema(schema, known.schema)
        batches = []
        has_dictionaries = False
        while (msg := _next_message(source)) is not None:
            if msg.type not in ("record batch", "dictionary"):
                raise _Bad(f"unexpected {msg.type} message")
            _check_message(msg, no_nulls=known is not None)
            if msg.type == "dictionary":
                has_dictionaries = True
            elif not has_dictionaries:
                batches.append(pa.ipc.read_record_batch(msg, schema))
        if source.tell() != data.size:
            raise _Bad(f"{data.size - source.tell()} bytes after the end-of-stream marker")
        if has_dictionaries:  # only in sections this version does not know; messages checked
            table = pa.ipc.open_stream(data, options=_READ_OPTIONS).read_all()
        else:
            table = pa.Table.from_batches(batches, schema=schema)
        table.validate(full=True)  # also checks every null_count against its bitmap
    except Exception as exc:  # every pyarrow/struct failure is a malformed payload
        raise PayloadError(f"section {name!r} at offset {offset}: invalid Arrow IPC stream: "
                           f"{exc}") from exc
    return table


def _next_message(source: pa.BufferReader) -> pa.ipc.Message | None:
    """The next message, or None after the end-of-stream marker or at the end of data."""
    try:
        return pa.ipc.read_message(source)
    except EOFError:
        return None


def _check_schema(got: pa.Schema, expected: pa.Schema) -> None:
    """A known section has its columns first, in order, with their types; more may follow
    (a column appended within version 1)."""
    names = got.names
    if len(names) != len(set(names)):
        raise _Bad(f"duplicate column names in {names}")
    for i, field in enumerate(expected):
        if i >= len(got):
            raise _Bad(f"column {field.name!r} missing")
        g = got.field(i)
        if g.name != field.name or g.type != field.type:
            raise _Bad(f"column {i} is {g.name!r}: {g.type}, expected {field.name!r}: "
                       f"{field.type}")


# Arrow's Message flatbuffer (Message.fbs/Schema.fbs), only the fields checked here. pyarrow
# verifies the flatbuffer before we see it; the reads below are bounds-checked regardless.
_MSG_HEADER = 2          # Message.header (union table)
_SCHEMA_ENDIANNESS = 0   # Schema.endianness (0 = Little)
_DICT_DATA = 1           # DictionaryBatch.data (RecordBatch)
_BATCH_NODES = 1         # RecordBatch.nodes ([FieldNode {length: i64, null_count: i64}])
_BATCH_COMPRESSION = 3   # RecordBatch.compression (BodyCompression)


def _check_message(msg: pa.ipc.Message, *, no_nulls: bool = False) -> None:
    """Reject big-endian schemas and compressed bodies (decompression would allocate more
    than the input holds); with ``no_nulls``, record batches whose columns hold nulls."""
    fb = memoryview(msg.metadata)
    root = _fb_deref(fb, 0)
    header = _fb_field(fb, root, _MSG_HEADER)
    if not header:
        raise _Bad(f"{msg.type} message without a header")
    header = _fb_deref(fb, header)
    if msg.type == "schema":
        endian = _fb_field(fb, header, _SCHEMA_ENDIANNESS)
        if endian and _I16.unpack_from(fb, endian)[0] != 0:
            raise _Bad("big-endian Arrow data; the format is little-endian")
        return
    if msg.type == "dictionary":
        data = _fb_field(fb, header, _DICT_DATA)
        if not data:
            raise _Bad("dictionary message without data")
        header = _fb_deref(fb, data)
    if _fb_field(fb, header, _BATCH_COMPRESSION):
        raise _Bad("compressed record batch; the format is uncompressed")
    nodes = _fb_field(fb, header, _BATCH_NODES) if no_nulls else 0
    if nodes:
        vector = _fb_deref(fb, nodes)
        (count,) = _U32.unpack_from(fb, vector)
        if count > (len(fb) - vector - 4) // 16:
            raise _Bad("flatbuffer vector out of bounds")
        if any(struct.unpack_from(f"<{2 * count}q", fb, vector + 4)[1::2]):
            raise _Bad("a column holds nulls; known sections use NaN / int64 min instead")


def _fb_deref(fb: memoryview, pos: int) -> int:
    """Follow the uoffset stored at ``pos``."""
    if not 0 <= pos <= len(fb) - 4:
        raise _Bad("flatbuffer offset out of bounds")
    target = pos + _U32.unpack_from(fb, pos)[0]
    if target > len(fb) - 4:
        raise _Bad("flatbuffer offset out of bounds")
    return target


def _fb_field(fb: memoryview, table: int, index: int) -> int:
    """Absolute position of field ``index`` of the table at ``table``; 0 if absent."""
    vtable = table - _I32.unpack_from(fb, table)[0]
    if not 0 <= vtable <= len(fb) - 4:
        raise _Bad("flatbuffer vtable out of bounds")
    vtable_size = _U16.unpack_from(fb, vtable)[0]
    slot = 4 + 2 * index
    if slot + 2 > vtable_size:
        return 0
    if vtable + slot + 2 > len(fb):
        raise _Bad("flatbuffer vtable out of bounds")
    field = _U16.unpack_from(fb, vtable + slot)[0]
    if field and table + field >= len(fb):
        raise _Bad("flatbuffer field out of bounds")
    return table + field if field else 0


# -- files of concatenated payloads --------------------------------------------------------


def iter_file(source: str | os.PathLike[str] | IO[bytes]) -> Iterator[Window]:
    """Decode a file of payloads written back to back (the file sink's format).

    Each record's header gives its length (``header_size + body_len``). Records are
    yielded in file order. If the file ends inside a record (a *torn* last record, e.g. a
    writer that crashed mid-append or a file still being written), every complete record
    before it is yielded first, then :class:`PayloadError` is raised naming the record's
    offset and how many bytes are missing; truncating the file to that offset repairs it.
    A record that is complete but corrupt raises :class:`PayloadError` naming its offset.

    Parameters
    ----------
    source
        A path (opened now, closed when the iterator finishes or is closed) or a binary
        file object positioned at the first record (left open).
    """
    if isinstance(source, str | os.PathLike):
        f = open(source, "rb")  # closed by the generator
        return _iter_records(f, close=True)
    return _iter_records(source, close=False)


def _iter_records(f: IO[bytes], *, close: bool) -> Iterator[Window]:
    offset = 0
    try:
        while True:
            record = _read_up_to(f, bytearray(), HEADER_SIZE)
            if not record:
                return
            if len(record) < HEADER_SIZE:
                raise PayloadError(f"torn record at offset {offset}: the file ends "
                                   f"{len(record)} bytes into its {HEADER_SIZE}-byte header")
            try:
                total = read_header(record).total_len
            except PayloadError as exc:
                raise PayloadError(f"record at offset {offset}: {exc}") from exc
            _read_up_to(f, record, total)
            if len(record) < total:
                raise PayloadError(f"torn record at offset {offset}: its header announces "
                                   f"{total} bytes but the file ends after {len(record)} "
                                   f"({total - len(record)} missing)")
            try:
                window = decode(record)
            except PayloadError as exc:
                raise PayloadError(f"record at offset {offset}: {exc}") from exc
            yield window
            offset += total
    finally:
        if close:
            f.close()


def _read_up_to(f: IO[bytes], buf: bytearray, size: int) -> bytearray:
    """Extend ``buf`` from ``f`` to ``size`` bytes or until end of file, in bounded chunks
    (a corrupt length never makes us allocate much more than the file holds)."""
    while len(buf) < size:
        chunk = f.read(min(size - len(buf), _FILE_CHUNK))
        if not chunk:
            break
        buf += chunk
    return buf
