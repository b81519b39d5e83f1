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
