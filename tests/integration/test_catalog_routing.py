"""The data-driven path on a real database: registration attaches new files to the Active
transformations whose input query they match, back-fills catch files catalogued earlier, and
produced files carry their provenance."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from metaprod.core.errors import AlreadyExists, NotFound
from metaprod.db import catalog, routing
from metaprod.db.catalog import FileInput
from metaprod.db.models import Production, Task, TaskInput, Transformation, TransformationFile
from metaprod.db.session import Database
from metaprod.v1 import catalog_pb2 as pb
from metaprod.v1 import catalog_pb2_grpc, common_pb2
from sqlalchemy import select, update
from sqlalchemy.orm import Session

FIELDS = {"run": "int", "energy": "float", "datatype": "str"}


def add_transformation(session: Session, production: Production, name: str, status: str, query: Any) -> int:
    t = Transformation(
        production_id=production.id, name=name, status=status, spec={}, input_query=query,
        output_query=None, output_metadata=None, command="true",
    )  # fmt: skip
    session.add(t)
    session.flush()
    return t.id


@pytest.fixture
def setup(database: Database) -> Iterator[tuple[Database, dict[str, int]]]:
    with database.session_scope() as session:
        for name, ftype in FIELDS.items():
            catalog.add_field(session=session, name=name, type=ftype)
        p = Production(name="prod", status="Active", owner="admin", spec={})
        session.add(p)
        session.flush()
        ids = {
            "raw": add_transformation(session, p, "raw", "Active", {"datatype": "raw"}),
            "high": add_transformation(session, p, "high", "Active", {"datatype": "raw", "energy": {">": 5}}),
            "root": add_transformation(session, p, "root", "Active", None),
            "later": add_transformation(session, p, "later", "New", {"run": {"<": 3}}),
        }
    yield database, ids


def attached(session: Session, tid: int) -> list[tuple[int, str]]:
    rows = session.execute(
        select(TransformationFile.file_id, TransformationFile.status)
        .where(TransformationFile.transformation_id == tid)
        .order_by(TransformationFile.file_id)
    )
    return [(fid, status) for fid, status in rows]


def files(first: int, count: int, datatype: str = "raw") -> list[FileInput]:
    return [
        FileInput(f"/f/{i}", metadata={"run": i, "energy": float(i), "datatype": datatype})
        for i in range(first, first + count)
    ]


def test_registration_attaches_to_active_transformations(setup: tuple[Database, dict[str, int]]) -> None:
    database, ids = setup
    with database.session_scope() as session:
        result = catalog.register_files(session=session, files=[*files(0, 10), *files(10, 5, "sim")])
    assert (result.registered, result.attached) == (15, 10 + 4)  # raw: 0..9, high: 6..9
    with database.session_scope(readonly=True) as session:
        raw = attached(session, ids["raw"])
        assert len(raw) == 10 and {status for _, status in raw} == {"Unused"}
        assert len(attached(session, ids["high"])) == 4
        assert attached(session, ids["root"]) == [] and attached(session, ids["later"]) == []


def test_router_follows_status_changes(setup: tuple[Database, dict[str, int]]) -> None:
    database, ids = setup
    with database.session_scope() as session:
        catalog.register_files(session=session, files=files(0, 2))
    with database.session_scope() as session:
        session.execute(update(Transformation).where(Transformation.id == ids["later"]).values(status="Active"))
        session.execute(update(Transformation).where(Transformation.id == ids["raw"]).values(status="Stopped"))
    with database.session_scope() as session:
        result = catalog.register_files(session=session, files=files(2, 3))  # runs 2, 3, 4
        # "later" takes run 2; "high" wants energy > 5; a Stopped "raw" takes all three and
        # keeps them Unused for its restart.
        assert result.attached == 4
    with database.session_scope() as session:
        assert len(attached(session, ids["later"])) == 1
        assert len(attached(session, ids["raw"])) == 5
        # A New transformation (a production not started) takes nothing: its start backfills.
        session.execute(update(Transformation).where(Transformation.id == ids["raw"]).values(status="New"))
    with database.session_scope() as session:
        assert catalog.register_files(session=session, files=files(5, 1)).attached == 0


def test_backfill(setup: tuple[Database, dict[str, int]]) -> None:
    database, ids = setup
    with database.session_scope() as session:
        catalog.register_files(session=session, files=files(0, 6))
        assert routing.backfill_transformation(session=session, transformation_id=ids["later"]) == 3
        assert routing.backfill_transformation(session=session, transformation_id=ids["later"]) == 0
        with pytest.raises(NotFound):
            routing.backfill_transformation(session=session, transformation_id=999_999)
    with database.session_scope() as session:
        # Files registered while "raw" is New reach it when it is Active.
        session.execute(update(Transformation).where(Transformation.id == ids["raw"]).values(status="New"))
    with database.session_scope() as session:
        catalog.register_files(session=session, files=files(6, 4))
        session.execute(update(Transformation).where(Transformation.id == ids["raw"]).values(status="Active"))
    with database.session_scope() as session:
        stamp = session.scalar(select(Transformation.updated_at).where(Transformation.id == ids["raw"]))
        assert routing.backfill_active(session=session) == 4
        assert routing.backfill_active(session=session) == 0
        assert len(attached(session, ids["raw"])) == 10
        raw = session.get(Transformation, ids["raw"])
        assert raw is not None and raw.input_watermark == max(fid for fid, _ in attached(session, ids["raw"]))
        assert raw.updated_at == stamp  # a watermark move keeps the routing cache valid


def test_attach_files_skips_existing(setup: tuple[Database, dict[str, int]]) -> None:
    database, _ = setup
    with database.session_scope() as session:
        catalog.register_files(session=session, files=files(0, 3))
        rows = [(r.id, r.metadata) for r in catalog.find_files(session=session, query={})]
        assert routing.attach_files(session=session, file_rows=rows) == 0
        assert routing.attach_files(session=session, file_rows=[]) == 0


def test_set_metadata_attaches_newly_matching_file(setup: tuple[Database, dict[str, int]]) -> None:
    database, ids = setup
    with database.session_scope() as session:
        catalog.register_files(session=session, files=files(0, 1, "sim"))
        assert attached(session, ids["raw"]) == []
        record = catalog.set_metadata(session=session, lfn="/f/0", metadata={"datatype": "raw"})
        assert record.metadata == {"run": 0, "energy": 0.0, "datatype": "raw"}
        assert attached(session, ids["raw"]) == [(record.id, "Unused")]


def test_failed_batch_leaves_the_callers_transaction_clean(setup: tuple[Database, dict[str, int]]) -> None:
    database, _ = setup
    with database.session_scope() as session:
        catalog.register_files(session=session, files=files(0, 2))
        with pytest.raises(AlreadyExists, match="/f/1"):
            catalog.register_files(session=session, files=[*files(5, 3), *files(1, 1)])
        catalog.register_files(session=session, files=files(2, 1))
    with database.session_scope(readonly=True) as session:
        assert [r.lfn for r in catalog.find_files(session=session, query={})] == ["/f/0", "/f/1", "/f/2"]


def test_provenance(setup: tuple[Database, dict[str, int]]) -> None:
    database, ids = setup
    with database.session_scope() as session:
        catalog.register_files(session=session, files=files(0, 3))
        by_lfn = {r.lfn: r.id for r in catalog.find_files(session=session, query={})}
        task = Task(transformation_id=ids["raw"], task_index=0, status="Running", attempt=2)
        session.add(task)
        session.flush()
        for position, lfn in enumerate(["/f/2", "/f/0"]):
            session.add(TaskInput(task_id=task.id, position=position, file_id=by_lfn[lfn]))
        session.flush()
        out = FileInput("/prod/raw/out.reco", metadata={"datatype": "reco", "run": 1})
        catalog.register_files(session=session, files=[out], producer=(task.id, 2))
        with pytest.raises(NotFound):
            catalog.register_files(session=session, files=[FileInput("/x")], producer=(999_999, 1))
    with database.session_scope(readonly=True) as session:
        record = catalog.get_file(session=session, lfn="/prod/raw/out.reco")
        assert record.provenance is not None
        assert (record.provenance.production, record.provenance.transformation) == ("prod", "raw")
        assert (record.provenance.task, record.provenance.attempt) == (task.id, 2)
        assert record.provenance.inputs == ("/f/2", "/f/0")  # task order, not catalog order
        assert catalog.get_file(session=session, lfn="/f/0").provenance is None


def test_register_rpc_reports_attachments(server: Any, setup: tuple[Database, dict[str, int]]) -> None:
    def meta(run: int) -> dict[str, common_pb2.MetaValue]:
        return {"run": common_pb2.MetaValue(int_value=run), "datatype": common_pb2.MetaValue(str_value="raw")}

    request = pb.RegisterFilesRequest(files=[pb.CatalogFile(lfn=f"/rpc/{i}", metadata=meta(i)) for i in range(4)])
    with grpc.insecure_channel(server.address) as channel:
        stub = catalog_pb2_grpc.FileCatalogStub(channel)
        resp = stub.RegisterFiles(iter([request]), metadata=(("authorization", f"Bearer {server.admin_token}"),))
    assert (resp.registered, resp.attached) == (4, 4)
