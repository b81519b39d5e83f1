"""The CSV source end to end (read_csv): correct tables, and typed errors on bad input."""

from __future__ import annotations

import datetime as dt
import gzip
import json
import os

import pyarrow as pa
import pyarrow.csv as pacsv
import pytest

import nebula
from nebula.errors import ConfigError, ParseError, SourceError, TypeCoercionError


def write(tmp_path, data: bytes | str, name="t.csv"):
    p = tmp_path / name
    p.write_bytes(data.encode() if isinstance(data, str) else data)
    return str(p)


def rows(t: pa.Table):
    return t.to_pylist()


# -- correct tables ---------------------------------------------------------------------------------
def test_types_inferred(tmp_path):
    p = write(tmp_path, "i,f,b,d,ts,tz,s\n1,1.5,true,2024-01-02,2024-01-02T03:04:05,2024-01-02T03:04:05Z,x\n"
                        "-2,2,FALSE,2024-02-29,2024-01-02 03:04:05.5,2024-01-02T05:04:05+02:00,y\n")
    t = nebula.read_csv(p)
    assert [str(f.type) for f in t.schema] == ["int64", "double", "bool", "date32[day]", "timestamp[us]",
                                               "timestamp[us, tz=UTC]", "string"]
    r = rows(t)
    assert r[1]["tz"] == r[0]["tz"]
    assert r[1]["ts"] == dt.datetime(2024, 1, 2, 3, 4, 5, 500000)


def test_header_only_gives_empty_table(tmp_path):
    t = nebula.read_csv(write(tmp_path, "a,b\n"))
    assert t.num_rows == 0 and t.column_names == ["a", "b"]


def test_empty_file_is_typed_error(tmp_path):
    with pytest.raises(ParseError, match="empty") as e:
        nebula.read_csv(write(tmp_path, ""))
    assert e.value.path.endswith("t.csv") and e.value.line == 1


def test_quoting_newlines_crlf_bom(tmp_path):
    data = '\ufeffname,note\r\n"Smith, J","said ""hi""\nthen left"\r\nB,\r\n'.encode()
    t = nebula.read_csv(write(tmp_path, data))
    assert t.column_names == ["name", "note"]
    assert rows(t) == [{"name": "Smith, J", "note": 'said "hi"\nthen left'}, {"name": "B", "note": None}]


def test_mixed_line_endings(tmp_path):
    t = nebula.read_csv(write(tmp_path, b"a,b\n1,2\r\n3,4\r5,6"))
    assert rows(t) == [{"a": 1, "b": 2}, {"a": 3, "b": 4}, {"a": 5, "b": 6}]


def test_custom_delimiter_quote_escape_comment_skip(tmp_path):
    data = "junk line\n# comment\nx;y\n'a;b';1\n# another\nc\\;d;2\n"
    t = nebula.read_csv(write(tmp_path, data), delimiter=";", quote="'", escape="\\", comment="#", skip_rows=1)
    assert rows(t) == [{"x": "a;b", "y": 1}, {"x": "c;d", "y": 2}]


def test_no_header_and_no_infer(tmp_path):
    t = nebula.read_csv(write(tmp_path, "1,2\n3,4\n"), header=False, infer_schema=False)
    assert t.column_names == ["column_1", "column_2"]
    assert rows(t) == [{"column_1": "1", "column_2": "2"}, {"column_1": "3", "column_2": "4"}]


def test_null_markers_typed_vs_string(tmp_path):
    t = nebula.read_csv(write(tmp_path, 'n,s\nNA,NA\nnull,""\n,\n5,x\n'))
    assert rows(t) == [{"n": None, "s": "NA"}, {"n": None, "s": ""}, {"n": None, "s": None}, {"n": 5, "s": "x"}]
    t = nebula.read_csv(write(tmp_path, "n,s\n-,-\n1,a\n"), null_values=["-"])
    assert rows(t) == [{"n": None, "s": None}, {"n": 1, "s": "a"}]


