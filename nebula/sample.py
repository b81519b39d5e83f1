"""Deterministic generator of the ``orders`` benchmark data set (see BENCHMARKS.md).

Usage::

    python -m benchmarks.generate --rows 1000000 --format csv --out benchmarks/data/orders_1m.csv

Columns: ``id`` 1..N in order, ``user_id`` uniform in 1..1,000,000, ``amount`` 0.01..10000.00 with two
decimals, ``qty`` 1..100, ``country`` one of 50 ISO codes with Zipf-like weights (``NA``, Namibia, is among
them and rare: a trap for readers that treat "NA" as null), ``status`` one of 5 values, ``ts``
``YYYY-MM-DDTHH:MM:SS`` within 2025, ``note`` free text of 10–40 characters cut from a word stream, some
with commas, double quotes and newlines, ~2% null.

Formats: ``csv`` (RFC 4180, header, ``\\n`` line ends, quoting only fields that need it, null = empty
field), ``jsonl`` (one object per line, null note = ``null``) and ``json`` (one top-level array of the same
objects, one per line).

How it stays fast (>1M rows/s on one core) without a per-row Python loop: rows are generated in chunks of
``CHUNK_ROWS``; every field is laid out in a fixed-width slot of a ``(rows, width)`` uint8 matrix together
with a boolean mask of the bytes that are really there (numbers right-aligned from digit tables, text
left-aligned, quotes doubled by an interleaved column); one boolean index ``matrix[mask]`` then yields the
chunk's bytes in row order. Each chunk has its own random stream seeded by ``(seed, chunk index)``, so the
first N rows of a larger file equal a file of N rows with the same seed, and memory stays bounded.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

FORMATS = ("csv", "jsonl", "json")
COLUMNS = ("id", "user_id", "amount", "qty", "country", "status", "ts", "note")
CHUNK_ROWS = 131_072
NULL_NOTE_RATE = 0.02
_GENERATOR_VERSION = 1
_NOTE_MIN, _NOTE_MAX = 10, 40

# 50 ISO 3166-1 alpha-2 codes in order of decreasing weight; "NA" (Namibia) deliberately near the end.
COUNTRIES = (
    "US", "DE", "GB", "FR", "IN", "BR", "JP", "CA", "IT", "ES", "MX", "NL", "AU", "KR", "PL", "SE", "BE",
    "CH", "AT", "TR", "ID", "AR", "ZA", "NO", "DK", "FI", "IE", "PT", "CZ", "RO", "GR", "HU", "IL", "NZ",
    "SG", "CL", "CO", "PE", "PH", "TH", "VN", "MY", "EG", "NG", "KE", "NA", "MA", "UA", "IS", "LU",
)
STATUSES = ("pending", "paid", "shipped", "delivered", "cancelled")
_STATUS_WEIGHTS = (0.12, 0.15, 0.20, 0.45, 0.08)

_WORDS = (
    "please leave the parcel at front door back gate with neighbour reception desk call me before "
    "delivery after 6pm weekdays only gift wrap it no invoice inside box handle carefully fragile glass "
    "items ring twice dog in garden side entrance second floor apartment code is blue building left of "
    "shop order for birthday party urgent deliver tomorrow morning thanks a lot customer asked about "
    "discount coupon applied twice refund pending exchange size large medium small colour red green black "
    "white replacement for damaged item missing screws return label printed office hours lobby concierge "
    "signature required do not bend keep dry this side up contact via email phone text message"
).split()


def _digit_table(width: int) -> np.ndarray:
    """``(10**width, width)`` uint8: the zero-padded ASCII digits of 0..10**width-1."""
    v = np.arange(10**width, dtype=np.int64)[:, None]
    p = 10 ** np.arange(width - 1, -1, -1, dtype=np.int64)
    return ((v // p) % 10 + 48).astype(np.uint8)


def _gather(table: np.ndarray, index: np.ndarray) -> np.ndarray:
    """``table[index]`` for a C-contiguous ``(k, w)`` uint8 table, copying whole rows at once."""
    w = table.shape[1]
    return table.view(f"V{w}").reshape(-1)[index].view(np.uint8).reshape(len(index), w)


_D4 = _digit_table(4)
_D2 = _digit_table(2)
_POW10 = 10 ** np.arange(1, 19, dtype=np.int64)


def _ascii_table(items: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Left-aligned ``(len(items), max_len)`` uint8 table and the int64 lengths."""
    width = max(len(s) for s in items)
    table = np.zeros((len(items), width), dtype=np.uint8)
    for i, s in enumerate(items):
        table[i, :len(s)] = np.frombuffer(s.encode("ascii"), dtype=np.uint8)
    return table, np.array([len(s) for s in items], dtype=np.int64)


