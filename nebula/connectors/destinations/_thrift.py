"""Just enough of Thrift's compact protocol to edit a Parquet footer.

A Parquet footer is a ``FileMetaData`` struct in Thrift's compact protocol. :func:`decode_struct`
turns it into a plain tree — a struct is a ``dict`` from field id to ``(type, value)``; a list is
``(element_type, [values])``; other values are ints or bytes — and :func:`encode_struct` writes the
tree back byte for byte (fields in ascending id order, as writers emit them). This is what lets
row groups encoded separately (in parallel) be joined into one file with a rewritten footer.
"""

from __future__ import annotations

# compact protocol type ids
STOP, TRUE, FALSE, BYTE, I16, I32, I64, DOUBLE, BINARY, LIST, SET, MAP, STRUCT = range(13)


class ThriftError(ValueError):
    """The bytes are not a well-formed compact-protocol struct."""


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    shift = result = 0
    while True:
        if pos >= len(buf):
            raise ThriftError("truncated varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7
        if shift > 70:
            raise ThriftError("varint too long")


def _zigzag(n: int) -> int:
    return (n >> 1) ^ -(n & 1)


def _value(buf: bytes, pos: int, t: int):
    if t in (TRUE, FALSE):  # only inside lists, where booleans are one byte each
        return buf[pos] == 1, pos + 1
    if t == BYTE:
        return buf[pos], pos + 1
    if t in (I16, I32, I64):
        v, pos = _varint(buf, pos)
        return _zigzag(v), pos
    if t == DOUBLE:
        return buf[pos:pos + 8], pos + 8
    if t == BINARY:
        n, pos = _varint(buf, pos)
        if pos + n > len(buf):
            raise ThriftError("truncated binary")
        return bytes(buf[pos:pos + n]), pos + n
    if t in (LIST, SET):
        head = buf[pos]
        pos += 1
        n, et = head >> 4, head & 0x0F
        if n == 15:
            n, pos = _varint(buf, pos)
        items = []
        for _ in range(n):
            v, pos = _value(buf, pos, et)
            items.append(v)
        return (et, items), pos
    if t == MAP:
        n, pos = _varint(buf, pos)
        if n == 0:
            return (0, 0, []), pos
        kv = buf[pos]
        pos += 1
        kt, vt = kv >> 4, kv & 0x0F
        items = []
        for _ in range(n):
            k, pos = _value(buf, pos, kt)
            v, pos = _value(buf, pos, vt)
            items.append((k, v))
        return (kt, vt, items), pos
    if t == STRUCT:
        return decode_struct(buf, pos)
    raise ThriftError(f"unknown compact type {t}")


def decode_struct(buf: bytes, pos: int = 0) -> tuple[dict, int]:
    """``(fields, end)``: ``fields`` maps field id to ``(type, value)``."""
    fields: dict[int, tuple[int, object]] = {}
    last = 0
    while True:
        if pos >= len(buf):
            raise ThriftError("truncated struct")
        head = buf[pos]
        pos += 1
        if head == STOP:
            return fields, pos
        delta, t = head >> 4, head & 0x0F
        if delta:
            fid = last + delta
        else:
            v, pos = _varint(buf, pos)
            fid = _zigzag(v)
        if t in (TRUE, FALSE):
            fields[fid] = (TRUE, t == TRUE)
        else:
            v, pos = _value(buf, pos, t)
            fields[fid] = (t, v)
        last = fid


def _put_varint(out: bytearray, n: int) -> None:
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return


def _put_value(out: bytearray, t: int, v) -> None:
    if t in (TRUE, FALSE):
        out.append(1 if v else 2)  # inside lists
    elif t == BYTE:
        out.append(v & 0xFF)
    elif t in (I16, I32, I64):
        _put_varint(out, (v << 1) ^ (v >> 63))
    elif t == DOUBLE:
        out += v
    elif t == BINARY:
        _put_varint(out, len(v))
        out += v
    elif t in (LIST, SET):
        et, items = v
        if len(items) < 15:
            out.append((len(items) << 4) | et)
        else:
            out.append(0xF0 | et)
            _put_varint(out, len(items))
        for item in items:
            _put_value(out, et, item)
    elif t == MAP:
        kt, vt, items = v
        _put_varint(out, len(items))
        if items:
            out.append((kt << 4) | vt)
            for k, val in items:
                _put_value(out, kt, k)
                _put_value(out, vt, val)
    elif t == STRUCT:
        out += encode_struct(v)
    else:
        raise ThriftError(f"unknown compact type {t}")


def encode_struct(fields: dict) -> bytes:
    out = bytearray()
    last = 0
    for fid in sorted(fields):
        t, v = fields[fid]
        wire = (TRUE if v else FALSE) if t in (TRUE, FALSE) else t
        delta = fid - last
        if 0 < delta <= 15:
            out.append((delta << 4) | wire)
        else:
            out.append(wire)
            _put_varint(out, (fid << 1) ^ (fid >> 63))
        if t not in (TRUE, FALSE):
            _put_value(out, t, v)
        last = fid
    out.append(STOP)
    return bytes(out)
