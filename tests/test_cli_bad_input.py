"""Issue 3's list of bad inputs, each through the real ``nebula copy`` command in a subprocess.

Each gives the right table, or one line on stderr naming file, line, column and byte offset with exit code 1
(no traceback, no output file, no temporary file left); with ``--on-error dead-letter --dead-letter X`` the bad
row lands in X with its line, byte offset, reason and raw text and every other row is loaded.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pyarrow.parquet as pq
import pytest

_SCRIPT = os.path.join(os.path.dirname(sys.executable), "nebula")
NEBULA = [_SCRIPT] if os.path.exists(_SCRIPT) else [sys.executable, "-m", "nebula.cli"]


def copy(tmp_path, src, *args, prefix=()):
    out = tmp_path / "out.parquet"
    r = subprocess.run([*prefix, *NEBULA, "copy", str(src), str(out), "--no-progress", "--no-audit",
                        "--state", str(tmp_path / "s.db"), *args], capture_output=True, text=True, timeout=300)
    return r, out


def assert_one_line_error(r, out, *says):
    assert r.returncode == 1, (r.returncode, r.stderr)
    err = r.stderr.strip()
    assert "\n" not in err and err.startswith("nebula: error: ") and "Traceback" not in err, err
    for s in says:
        assert s in err, (s, err)
    assert not out.exists()
    assert [f for f in os.listdir(out.parent) if "nebula-tmp" in f] == []


# name, file body, extra options, what the error names (besides the file), bad line, good rows (column a)
ERRORS = [
    ("too_many_fields", b"a,b\n1,2\n3,4,5\n6,7\n", [], ("line 3", "column 3", "byte 8"), 3, ["1", "6"]),
    ("too_few_fields", b"a,b,c\n1,2,3\n4,5\n6,7,8\n", [], ("line 3", "column 'c'", "byte 12"), 3, ["1", "6"]),
    ("unterminated_quote_at_eof", b'a,b\n1,2\n3,"abc\n', [], ("line 3", "column 'b'", "byte 10"), 3, ["1"]),
    ("text_after_closing_quote", b'a,b\n1,2\n"3"x,4\n5,6\n', [], ("line 3", "column 'a'", "byte 11"), 3,
     ["1", "5"]),
    ("invalid_utf8", b"a,b\n1,x\n2,\xff\xfe\n3,z\n", [], ("line 3", "column 'b'", "byte 10"), 3, ["1", "3"]),
    ("value_not_fitting_declared_type", b"a,b\n1,x\n300,y\n4,w\n", ["--column", "a:int8"],
     ("line 3", "column 'a'", "byte 8", "'300'", "int8"), 3, ["1", "4"]),
]


@pytest.mark.parametrize("name,body,opts,says,line,good", ERRORS, ids=[e[0] for e in ERRORS])
def test_bad_row_fails_in_one_line_or_goes_to_the_dead_letter_file(tmp_path, name, body, opts, says, line, good):
    src = tmp_path / f"{name}.csv"
    src.write_bytes(body)
    r, out = copy(tmp_path, src, *opts)
    assert_one_line_error(r, out, str(src), *says)

    dl = tmp_path / "rejected.jsonl"
    r, out = copy(tmp_path, src, *opts, "--on-error", "dead-letter", "--dead-letter", str(dl), "--json")
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)
    assert (summary["rows_written"], summary["rows_rejected"]) == (len(good), 1)
    assert pq.read_table(out).column("a").cast("string").to_pylist() == good
    [rec] = [json.loads(x) for x in dl.read_text().splitlines()]
    assert rec["line"] == line and rec["source"] == str(src) and rec["reason"] and rec["column"] is not None
    raw = base64_or_text(rec).rstrip(b"\r\n")
    assert raw.startswith(body.splitlines()[line - 1]), (rec, body)
    start = body.index(raw)  # the byte offset is inside the rejected record
    assert start <= rec["offset"] < start + len(raw), (rec, body)


def base64_or_text(rec) -> bytes:
    import base64

    return base64.b64decode(rec["raw_base64"]) if rec["raw_base64"] else rec["raw"].encode()


def test_empty_file(tmp_path):
    src = tmp_path / "empty.csv"
    src.write_bytes(b"")
    r, out = copy(tmp_path, src)
    assert_one_line_error(r, out, str(src), "line 1, column 1, byte 0", "empty")


BIG = b"x" * (10 * 1024 * 1024)
TABLES = [  # name, file body, the table (column name -> values)
    ("header_only", b"a,b,c\n", {"a": [], "b": [], "c": []}),
    ("quote_in_unquoted_field", b'a,b\n1,ab"c\n2,"d"\n', {"a": [1, 2], "b": ['ab"c', "d"]}),
    ("nul_bytes", b"a,b\n1,x\x00y\n2,\x00\n", {"a": [1, 2], "b": ["x\x00y", "\x00"]}),
    ("field_of_10_mb", b'a,b\n1,"' + BIG + b'"\n2,y\n', {"a": [1, 2], "b": [BIG.decode(), "y"]}),
    ("mixed_line_endings", b"a,b\r\n1,x\n2,y\r3,z\r\n4,w", {"a": [1, 2, 3, 4], "b": ["x", "y", "z", "w"]}),
    ("duplicate_and_empty_header_names", b"a,a,,b\n1,2,3,4\n", {"a": [1], "a_2": [2], "column_3": [3], "b": [4]}),
]


@pytest.mark.parametrize("name,body,table", TABLES, ids=[t[0] for t in TABLES])
def test_odd_but_valid_input_gives_the_right_table(tmp_path, name, body, table):
    src = tmp_path / f"{name}.csv"
    src.write_bytes(body)
    r, out = copy(tmp_path, src, "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["bytes_read"] == len(body)
    assert pq.read_table(out).to_pydict() == table


def test_missing_file_and_directory(tmp_path):
    r, out = copy(tmp_path, tmp_path / "missing.csv")
    assert_one_line_error(r, out, str(tmp_path / "missing.csv"), "no such file")
    (tmp_path / "adir").mkdir()
    r, out = copy(tmp_path, tmp_path / "adir")
    assert_one_line_error(r, out, str(tmp_path / "adir"), "is a directory")


def test_file_without_read_permission(tmp_path):
    src = tmp_path / "secret.csv"
    src.write_bytes(b"a\n1\n")
    src.chmod(0)
    prefix = ()
    if os.geteuid() == 0:  # root reads anything: run the command without the capabilities that allow it
        setpriv = shutil.which("setpriv")
        assert setpriv, "setpriv (util-linux) is needed to drop root's file capabilities"
        caps = "-dac_override,-dac_read_search"
        prefix = (setpriv, "--inh-caps", caps, "--bounding-set", caps)
    r, out = copy(tmp_path, src, prefix=prefix)
    assert_one_line_error(r, out, str(src), "permission denied")
