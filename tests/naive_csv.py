"""Obviously-right reference for the CSV tokenizer, on Python's csv module semantics (RFC 4180)."""

from __future__ import annotations


def naive_split(data: bytes, delim: bytes = b",", quote: bytes = b'"', escape: bytes = b"") -> list[list[bytes]]:
    """Records of fields, skipping blank lines; ``""`` inside quotes kept as-is (not undone). With
    ``escape``, that byte and the next are field content wherever they are (both kept as-is)."""
    rows: list[list[bytes]] = []
    i, n = 0, len(data)
    d, q = delim[0], quote[0]
    e = escape[0] if escape else -1
    while i < n:
        if data[i] in (10, 13):
            i += 2 if data[i] == 13 and i + 1 < n and data[i + 1] == 10 else 1
            continue
        row: list[bytes] = []
        while True:
            if i < n and data[i] == q:
                j = i + 1
                while True:
                    if j >= n:
                        raise ValueError("unterminated")
                    if data[j] == q:
                        if j + 1 < n and data[j + 1] == q:
                            j += 2
                            continue
                        break
                    if data[j] == e:
                        j += 2
                        continue
                    j += 1
                row.append(data[i + 1:j])
                i = j + 1
            else:
                j = i
                while j < n and data[j] not in (d, 10, 13):
                    j += 2 if data[j] == e else 1
                j = min(j, n)
                row.append(data[i:j])
                i = j
            if i < n and data[i] == d:
                i += 1
                if i >= n:
                    row.append(b"")
                    break
                continue
            break
        if i < n and data[i] == 13:
            i += 1
            if i < n and data[i] == 10:
                i += 1
        elif i < n and data[i] == 10:
            i += 1
        elif i < n:
            raise ValueError("after quote")
        rows.append(row)
    return rows