def test_column_override_and_schema_file(tmp_path):
    p = write(tmp_path, "id,amount\n1,12.50\n2,0.05\n")
    t = nebula.read_csv(p, columns={"id": "int16", "amount": "decimal(10,2)"})
    assert str(t.schema.field("id").type) == "int16"
    assert [str(v) for v in t.column("amount").to_pylist()] == ["12.50", "0.05"]
    sch = tmp_path / "s.yml"
    sch.write_text("- {name: id, type: string}\n- {name: amount, type: float32}\n")
    t = nebula.read_csv(p, schema=str(sch))
    assert t.column("id").to_pylist() == ["1", "2"] and str(t.schema.field("amount").type) == "float"


def test_quote_inside_unquoted_field_is_literal(tmp_path):
    assert rows(nebula.read_csv(write(tmp_path, 'a,b\nsay "x",1\n'))) == [{"a": 'say "x"', "b": 1}]


def test_nul_bytes_kept(tmp_path):
    assert rows(nebula.read_csv(write(tmp_path, b"a,b\nx\x00y,1\n"))) == [{"a": "x\x00y", "b": 1}]


def test_duplicate_and_empty_header_names(tmp_path):
    t = nebula.read_csv(write(tmp_path, "a,a,,b\n1,2,3,4\n"))
    assert t.column_names == ["a", "a_2", "column_3", "b"]


def test_huge_field_across_blocks(tmp_path):
    big = "x" * (10 * 1024 * 1024)
    t = nebula.read_csv(write(tmp_path, f'a,b\n1,"{big}"\n2,y\n'), block_size=64 * 1024)
    assert t.column("b").to_pylist() == [big, "y"]


def test_small_blocks_same_result_as_one_block(tmp_path):
    lines = ["id,note"] + [f'{i},"line {i}\nwith ""quotes"", and commas"' for i in range(3000)]
    p = write(tmp_path, "\n".join(lines) + "\n")
    a = nebula.read_csv(p, block_size=1024, batch_rows=7)
    b = nebula.read_csv(p)
    assert a.equals(b) and a.num_rows == 3000


def test_glob_and_compressed_inputs(tmp_path):
    import lz4.frame
    import zstandard

    body = b"a,b\n1,x\n2,y\n"
    write(tmp_path, body, "p1.csv")
    (tmp_path / "p2.csv.gz").write_bytes(gzip.compress(body))
    (tmp_path / "p3.csv.zst").write_bytes(zstandard.ZstdCompressor().compress(body))
    (tmp_path / "p4.csv.lz4").write_bytes(lz4.frame.compress(body))
    t = nebula.read_csv(str(tmp_path / "p*.csv*"))
    assert t.num_rows == 8 and t.column("a").to_pylist() == [1, 2] * 4


def test_parity_with_pyarrow(tmp_path):
    from nebula.sample import generate

    p = generate(str(tmp_path / "orders.csv"), 20000)
    ours = nebula.read_csv(str(p), batch_rows=4096)
    theirs = pacsv.read_csv(str(p), parse_options=pacsv.ParseOptions(newlines_in_values=True),
                            convert_options=pacsv.ConvertOptions(
                                strings_can_be_null=True, null_values=[""], quoted_strings_can_be_null=False))
    assert ours.column_names == theirs.column_names
    for name in ours.column_names:
        a, b = ours.column(name), theirs.column(name)
        if name == "ts":
            b = b.cast(pa.timestamp("us"))
        assert a.to_pylist() == b.to_pylist(), name


# -- bad input: typed errors naming file, line, column and byte offset ------------------------------
def test_ragged_rows_fail_with_position(tmp_path):
    p = write(tmp_path, "a,b\n1,2\n3,4,5\n6\n")
    with pytest.raises(ParseError) as e:
        nebula.read_csv(p)
    assert (e.value.line, e.value.offset) == (3, 8) and "expected 2 fields, found 3" in str(e.value)
    assert p in str(e.value)


def test_ragged_rows_dead_letter(tmp_path):
    p = write(tmp_path, "a,b\n1,2\n3,4,5\n6\n7,8\n")
    dl = str(tmp_path / "rej.jsonl")
    r = nebula.copy(p, nebula_mem := _mem(), on_error="dead-letter", dead_letter=dl)
    assert r.rows_written == 2 and r.rows_rejected == 2 and r.rows_read == 4
    recs = [json.loads(x) for x in open(dl)]
    assert [(x["line"], x["raw"], x["offset"]) for x in recs] == [(3, "3,4,5", 8), (4, "6", 14)]
    assert nebula_mem.table().column("a").to_pylist() == [1, 7]