def _lookup(weights: tuple[float, ...] | np.ndarray) -> np.ndarray:
    """A 65536-entry table mapping a uniform uint16 to an index drawn with ``weights``."""
    cdf = np.cumsum(np.asarray(weights, dtype=np.float64))
    cdf /= cdf[-1]
    u = (np.arange(65_536) + 0.5) / 65_536
    return np.searchsorted(cdf, u, side="right").clip(0, len(cdf) - 1).astype(np.intp)


_COUNTRY_TABLE, _ = _ascii_table(COUNTRIES)
_STATUS_TABLE, _STATUS_LEN = _ascii_table(STATUSES)
_COUNTRY_LOOKUP = _lookup(1.0 / np.arange(1, len(COUNTRIES) + 1) ** 1.1)
_STATUS_LOOKUP = _lookup(_STATUS_WEIGHTS)
_DATES, _ = _ascii_table(tuple(str(np.datetime64("2025-01-01") + d) for d in range(365)))
_WIDTHS: dict[tuple, int] = {}


class _Rows:
    """Fixed-width segments of a chunk's rows, each a uint8 ``(n, w)`` block and a mask of present bytes.

    The segments are laid side by side in one ``(n, width)`` matrix; :meth:`bytes` keeps the masked bytes,
    in row order. With ``width=None`` the segments are collected first and copied into a matrix of the
    total width at the end (used once per layout to learn the width); with a known ``width`` they are
    written in place.
    """

    def __init__(self, n: int, width: int | None) -> None:
        self.n, self.pos = n, 0
        self.segments: list[tuple[np.ndarray, np.ndarray | bool]] | None = None
        if width is None:
            self.segments = []
        else:
            self.data = np.empty((n, width), dtype=np.uint8)
            self.mask = np.empty((n, width), dtype=bool)

    def block(self, data: np.ndarray, mask: np.ndarray | bool = True) -> None:
        w = data.shape[1]
        if self.segments is not None:
            self.segments.append((data, mask))
        else:
            self.data[:, self.pos:self.pos + w] = data
            self.mask[:, self.pos:self.pos + w] = mask
        self.pos += w

    def const(self, text: str) -> None:
        if text:
            self.block(np.frombuffer(text.encode(), dtype=np.uint8)[None, :])

    def uint(self, values: np.ndarray, width: int) -> None:
        """Decimal digits of non-negative ``values`` (< 10**width), without leading zeros."""
        limbs = -(-width // 4)
        digits = np.empty((len(values), 4 * limbs), dtype=np.uint8)
        rest = values
        for k in range(limbs - 1, -1, -1):
            digits[:, 4 * k:4 * k + 4] = _gather(_D4, rest % 10_000)
            rest = rest // 10_000
        leading = np.full(len(values), width - 1, dtype=np.int8)  # leading zeros to drop
        for p in range(1, width):
            leading -= values >= 10**p
        self.block(digits[:, 4 * limbs - width:], np.arange(width) >= leading[:, None])

    def bytes(self) -> bytes:
        if self.segments is not None:
            self.data = np.empty((self.n, self.pos), dtype=np.uint8)
            self.mask = np.empty((self.n, self.pos), dtype=bool)
            segments, self.segments, self.pos = self.segments, None, 0
            for d, m in segments:
                self.block(d, m)
        assert self.pos == self.data.shape[1]
        return self.data[self.mask].tobytes()


class _Corpus:
    """Notes are cut from one stream of words, precomputed per seed and escaped once per format.

    A note is a run of whole tokens (a word, or a word in double quotes) with their separators
    (space, ", ", ". ", newline), 10..40 characters long. ``pool_*`` enumerate every (first token,
    target length) pair; each row draws one pool entry.
    """

    TOKENS = 50_000

    def __init__(self, seed: int) -> None:
        rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, 0xC0FFEE])))
        n = self.TOKENS
        token = 2 * rng.integers(0, len(_WORDS), n) + (rng.random(n) < 0.03)  # odd: the word in quotes
        separators = (" ", ", ", "\n", ". ")
        sep = _lookup((0.86, 0.08, 0.02, 0.04))[rng.integers(0, 65_536, n)]
        self.texts: dict[str, np.ndarray] = {}
        self.token_start: dict[str, np.ndarray] = {}
        self.token_end: dict[str, np.ndarray] = {}
        escapes = {"raw": {}, "csv": {'"': '""'}, "json": {'"': '\\"', "\n": "\\n", "\\": "\\\\"}}
        for fmt, table in escapes.items():
            tr = str.maketrans(table)
            tok = [x.translate(tr) for w in _WORDS for x in (w, f'"{w}"')]
            sp = [x.translate(tr) for x in separators]
            tok_table, tok_lengths = _ascii_table(tuple(tok))
            sep_table, sep_lengths = _ascii_table(tuple(sp))
            tok_len, sep_len = tok_lengths[token], sep_lengths[sep]
            start = np.concatenate(([0], np.cumsum(tok_len + sep_len)[:-1]))
            rows = _Rows(n, None)
            rows.block(_gather(tok_table, token), np.arange(tok_table.shape[1]) < tok_len[:, None])
            rows.block(_gather(sep_table, sep), np.arange(sep_table.shape[1]) < sep_len[:, None])
            self.texts[fmt] = np.frombuffer(rows.bytes() + b" " * 128, dtype=np.uint8)
            self.token_start[fmt], self.token_end[fmt] = start, start + tok_len
        raw_start, raw_end = self.token_start["raw"], self.token_end["raw"]
        first = np.arange(n - 32)
        target = raw_start[first, None] + np.arange(_NOTE_MIN, _NOTE_MAX + 1)
        last = np.maximum(np.searchsorted(raw_end, target, side="right") - 1,
                          np.searchsorted(raw_end, raw_start[first] + _NOTE_MIN, side="left")[:, None])
        self.pool_first = np.repeat(first, _NOTE_MAX - _NOTE_MIN + 1)
        self.pool_last = last.ravel()
        raw_len = raw_end[self.pool_last] - raw_start[self.pool_first]
        assert raw_len.min() >= _NOTE_MIN and raw_len.max() <= _NOTE_MAX
        special = np.isin(self.texts["raw"], np.frombuffer(b'",\n', dtype=np.uint8))
        count = np.concatenate(([0], np.cumsum(special)))
        self.pool_needs_quotes = count[raw_end[self.pool_last]] > count[raw_start[self.pool_first]]
        self.width = {fmt: int((self.token_end[fmt][self.pool_last]
                                - self.token_start[fmt][self.pool_first]).max()) for fmt in ("csv", "json")}

    def notes(self, fmt: str, pick: np.ndarray, null: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The escaped bytes of the picked pool entries, ``(n, width)`` uint8, and their mask."""
        first, last = self.pool_first[pick], self.pool_last[pick]
        start = self.token_start[fmt][first]
        length = self.token_end[fmt][last] - start
        width = self.width[fmt]
        text = self.texts[fmt]
        windows = np.ndarray((len(text) - width + 1,), dtype=f"V{width}", buffer=text, strides=(1,))
        data = windows[start].view(np.uint8).reshape(len(start), width)
        return data, (np.arange(width) < length[:, None]) & ~null[:, None]


class _Chunk:
    """The values of rows ``first .. first+n-1`` (1-based ids), drawn from the chunk's own stream."""

    def __init__(self, seed: int, index: int, first: int, n: int, corpus: _Corpus) -> None:
        rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, index])))
        self.n, self.corpus = n, corpus
        self.id = np.arange(first, first + n, dtype=np.int64)
        # Draw a whole chunk's worth even for a short last chunk, so that rows never depend on N.
        m = CHUNK_ROWS
        self.user_id = rng.integers(1, 1_000_001, m)[:n]
        self.cents = rng.integers(1, 1_000_001, m)[:n]
        self.qty = rng.integers(1, 101, m)[:n]
        self.country = _COUNTRY_LOOKUP[rng.integers(0, 65_536, m, dtype=np.uint16)[:n]]
        self.status = _STATUS_LOOKUP[rng.integers(0, 65_536, m, dtype=np.uint16)[:n]]
        self.seconds = rng.integers(0, 365 * 86_400, m)[:n]
        self.note_null = rng.random(m)[:n] < NULL_NOTE_RATE
        self.note_pick = rng.integers(0, len(corpus.pool_first), m)[:n]

    def _rows(self, fmt: str) -> _Rows:
        return _Rows(self.n, _WIDTHS.get((fmt, len(str(int(self.id[-1]))), self.corpus.width["csv"],
                                          self.corpus.width["json"])))

    def _done(self, fmt: str, rows: _Rows) -> bytes:
        _WIDTHS[(fmt, len(str(int(self.id[-1]))), self.corpus.width["csv"], self.corpus.width["json"])] = rows.pos
        return rows.bytes()

    def common(self, rows: _Rows, names: tuple[str, ...] | None, string_quote: str) -> None:
        """id .. ts, each followed by a comma; for JSON ``names`` gives the ``"key":`` prefixes."""
        def key(i: int) -> None:
            if names is not None:
                rows.const(f'"{names[i]}":')

        key(0)
        rows.uint(self.id, len(str(int(self.id[-1]))))
        rows.const(",")
        key(1)
        rows.uint(self.user_id, 7)
        rows.const(",")
        key(2)
        rows.uint(self.cents // 100, 5)
        rows.const(".")
        rows.block(_gather(_D2, self.cents % 100))
        rows.const(",")
        key(3)
        rows.uint(self.qty, 3)
        rows.const(",")
        key(4)
        rows.const(string_quote)
        rows.block(_gather(_COUNTRY_TABLE, self.country))
        rows.const(string_quote + ",")
        key(5)
        rows.const(string_quote)
        rows.block(_gather(_STATUS_TABLE, self.status),
                   np.arange(_STATUS_TABLE.shape[1]) < _STATUS_LEN[self.status][:, None])
        rows.const(string_quote + ",")
        key(6)
        day, sod = np.divmod(self.seconds, 86_400)
        hour, rest = np.divmod(sod, 3600)
        minute, second = np.divmod(rest, 60)
        rows.const(string_quote)
        rows.block(_gather(_DATES, day))
        rows.const("T")
        rows.block(_gather(_D2, hour))
        rows.const(":")
        rows.block(_gather(_D2, minute))
        rows.const(":")
        rows.block(_gather(_D2, second))
        rows.const(string_quote + ",")
        key(7)

    def csv(self) -> bytes:
        rows = self._rows("csv")
        self.common(rows, None, "")
        note, valid = self.corpus.notes("csv", self.note_pick, self.note_null)
        quoted = (self.corpus.pool_needs_quotes[self.note_pick] & ~self.note_null)[:, None]
        quote = np.full((self.n, 1), 34, dtype=np.uint8)
        rows.block(quote, quoted)
        rows.block(note, valid)
        rows.block(quote, quoted)
        rows.const("\n")
        return self._done("csv", rows)

    def json(self, line_end: str) -> bytes:
        rows = self._rows("json" + line_end)
        rows.const("{")
        self.common(rows, COLUMNS, '"')
        note, valid = self.corpus.notes("json", self.note_pick, self.note_null)
        null = self.note_null[:, None]
        quote = np.full((self.n, 1), 34, dtype=np.uint8)
        rows.block(np.frombuffer(b"null", dtype=np.uint8)[None, :], null)
        rows.block(quote, ~null)
        rows.block(note, valid)
        rows.block(quote, ~null)
        rows.const("}" + line_end)
        return self._done("json" + line_end, rows)


def iter_chunks(rows: int, fmt: str = "csv", seed: int = 42):
    """Yield the bytes of the file in pieces (header, then one piece per ``CHUNK_ROWS`` rows)."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")
    if rows < 0:
        raise ValueError("rows must be >= 0")
    corpus = _Corpus(seed)
    if fmt == "csv":
        yield (",".join(COLUMNS) + "\n").encode()
    elif fmt == "json":
        yield b"[\n"
    for index, first in enumerate(range(1, rows + 1, CHUNK_ROWS)):
        chunk = _Chunk(seed, index, first, min(CHUNK_ROWS, rows + 1 - first), corpus)
        if fmt == "csv":
            yield chunk.csv()
        elif fmt == "jsonl":
            yield chunk.json("\n")
        else:
            data = chunk.json(",\n")
            last = first + chunk.n > rows
            yield data[:-2] + b"\n" if last else data
    if fmt == "json":
        yield b"]\n"


def _meta_path(path: Path) -> Path:
    return path.with_name(path.name + ".meta")


def _meta(rows: int, fmt: str, seed: int) -> dict:
    return {"generator": "nebula-orders", "version": _GENERATOR_VERSION, "rows": rows, "format": fmt,
            "seed": seed}


def generate(path: str | os.PathLike[str], rows: int, fmt: str = "csv", seed: int = 42, *,
             force: bool = False) -> Path:
    """Write ``rows`` rows of ``orders`` to ``path`` in ``fmt`` (csv, jsonl, json); return the path.

    Nothing is written when the file already holds the same rows/format/seed (recorded in a
    ``<path>.meta`` JSON sidecar, with the file size), unless ``force``. The file is written to a
    temporary name and renamed, so an interrupted run never leaves a file that looks complete.
    """
    path = Path(path)
    meta_path = _meta_path(path)
    want = _meta(rows, fmt, seed)
    if not force and path.exists() and meta_path.exists():
        try:
            have = json.loads(meta_path.read_text())
        except (OSError, ValueError):
            have = None
        if isinstance(have, dict) and have.pop("bytes", None) == path.stat().st_size and have == want:
            return path
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            for piece in iter_chunks(rows, fmt, seed):
                f.write(piece)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    meta_path.write_text(json.dumps({**want, "bytes": path.stat().st_size}) + "\n")
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.generate",
                                     description="Write the deterministic `orders` benchmark data set.")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--format", choices=FORMATS, default=None,
                        help="default: from the --out extension (.csv, .jsonl/.ndjson, .json), else csv")
    parser.add_argument("--out", default=None, help="default: benchmarks/data/orders_<rows>.<format>")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--force", action="store_true", help="rewrite even if an identical file exists")
    args = parser.parse_args(argv)
    fmt = args.format
    if fmt is None:
        suffix = Path(args.out).suffix.lower() if args.out else ""
        fmt = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json"}.get(suffix, "csv")
    out = Path(args.out or f"benchmarks/data/orders_{args.rows}.{fmt}")
    if args.rows < 0:
        parser.error("--rows must be >= 0")
    start = time.perf_counter()
    generate(out, args.rows, fmt, args.seed, force=args.force)
    seconds = time.perf_counter() - start
    print(f"{out}: {args.rows:,} rows, {out.stat().st_size:,} bytes, {seconds:.2f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
