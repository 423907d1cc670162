"""The SQL form of metaqueries selects exactly the files `MetaQuery.matches` accepts.

Brute force on generated data: a few thousand files with random typed metadata (keys missing
at random) and many random queries with every operator, including literals that need
normalization (floats on int fields, huge ints on float fields, strings with trailing spaces
or control characters). Runs on SQLite, or on MariaDB with METAPROD_TEST_DB set.
"""

from __future__ import annotations

import random
from typing import Any

import pytest
from metaprod.core.metaquery import OPERATORS, MetaQuery, Schema
from metaprod.db import catalog
from metaprod.db.catalog import FileInput
from metaprod.db.querysql import ID_RANGE, FieldInfo, compile_ids, load_fields, matching_ids
from metaprod.db.session import Database
from sqlalchemy.dialects import mysql, sqlite

SCHEMA = Schema({"run": "int", "energy": "float", "datatype": "str", "site": "str", "seq": "int"})
N_FILES = 3000
N_QUERIES = 600

INTS = [-(2**62), -3, -1, 0, 1, 2, 3, 5, 7, 10, 11, 20, 2**62]
FLOATS = [-1e300, -2.5, -0.0, 0.5, 1.0, 2.0, 2.5, 3.25, 1e-300, 7.0, 9007199254740992.0, 9007199254740994.0, 1e300]
STRINGS = ["", "a", "a b", "ab", "abc", "B", "CERN", "IN2P3", "raw", "reco", "sim", "é", "日本", "\U0001f600", "a!"]
# Literals only: no stored value looks like these (refused by the catalog), yet queries may.
ODD_STRINGS = ["a ", "a\x01", "ab\x00", "  ", "\t", "a\x1fz", "raw\n", "é "]
ODD_NUMBERS = [2**53 + 1, -(2**53) - 1, 2**70, 2.0000001, -2.5, 10.5, 0.1]


def _value(rnd: random.Random, ftype: str) -> Any:
    if ftype == "int":
        return rnd.choice(INTS) if rnd.random() < 0.3 else rnd.randint(-5, 25)
    if ftype == "float":
        return rnd.choice(FLOATS) if rnd.random() < 0.4 else round(rnd.uniform(-5, 25), rnd.choice([0, 1, 3]))
    return rnd.choice(STRINGS)


def _literal(rnd: random.Random, ftype: str) -> Any:
    r = rnd.random()
    if ftype == "str":
        return rnd.choice(ODD_STRINGS) if r < 0.2 else rnd.choice(STRINGS)
    if r < 0.15:
        return rnd.choice(ODD_NUMBERS)
    if r < 0.3:  # the other numeric type: ints on float fields, floats on int fields
        return float(_value(rnd, "int")) if ftype == "int" else int(_value(rnd, "int"))
    return _value(rnd, ftype)


def _metadata(rnd: random.Random) -> dict[str, Any]:
    return {key: _value(rnd, ftype) for key, ftype in SCHEMA.items() if rnd.random() < 0.8}


def _query(rnd: random.Random, *, with_schema: bool) -> MetaQuery | None:
    atoms: list[tuple[str, str, Any]] = []
    for key in rnd.sample(list(SCHEMA), rnd.randint(1, 3)):
        ftype = SCHEMA[key]
        for _ in range(rnd.randint(1, 3)):
            op = rnd.choice(OPERATORS)
            if op in ("in", "nin"):
                value: Any = [_literal(rnd, ftype) for _ in range(rnd.randint(0, 4))]
            else:
                value = _literal(rnd, ftype)
            atoms.append((key, op, value))
    try:
        return MetaQuery.from_atoms(atoms, SCHEMA if with_schema else None)
    except ValueError:  # e.g. `run = 2.5` on an int field is refused by design
        return None


@pytest.fixture
def loaded(database: Database) -> tuple[Database, dict[int, dict[str, Any]]]:
    rnd = random.Random(20261121)
    with database.session_scope() as session:
        for name, ftype in SCHEMA.items():
            catalog.add_field(session=session, name=name, type=ftype)
    files = [FileInput(lfn=f"/gen/{i:05d}", metadata=_metadata(rnd)) for i in range(N_FILES)]
    with database.session_scope() as session:
        catalog.register_files(session=session, files=files)
    with database.session_scope(readonly=True) as session:
        stored = {r.id: r.metadata for r in catalog.find_files(session=session, query={})}
    assert len(stored) == N_FILES
    return database, stored


