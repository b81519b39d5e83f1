"""Temp files of atomic writes: swept when a run is interrupted before its owner could discard them."""

import os

from nebula.connectors.destinations import _atomic


def test_sweep_removes_unreferenced_temp_files(tmp_path):
    f = _atomic.AtomicFile(str(tmp_path / "out.csv"))
    f.write(b"a\n")
    temp = f.temp_path
    del f  # an interrupt can land before the destination keeps its reference
    assert os.path.exists(temp)
    assert _atomic.sweep_temp_files() == [temp]
    assert os.listdir(tmp_path) == []
    assert _atomic.sweep_temp_files() == []


def test_committed_and_discarded_files_are_not_swept(tmp_path):
    a = _atomic.AtomicFile(str(tmp_path / "a.csv"))
    a.write(b"x\n")
    a.commit()
    b = _atomic.AtomicFile(str(tmp_path / "b.csv"))
    b.discard()
    assert _atomic.sweep_temp_files() == []
    assert sorted(os.listdir(tmp_path)) == ["a.csv"]


def test_bytes_written_is_what_the_file_holds(tmp_path):
    import nebula

    src = tmp_path / "a.csv"
    src.write_text("id,v\n" + "".join(f"{i},value {i}\n" for i in range(20000)))
    for name in ("o.parquet", "o.csv.gz", "o.jsonl"):
        r = nebula.copy(str(src), str(tmp_path / name))
        assert r.bytes_written == os.path.getsize(tmp_path / name), name
    before = os.path.getsize(tmp_path / "o.jsonl")
    r = nebula.copy(str(src), str(tmp_path / "o.jsonl"), mode="append")
    assert r.bytes_written == os.path.getsize(tmp_path / "o.jsonl") - before
