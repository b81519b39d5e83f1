"""Parallel and single-threaded parsing give identical tables (issue 4's correctness bar): quoted newlines
at chunk edges, CRLF, a BOM, and rows longer than a chunk, over many block and batch sizes."""

from __future__ import annotations

import random

import pytest

import nebula


def _doc(seed: int) -> bytes:
    rnd = random.Random(seed)
    lines = ["id,amount,note,ts"]
    for i in range(3000):
        kind = rnd.random()
        if kind < 0.1:
            note = '"multi\r\nline ""quoted"", with, commas\nand more"'
        elif kind < 0.12:
            note = '"' + "x" * rnd.randint(3000, 9000) + '"'  # longer than the smallest blocks
        elif kind < 0.15:
            note = ""
        else:
            note = "plain" + str(rnd.randint(0, 99))
        lines.append(f"{i},{rnd.randint(0, 10**6) / 100},{note},2025-01-{1 + i % 28:02d}T12:00:{i % 60:02d}")
    return "\ufeff".encode() + "\r\n".join(lines).encode() + b"\r\n"


@pytest.mark.parametrize("seed", [1, 2])
def test_threads_and_chunking_do_not_change_the_table(tmp_path, seed):
    p = tmp_path / "p.csv"
    p.write_bytes(_doc(seed))
    reference = nebula.read_csv(str(p), threads=1, block_size=1 << 22, batch_rows=1 << 16)
    assert reference.num_rows == 3000 and reference.column_names == ["id", "amount", "note", "ts"]
    for threads in (1, 2, 4):
        for block, batch in ((1024, 7), (4096, 100), (65536, 1000)):
            t = nebula.read_csv(str(p), threads=threads, block_size=block, batch_rows=batch)
            assert t.to_pylist() == reference.to_pylist(), (threads, block, batch)