def test_random_queries_match_brute_force(loaded: tuple[Database, dict[int, dict[str, Any]]]) -> None:
    database, stored = loaded
    rnd = random.Random(7)
    checked = nonempty = 0
    with database.session_scope(readonly=True) as session:
        fields = load_fields(session)
        while checked < N_QUERIES:
            query = _query(rnd, with_schema=rnd.random() < 0.8)
            if query is None:
                continue
            expected = [fid for fid, md in stored.items() if query.matches(md)]
            got = matching_ids(session, query, fields)
            assert got == expected, f"query {query.to_dict()!r}: SQL {len(got)} files, matches() {len(expected)}"
            if checked % 10 == 0:  # every plan shape gives the same files
                for driver in [ID_RANGE, *query.keys()]:
                    stmt = compile_ids(query, fields, driver=driver)
                    assert (list(session.scalars(stmt)) if stmt is not None else []) == expected, driver
                    # A backfill's window of ids (on MariaDB a point lead forces its index).
                    low, high = sorted(rnd.sample(sorted(stored), 2))
                    stmt = compile_ids(query, fields, driver=driver, after_id=low, upto_id=high)
                    in_window = [fid for fid in expected if low < fid <= high]
                    assert (list(session.scalars(stmt)) if stmt is not None else []) == in_window, driver
            checked += 1
            nonempty += bool(expected)
    assert nonempty > N_QUERIES // 4  # the generator is not degenerate


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", lambda md: True),
        ("run in []", lambda md: False),
        ("run nin []", lambda md: "run" in md),
        ("site!=CERN", lambda md: "site" in md and md["site"] != "CERN"),
        (
            "datatype nin raw,sim energy>=2.5",
            lambda md: (
                md.get("datatype", "raw") not in ("raw", "sim") and "datatype" in md and md.get("energy", -1e308) >= 2.5
            ),
        ),
        ('datatype<"a "', lambda md: "datatype" in md and md["datatype"] < "a "),
        ('datatype>"a "', lambda md: "datatype" in md and md["datatype"] > "a "),
        ("run>2.5 run<=7", lambda md: "run" in md and 2.5 < md["run"] <= 7),
        (f"energy>{2**53 + 1}", lambda md: "energy" in md and md["energy"] > 2**53 + 1),
        (f"energy<={2**53 + 1}", lambda md: "energy" in md and md["energy"] <= 2**53 + 1),
    ],
)
def test_edge_queries(loaded: tuple[Database, dict[int, dict[str, Any]]], text: str, expected: Any) -> None:
    database, stored = loaded
    query = MetaQuery.from_string(text, SCHEMA)
    with database.session_scope(readonly=True) as session:
        got = matching_ids(session, query)
    assert got == [fid for fid, md in stored.items() if expected(md)]
    assert got == [fid for fid, md in stored.items() if query.matches(md)]


def test_limit_and_after_id(loaded: tuple[Database, dict[int, dict[str, Any]]]) -> None:
    database, stored = loaded
    query = MetaQuery.from_string("run>=0", SCHEMA)
    expected = [fid for fid, md in stored.items() if query.matches(md)]
    with database.session_scope(readonly=True) as session:
        assert matching_ids(session, query, limit=10) == expected[:10]
        assert matching_ids(session, query, after_id=expected[10], limit=5) == expected[11:16]


def test_unsatisfiable_or_undeclared_compile_to_nothing() -> None:
    fields = {"run": FieldInfo(1, "int"), "site": FieldInfo(2, "str")}
    assert compile_ids(MetaQuery.from_string("run>5 run<3"), fields) is None
    assert compile_ids(MetaQuery.from_dict({"run": {"in": []}}), fields) is None
    assert compile_ids(MetaQuery.from_dict({"other": 1}), fields) is None
    assert compile_ids(MetaQuery.from_dict({"site": 1}), fields) is None  # a number for a str field
    assert compile_ids(MetaQuery.from_dict({"site": "a\x00"}), fields) is None  # nothing stored looks so
    assert compile_ids(MetaQuery.from_dict({}), fields) is not None


def test_a_window_under_point_values_forces_the_value_index_on_mariadb() -> None:
    """InnoDB's estimates cannot tell a 50,000-id window of a value from the whole value:
    unforced, MariaDB read every entry of the value for each backfill window."""
    fields = {"run": FieldInfo(1, "int"), "site": FieldInfo(2, "str")}
    points = MetaQuery.from_string("site in CERN,IN2P3 run>5")
    ranged = MetaQuery.from_string("run>5")

    def sql(query: MetaQuery, driver: str, dialect: Any, **window: int) -> str:
        stmt = compile_ids(query, fields, driver=driver, **window)
        assert stmt is not None
        return str(stmt.compile(dialect=dialect))

    assert "FORCE INDEX (ix_file_metadata_str)" in sql(points, "site", mysql.dialect(), after_id=10, upto_id=20)
    assert "FORCE INDEX (ix_file_metadata_str)" in sql(points, "site", mysql.dialect(), upto_id=20)
    assert "FORCE INDEX" not in sql(points, "site", mysql.dialect(), after_id=10)  # a page of `find`, no window
    assert "FORCE INDEX" not in sql(points, "run", mysql.dialect(), after_id=10, upto_id=20)  # a range: no seek
    assert "FORCE INDEX" not in sql(ranged, "run", mysql.dialect(), after_id=10, upto_id=20)
    assert "FORCE INDEX" not in sql(points, "site", sqlite.dialect(), after_id=10, upto_id=20)


def test_the_driver_is_the_smallest_key_even_when_every_key_passes_the_first_count(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Keys are counted up to PROBE_CAP rows; when all of them reach it they are counted
    further (up to PROBE_CAP_MAX), so the range of 20 files drives, not the equality of 100
    (which an equal capped count used to favour by rank). Past PROBE_CAP_MAX, rank decides."""
    from metaprod.db import querysql

    with database.session_scope() as session:
        catalog.add_field(session=session, name="datatype", type="str")
        catalog.add_field(session=session, name="run", type="int")
    files = [
        FileInput(lfn=f"/d/{i:04d}", metadata={"datatype": "raw" if i < 100 else "sim", "run": i}) for i in range(200)
    ]
    with database.session_scope() as session:
        catalog.register_files(session=session, files=files)
    query = MetaQuery.from_string("datatype=raw run>=80 run<100", Schema({"datatype": "str", "run": "int"}))
    monkeypatch.setattr(querysql, "PROBE_CAP", 5)
    with database.session_scope(readonly=True) as session:
        fields = load_fields(session)
        monkeypatch.setattr(querysql, "PROBE_CAP_MAX", 50)
        assert querysql.choose_driver(session, query, fields) == "run"
        monkeypatch.setattr(querysql, "PROBE_CAP_MAX", 5)
        assert querysql.choose_driver(session, query, fields) == "datatype"
        assert len(matching_ids(session, query, fields)) == 20
