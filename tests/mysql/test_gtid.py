"""GTID positions of both servers: MariaDB domain-server-seq lists and MySQL UUID interval sets."""

from __future__ import annotations

from nebula.connectors.sources.mysql import _gtid_advance, _gtid_domains, _gtid_text

U1 = "3e11fa47-71ca-11e1-9e33-c80aa9429562"
U2 = "4a22fa47-71ca-11e1-9e33-c80aa9429562"


def test_mariadb_domains():
    d = _gtid_domains("0-1-5,1-2-9")
    assert d == {"0": "0-1-5", "1": "1-2-9"}
    d = _gtid_advance(d, "0-1-6", mariadb=True)
    d = _gtid_advance(d, "2-1-1", mariadb=True)
    assert _gtid_text(d, mariadb=True) == "0-1-6,1-2-9,2-1-1"


def test_mysql_uuid_sets_keep_gaps():
    d = _gtid_domains(f"{U1.upper()}:1-5:10-20,{U2}:1-3")
    assert d == {U1: "1-5:10-20", U2: "1-3"}
    d = _gtid_advance(d, f"{U1}:21", mariadb=False)
    assert d[U1] == "1-5:10-21"
    d = _gtid_advance(d, f"{U1}:7", mariadb=False)
    assert d[U1] == "1-5:7:10-21"
    d = _gtid_advance(d, f"{U2.upper()}:4", mariadb=False)
    d = _gtid_advance(d, "5a33fa47-71ca-11e1-9e33-c80aa9429562:1", mariadb=False)
    assert _gtid_text(d, mariadb=False) == (f"{U1}:1-5:7:10-21,{U2}:1-4,5a33fa47-71ca-11e1-9e33-c80aa9429562:1")
    assert _gtid_domains(_gtid_text(d, mariadb=False)) == d
