"""Schema contracts (freeze, discard-row, discard-value) for ``nested="keep"`` (reader thread, per chunk).

A change is found at a member (its own value: a new member, or a kind its type does not take) or at
a node below it (a new field of a struct, a value that does not fit the field's type). Only the
topmost offending value of a record is reported: the values inside a discarded object are not
listed one by one. ``discard-value`` nulls the offending value (a member's, or the field's inside
its struct/list); ``discard-row`` drops the record.
"""

from __future__ import annotations

import numpy as np

from ...errors import SchemaEvolutionError
from ...kernels import json as kj
from ._json_nested import deep_kinds_ok, kinds_ok


def _violations(src, tok, changes: dict, nsch: int) -> dict[int, list[tuple]]:
    """``{row: [("member", j) | ("node", event), ...]}`` of the values that break the schema."""
    n, ns = tok.n_rows, tok.ns
    deep = src._deep
    kinds2d = tok.kinds[:n * ns].reshape(n, ns)
    bad: dict[int, list[tuple]] = {}
    dense_bad: dict[int, np.ndarray] = {}
    ok: dict = {}
    for j in changes:
        t = src._schema[j].type if j < nsch else None
        if j < ns:
            flags = ~kinds_ok(t)[kinds2d[:, j]]
            dense_bad[j] = flags
            rows = np.flatnonzero(flags)
            for r in rows:
                bad.setdefault(int(r), []).append(("member", j))
        deep_kinds_ok(t, -(j + 1), deep, ok)
    ne = int(tok.evn[0])
    if not ok or not ne:
        return bad
    table = np.ones((len(deep), 16), dtype=bool)
    for s, (kok, _) in ok.items():
        table[s] = kok
    ev = tok.ev[:ne]
    slot, kind = ev[:, kj.EV_SLOT], tok.evk[:ne]
    is_bad = (slot >= 0) & ~table[np.maximum(slot, 0), kind]
    if not is_bad.any():
        return bad
    member = np.array([deep.member(s) for s in range(len(deep))], dtype=np.int64)
    parent, rows = ev[:, kj.EV_PARENT], ev[:, kj.EV_ROW]
    cand = np.flatnonzero(is_bad)
    cand = cand[~is_bad[parent[cand]]]  # inside an offending container: that one is reported
    covered = np.zeros(cand.shape[0], dtype=bool)  # the member itself is reported for that row
    owner = member[slot[cand]]
    for j, flags in dense_bad.items():
        sel = owner == j
        covered[sel] = flags[rows[cand[sel]]]
    cand = cand[~covered]
    for e in cand:
        bad.setdefault(int(rows[e]), []).append(("node", int(e)))
    src._contract_types = ok
    return bad


def apply_contract_keep(src, tok, changes: dict, nsch: int) -> None:
    o = src.opts
    n, ns = tok.n_rows, tok.ns
    buf, base = tok.block.buf, tok.block.base
    deep = src._deep
    bad = _violations(src, tok, changes, nsch)
    if not bad:
        return
    kinds2d = tok.kinds[:n * ns].reshape(n, ns)
    ok = getattr(src, "_contract_types", {})

    def what(r, item):
        if item[0] == "member":
            j = item[1]
            kind = kj.KIND_NAMES[int(kinds2d[r, j])]
            nm = src._slots[j]
            off = base + int(tok.starts[r * ns + j])
            if j >= nsch:
                return nm, f"field {nm!r} is not in the schema (a new {kind} field)", off
            return nm, f"field {nm!r}: a {kind} value does not fit the column type {src._schema[j].type}", off
        e = item[1]
        s = int(tok.ev[e, kj.EV_SLOT])
        kind = kj.KIND_NAMES[int(tok.evk[e])]
        path = deep.path(s, src._slots)
        off = base + int(tok.ev[e, kj.EV_START])
        t = ok.get(s, (None, None))[1]
        if t is None:
            return path, f"field {path!r} is not in the schema (a new {kind} field)", off
        return path, f"field {path!r}: a {kind} value does not fit the type {t}", off

    if o.contract == "freeze":
        r = min(bad)
        nm, text, off = what(r, bad[r][0])
        err = SchemaEvolutionError(f"{tok.path}, line {int(tok.row_line[r])}, byte {off}: {text} (contract freeze)")
        err.path, err.line, err.column, err.offset = tok.path, int(tok.row_line[r]), nm, off
        raise err
    rows = sorted(bad)
    for r in rows:
        raw = bytes(buf[tok.row_start[r]:tok.row_end[r]])
        for item in bad[r]:
            nm, text, off = what(r, item)
            tok.extra_rejects.append(dict(reason=f"{text} (contract {o.contract})", line=int(tok.row_line[r]),
                                          column=nm, offset=off, raw=raw))
            if o.contract == "discard-value":
                if item[0] == "member":
                    kinds2d[r, item[1]] = kj.K_NULL
                else:
                    tok.evk[item[1]] = kj.K_NULL
            if o.contract == "discard-row":
                break
    if o.contract == "discard-row":
        from .json import _compact

        keep = np.setdiff1d(np.arange(n), np.array(rows, dtype=np.int64))
        _compact(tok, keep)