def test_skip_policy_and_max_rejected(tmp_path):
    p = write(tmp_path, "a,b\n1,2\n3\n4\n5,6\n")
    r = nebula.copy(p, _mem(), on_error="skip")
    assert (r.rows_written, r.rows_rejected) == (2, 2)
    from nebula.errors import TooManyRejected

    with pytest.raises(TooManyRejected):
        nebula.copy(p, _mem(), on_error="skip", max_rejected=1)


def test_unterminated_quote_at_eof(tmp_path):
    p = write(tmp_path, 'a,b\n1,2\n3,"open\n4,5\n')
    with pytest.raises(ParseError, match="unterminated") as e:
        nebula.read_csv(p)
    assert (e.value.line, e.value.offset) == (3, 10)
    dl = str(tmp_path / "rej.jsonl")
    mem = _mem()
    r = nebula.copy(p, mem, on_error="dead-letter", dead_letter=dl)
    assert mem.table().to_pylist() == [{"a": 1, "b": 2}] and r.rows_rejected == 1
    assert json.loads(open(dl).read())["raw"] == '3,"open\n4,5\n'


def test_invalid_utf8(tmp_path):
    p = write(tmp_path, b"a,b\nok,1\nbad\xff\xfe,2\n")
    with pytest.raises(TypeCoercionError, match="UTF-8") as e:
        nebula.read_csv(p)
    assert (e.value.line, e.value.column, e.value.offset) == (3, "a", 12)
    dl = str(tmp_path / "rej.jsonl")
    nebula.copy(p, _mem(), on_error="dead-letter", dead_letter=dl)
    rec = json.loads(open(dl).read())
    import base64

    assert base64.b64decode(rec["raw_base64"]) == b"bad\xff\xfe,2"


def test_value_not_fitting_declared_type(tmp_path):
    p = write(tmp_path, "id,qty\n1,5\n2,300\n")
    with pytest.raises(TypeCoercionError) as e:
        nebula.read_csv(p, columns={"qty": "int8"})
    assert (e.value.line, e.value.column, e.value.offset) == (3, "qty", 13) and "'300'" in str(e.value)


def test_inferred_type_violated_later_names_fix(tmp_path):
    body = "n\n" + "1\n" * 10 + "x\n"
    with pytest.raises(TypeCoercionError, match="--column n:string"):
        nebula.read_csv(write(tmp_path, body), sample_bytes=8)


def test_text_after_closing_quote(tmp_path):
    with pytest.raises(ParseError, match="after a closing quote") as e:
        nebula.read_csv(write(tmp_path, 'a,b\n"x"y,1\n'))
    assert e.value.line == 2 and e.value.offset == 7


def test_missing_file_directory(tmp_path):
    with pytest.raises(SourceError, match="no such file"):
        nebula.read_csv(str(tmp_path / "nope.csv"))
    with pytest.raises(SourceError, match="directory"):
        nebula.read_csv(str(tmp_path))
    with pytest.raises(SourceError, match="no file matches"):
        nebula.read_csv(str(tmp_path / "*.csv"))


def _read_as_nobody(path, q):
    os.setgid(65534)
    os.setuid(65534)
    try:
        nebula.read_csv(path)
        q.put("no error")
    except SourceError as e:
        q.put(str(e))


def test_unreadable_file(tmp_path):
    import tempfile

    d = tempfile.mkdtemp(prefix="nebula-perm-")
    os.chmod(d, 0o755)
    p = os.path.join(d, "t.csv")
    with open(p, "w") as f:
        f.write("a\n1\n")
    os.chmod(p, 0)
    if os.geteuid() == 0:
        import multiprocessing as mp

        ctx = mp.get_context("fork")
        q = ctx.Queue()
        proc = ctx.Process(target=_read_as_nobody, args=(p, q))
        proc.start()
        proc.join(60)
        msg = q.get(timeout=5)
    else:
        with pytest.raises(SourceError) as e:
            nebula.read_csv(p)
        msg = str(e.value)
    assert "permission denied" in msg.lower()


def test_truncated_gzip(tmp_path):
    data = gzip.compress(b"a,b\n" + b"1,2\n" * 10000)
    (tmp_path / "t.csv.gz").write_bytes(data[: len(data) // 2])
    with pytest.raises((ParseError, SourceError), match="truncated|corrupt"):
        nebula.read_csv(str(tmp_path / "t.csv.gz"))


def test_bad_options_are_config_errors(tmp_path):
    p = write(tmp_path, "a\n1\n")
    with pytest.raises(ConfigError):
        nebula.read_csv(p, delimiter=",,")
    with pytest.raises(ConfigError):
        nebula.read_csv(p, columns={"zz": "int64"})
    with pytest.raises(ConfigError):
        nebula.read_csv(p, columns={"a": "integerish"})


def _mem():
    from nebula.connectors.destinations.memory import MemoryDestination

    return MemoryDestination()


def test_dictionary_columns_and_fallback(tmp_path):
    import pyarrow.types as pt

    lines = ["k,v"] + [f"{'abc'[i % 3]},{i}" for i in range(500)] + [f"x{i},{i}" for i in range(500)]
    p = write(tmp_path, "\n".join(lines) + "\n")
    t = nebula.read_csv(p, batch_rows=100, dictionary_max=16, sample_bytes=2000)
    assert pt.is_dictionary(t.schema.field("k").type)
    assert t.column("k").to_pylist() == ["abc"[i % 3] for i in range(500)] + [f"x{i}" for i in range(500)]
    plain = nebula.read_csv(p, dictionary="none")
    assert pt.is_string(plain.schema.field("k").type)
    assert plain.column("k").to_pylist() == t.column("k").to_pylist()


def test_null_in_non_nullable_column_is_a_located_error_or_a_dead_letter(tmp_path):
    import json

    import nebula
    from nebula.errors import TypeCoercionError

    p = tmp_path / "a.csv"
    p.write_text("id,name\n1,a\n,b\n3,\n4,d\nx,e\n")
    schema = tmp_path / "s.json"
    schema.write_text(json.dumps({"columns": [{"name": "id", "type": "int64", "nullable": False},
                                              {"name": "name", "type": "string", "nullable": False}]}))
    with pytest.raises(TypeCoercionError) as ei:
        nebula.copy(str(p), str(tmp_path / "o.parquet"), schema=str(schema))
    e = ei.value
    assert (e.line, e.column, e.offset) == (3, "id", 12) and "not nullable" in e.reason
    assert not (tmp_path / "o.parquet").exists()
    dl = tmp_path / "dl.jsonl"
    r = nebula.copy(str(p), str(tmp_path / "o.parquet"), schema=str(schema), on_error="dead-letter",
                    dead_letter=str(dl))
    assert (r.rows_written, r.rows_rejected) == (2, 3)
    got = [json.loads(x) for x in dl.read_text().splitlines()]
    assert [(g["line"], g["column"], "not nullable" in g["reason"]) for g in got] == [
        (3, "id", True), (4, "name", True), (6, "id", False)]
    import pyarrow.parquet as pq

    t = pq.read_table(tmp_path / "o.parquet")
    assert t.column("id").to_pylist() == [1, 4] and t.schema.field("id").nullable is False


def test_first_bad_row_over_all_columns_is_reported(tmp_path):
    import nebula
    from nebula.errors import TypeCoercionError

    p = tmp_path / "a.csv"
    p.write_text("a,b\n1,2\n3,4\nx,5\n6,y\n")
    with pytest.raises(TypeCoercionError) as ei:
        nebula.read_csv(str(p), columns={"a": "int64", "b": "int64"})
    assert ei.value.line == 4 and ei.value.column == "a"
    p.write_text("a,b\n1,2\n3,y\nx,5\n")
    with pytest.raises(TypeCoercionError) as ei:
        nebula.read_csv(str(p), columns={"a": "int64", "b": "int64"})
    assert ei.value.line == 3 and ei.value.column == "b"


def test_dictionary_option_names_columns_for_csv_and_json(tmp_path):
    import nebula
    from nebula.errors import ConfigError

    c = tmp_path / "a.csv"
    c.write_text("a,b\nx,1\ny,2\n")
    j = tmp_path / "a.jsonl"
    j.write_text('{"a": "x", "b": 1}\n{"a": "y", "b": 2}\n')
    for read, path in ((nebula.read_csv, c), (nebula.read_json, j)):
        assert str(read(str(path), dictionary=["a"]).schema.field("a").type).startswith("dictionary<")
        assert read(str(path), dictionary="none").schema.field("a").type == "string"
        with pytest.raises(ConfigError, match="unknown column.*zz"):
            read(str(path), dictionary=["zz"])


def test_structural_errors_name_the_column_and_the_summary_counts_every_byte(tmp_path):
    """Ragged rows, an unterminated quote and text after a closing quote name their column, failing and in the
    dead-letter file; bytes_read covers the whole file (BOM, header, rejected records included)."""
    cases = [  # body, (line, column, offset) of the error, column of the dead-lettered record
        ("a,b,c\n1,2,3\n4,5,6,7\n8,9,0\n", (3, 4, 12), 4),  # too many: the first extra field, by number
        ("a,b,c\n1,2,3\n4,5\n8,9,0\n", (3, "c", 12), "c"),  # too few: the first missing column, by name
        ('a,b,c\n1,2,3\n4,"x\ny",6\n7,8,"open\n', (5, "c", 26), "c"),  # unterminated quote at end of file
        ('a,b,c\n1,2,3\n4,"5"x,6\n7,8,9\n', (3, "b", 17), "b"),  # text after a closing quote
        ('"a,b\n', (1, 1, 0), None),  # unterminated quote in the header: by number, no names yet
    ]
    for body, where, dl_column in cases:
        data = b"\xef\xbb\xbf" + body.encode()
        p = write(tmp_path, data)
        with pytest.raises(ParseError) as e:
            nebula.read_csv(p)
        assert (e.value.line, e.value.column, e.value.offset - 3) == where, body
        col = where[1]
        assert (f"column {col!r}" if isinstance(col, str) else f"column {col}") in str(e.value)
        if dl_column is None:
            continue
        dl = tmp_path / "rej.jsonl"
        dl.unlink(missing_ok=True)
        mem = _mem()
        r = nebula.copy(p, mem, on_error="dead-letter", dead_letter=str(dl), infer_schema=False)
        rec = [json.loads(x) for x in dl.read_text().splitlines()]
        assert [x["column"] for x in rec] == [dl_column] and r.rows_rejected == 1, body
        assert mem.table().num_rows == r.rows_written == 2, body  # every case has two good rows
        assert r.bytes_read == len(data), body


def test_empty_file_error_names_line_column_and_offset(tmp_path):
    with pytest.raises(ParseError) as e:
        nebula.read_csv(write(tmp_path, ""))
    assert (e.value.line, e.value.column, e.value.offset) == (1, 1, 0)
    assert "line 1, column 1, byte 0" in str(e.value)


def test_inference_reads_past_the_sample_to_a_whole_row(tmp_path):
    """A first row longer than the sample (a 10 MB field in a 4 MB sample) still gives types, and a header
    longer than the sample is not mistaken for an empty file."""
    p = write(tmp_path, 'a,b\n1,"' + "x" * 300 + '"\n2,y\n')
    t = nebula.read_csv(p, sample_bytes=16)
    assert [str(f.type) for f in t.schema] == ["int64", "string"] and t.column("a").to_pylist() == [1, 2]
    long_name = "c" * 100
    t = nebula.read_csv(write(tmp_path, f"{long_name},d\n1,2\n"), sample_bytes=16)
    assert t.column_names == [long_name, "d"] and t.column("d").to_pylist() == [2]


def test_sample_stops_growing_at_a_syntax_error(tmp_path, monkeypatch):
    """A broken first row (dead-lettered) does not make inference read ever larger samples of the file."""
    from nebula.connectors.sources.csv import CsvSource

    sizes = []
    real = CsvSource._read_sample

    def spy(self, path, size):
        sizes.append(size)
        return real(self, path, size)

    monkeypatch.setattr(CsvSource, "_read_sample", spy)
    p = write(tmp_path, 'a,b\n"x"y,1\n' + "".join(f"{i},{i}\n" for i in range(200)))
    dl = tmp_path / "rej.jsonl"
    r = nebula.copy(p, _mem(), sample_bytes=16, on_error="dead-letter", dead_letter=str(dl))
    assert sizes == [16] and (r.rows_written, r.rows_rejected) == (200, 1)
