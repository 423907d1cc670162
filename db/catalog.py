"""The file catalog: typed metadata fields, bulk registration, metaquery search, provenance.

Every function takes the caller's session (keyword-only), flushes and never commits. Writes
are set-based: one executemany per table and batch, never a statement per file, and a batch
is all-or-nothing (a savepoint), whatever the caller does with its transaction afterwards.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from metaprod.core.auth import Principal, ensure_may_write_namespace, ensure_owns_files, lfn_namespace
from metaprod.core.errors import AlreadyExists, InvalidArgument, InvalidQuery, NotFound
from metaprod.core.limits import (
    MAX_LFN_CHARS,
    MAX_METADATA_KEYS,
    MAX_STR_VALUE_CHARS,
    check_field_name,
    check_json_depth,
    check_lfn,
    check_lfn_lookup,
    check_query_text,
    check_query_value,
    lfn_problem,
    shown,
)
from metaprod.core.metaquery import MetaQuery, Schema
from metaprod.core.schema import FIELD_TYPES
from metaprod.db import ancestry, counters, routing
from metaprod.db.models import (
    CatalogFile,
    MetadataField,
    ProducedFileInput,
    Production,
    Task,
    TaskInput,
    Transformation,
    utcnow,
)
from metaprod.db.querysql import (
    FILE_METADATA,
    FILES,
    INT64_MAX,
    INT64_MIN,
    STRING_REFUSED,
    FieldInfo,
    bind_value,
    choose_driver,
    compile_ids,
    executemany,
    load_fields,
)
from sqlalchemy import func, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

MetaScalar = int | float | str
LFN_MAX = MAX_LFN_CHARS
STR_MAX = MAX_STR_VALUE_CHARS
CHECKSUM_MAX = 128
PFN_MAX = 4096
FLOAT_EXACT_INT = 2**53
FILE_COLUMNS = (
    "lfn",
    "pfn",
    "size",
    "checksum",
    "producer_task_id",
    "producer_attempt",
    "producer_production_id",
    "producer_production",
    "producer_transformation",
    "owner",
    "created_at",
)
METADATA_COLUMNS = ("file_id", "field_id", "value_int", "value_float", "value_str")
LOOKUP_CHUNK = 5000  # ids or LFNs per IN list (well below SQLite's variable limit)


@dataclass(frozen=True, slots=True)
class FileInput:
    lfn: str
    pfn: str = ""
    size: int = 0
    checksum: str = ""
    metadata: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class RegisterResult:
    registered: int
    attached: int
    skipped: int = 0


@dataclass(frozen=True, slots=True)
class Provenance:
    production: str
    transformation: str
    task: int
    attempt: int
    inputs: tuple[str, ...]
    reused_from: int | None = None  # reuse by content: the original task


@dataclass(frozen=True, slots=True)
class FileRecord:
    id: int
    lfn: str
    pfn: str
    size: int
    checksum: str
    created_at: datetime
    metadata: dict[str, MetaScalar]
    provenance: Provenance | None = None
    owner: str | None = None  # None: admin only (imported before the catalog had owners)


# -- fields -----------------------------------------------------------------------------------
def catalog_schema(*, session: Session) -> Schema:
    return Schema({name: info.type for name, info in load_fields(session).items()})


def list_fields(*, session: Session) -> list[MetadataField]:
    return list(session.scalars(select(MetadataField).order_by(MetadataField.name)))


def add_field(*, session: Session, name: str, type: str) -> tuple[MetadataField, bool]:
    """Declare a field; declaring it again with the same type is fine (created=False)."""
    check_field_name(name)
    if type not in FIELD_TYPES:
        raise InvalidArgument(f"field {name!r}: unknown type {shown(type)} (expected one of {', '.join(FIELD_TYPES)})")
    for attempt in range(2):
        existing = session.scalar(select(MetadataField).where(MetadataField.name == name))
        if existing is not None:
            if existing.type != type:
                raise AlreadyExists(f"field {name!r} is declared {existing.type}, it cannot be redeclared {type}")
            return existing, False
        try:
            with session.begin_nested():
                created = MetadataField(name=name, type=type, created_at=utcnow())
                session.add(created)
            return created, True
        except IntegrityError:
            if attempt:  # a concurrent declaration won the race twice: give up
                raise
    raise AssertionError("unreachable")


# -- registration -----------------------------------------------------------------------------
def register_files(
    *,
    session: Session,
    files: Sequence[FileInput],
    producer: tuple[int, int] | None = None,
    skip_existing: bool = False,
    importer: Principal | None = None,
) -> RegisterResult:
    """Register a batch of new files with their metadata and attach them to the Active
    transformations whose input query they match. Everything is validated first; on any
    error (InvalidArgument, AlreadyExists naming the LFN, NotFound producer) nothing is stored.
    With `skip_existing`, a file already catalogued with the same size, checksum and metadata
    is skipped (counted in `skipped`); one that differs is still AlreadyExists.

    Owners: a produced file belongs to its production's owner; an imported one to its
    `importer`'s owner, and an importer other than an admin may not write in a production's
    output namespace (PermissionDenied, nothing stored). No importer and no producer: the
    system itself, files without an owner (admin only)."""
    if not files:
        return RegisterResult(0, 0)
    if importer is not None:
        _check_namespaces(session, importer, files)
    fields = load_fields(session)
    skipped = 0
    if skip_existing:
        files, skipped = _without_existing(session, files, fields)
        if not files:
            return RegisterResult(0, 0, skipped)
    lfns, file_rows, metadata = _prepare(files, fields)
    made_by = _producer(session, producer, None if importer is None else importer.owner)
    created = bind_value(session, FILES.c.created_at, utcnow())
    try:
        with session.begin_nested():
            first_id = _next_id(session)
            ids: Sequence[int]
            if first_id is None:
                rows = [(*row, *made_by, created) for row in file_rows]
                executemany(session, FILES, FILE_COLUMNS, rows)
                found = _lookup(session, lfns)
                ids = [found[lfn] for lfn in lfns]
            else:
                ids = range(first_id, first_id + len(file_rows))
                numbered = [(fid, *row, *made_by, created) for fid, row in zip(ids, file_rows, strict=True)]
                executemany(session, FILES, ("id", *FILE_COLUMNS), numbered)
            counters.record(session, counters.CATALOG, 0, counters.CATALOG_FILES, len(file_rows))
            md_rows = [(fid, *value) for fid, values in zip(ids, metadata, strict=True) for value in values]
            executemany(session, FILE_METADATA, METADATA_COLUMNS, md_rows)
            if producer is not None:
                _record_inputs(session, producer[0], ids)
            lineage = ancestry.record_outputs(
                session=session, task_id=None if producer is None else producer[0], file_ids=ids
            )
            attached = routing.attach_files(
                session=session,
                file_rows=[(fid, f.metadata) for fid, f in zip(ids, files, strict=True)],
                ancestry=lineage,
            )
    except IntegrityError:
        found = _lookup(session, lfns)
        taken = [lfn for lfn in lfns if lfn in found]
        if taken:
            more = f" (and {len(taken) - 1} more of this batch)" if len(taken) > 1 else ""
            raise AlreadyExists(f"file {taken[0]!r} is already in the catalog{more}") from None
        raise
    return RegisterResult(len(files), attached, skipped)


def _without_existing(
    session: Session, files: Sequence[FileInput], fields: Mapping[str, FieldInfo]
) -> tuple[list[FileInput], int]:
    """The files of a batch not yet catalogued, and how many were identical to catalogued ones.
    A file catalogued with another size, checksum or metadata is AlreadyExists, naming what differs."""
    found = _lookup(session, [f.lfn for f in files if isinstance(f.lfn, str)])
    if not found:
        return list(files), 0
    records = {r.lfn: r for r in _records(session, list(found.values()), fields, with_metadata=True)}
    kept: list[FileInput] = []
    for f in files:
        record = records.get(f.lfn)
        if record is None:  # new (or only equal under MariaDB's PAD SPACE: the insert decides)
            kept.append(f)
            continue
        same_metadata = sorted(typed_values(f.lfn, f.metadata, fields)) == sorted(
            typed_values(f.lfn, record.metadata, fields)
        )
        differs = [
            name
            for name, same in (("size", record.size == f.size), ("checksum", record.checksum == f.checksum))
            if not same
        ] + ([] if same_metadata else ["metadata"])
        if differs:
            raise AlreadyExists(
                f"file {f.lfn!r} is already in the catalog with a different {' and '.join(differs)}"
                " (--skip-existing skips identical files only)"
            )
    return kept, len(files) - len(kept)


def _check_namespaces(session: Session, importer: Principal, files: Sequence[FileInput]) -> None:
    """Refuse the batch when one of its files lies in a production's output namespace and the
    importer may not write there (core.auth.ensure_may_write_namespace): one query per chunk."""
    by_namespace: dict[str, str] = {}
    for f in files:
        first = lfn_namespace(f.lfn) if isinstance(f.lfn, str) else None
        if first is not None:
            by_namespace.setdefault(first, f.lfn)
    names = sorted(by_namespace)
    held: dict[str, str] = {}
    for start in range(0, len(names), LOOKUP_CHUNK):
        chunk = names[start : start + LOOKUP_CHUNK]
        rows = session.execute(select(Production.namespace, Production.owner).where(Production.namespace.in_(chunk)))
        # MariaDB's PAD SPACE collation would match "a " to "a": compare exactly here.
        held.update({ns: owner for ns, owner in rows if ns in by_namespace})
    for namespace in sorted(held):
        ensure_may_write_namespace(importer, by_namespace[namespace], held)


def _producer(session: Session, producer: tuple[int, int] | None, owner: str | None) -> tuple[Any, ...]:
    """The provenance and owner columns of files made by `producer` (task id, attempt): the
    task and attempt, and the names (and production id) they had, kept when the task is
    deleted, and the production's owner. Without a producer: `owner` (the importer's)."""
    if producer is None:
        return (None, None, None, None, None, owner)
    task_id, attempt = producer
    row = session.execute(
        select(Transformation.production_id, Production.name, Transformation.name, Production.owner)
        .select_from(Task)
        .join(Transformation, Transformation.id == Task.transformation_id)
        .join(Production, Production.id == Transformation.production_id)
        .where(Task.id == task_id)
    ).first()
    if row is None:
        raise NotFound(f"producer task {task_id} does not exist")
    return (task_id, attempt, *row)


def _record_inputs(session: Session, task_id: int, ids: Sequence[int]) -> None:
    """The producer task's inputs, in task order, as the provenance of each new file: one
    INSERT ... SELECT per chunk of files, never a statement per file."""
    f, inputs = FILES.c, TaskInput.__table__
    ids = list(ids)
    for start in range(0, len(ids), LOOKUP_CHUNK):
        chunk = ids[start : start + LOOKUP_CHUNK]
        rows = (
            select(f.id, inputs.c.position, inputs.c.file_id)
            .join(inputs, inputs.c.task_id == f.producer_task_id)
            .where(f.id.in_(chunk), f.producer_task_id == task_id)
        )
        session.execute(insert(ProducedFileInput).from_select(("file_id", "position", "input_file_id"), rows))


def _next_id(session: Session) -> int | None:
    """On SQLite the writer holds the database lock (session_scope begins IMMEDIATE), so new
    ids can be numbered from max(id) with no round trip to read them back; a transaction that
    did not take the lock fails its INSERT rather than reuse an id. Elsewhere: None."""
    if session.connection().dialect.name != "sqlite":
        return None
    return int(session.scalar(select(func.coalesce(func.max(FILES.c.id), 0))) or 0) + 1


def storable(s: str) -> bool:
    """True when a string may be stored: no character below U+0020, no trailing space (see
    db.querysql: MariaDB's PAD SPACE collation could not compare such strings exactly)."""
    if s.isascii() and s.isprintable():  # the common case, in C
        return not s.endswith(" ")
    return STRING_REFUSED.search(s) is None


def storable_text(s: str) -> bool:
    """A PFN: at most PFN_MAX characters, no control character."""
    return len(s) <= PFN_MAX and ((s.isascii() and s.isprintable()) or STRING_REFUSED.search(s) is None)


def _prepare(
    files: Sequence[FileInput], fields: Mapping[str, FieldInfo], *, new: bool = True
) -> tuple[list[str], list[tuple[str, str, int, str]], list[list[tuple[int, Any, Any, Any]]]]:
    """Validate a batch and shape its rows: (lfns, file rows, metadata rows per file).
    This loop runs for every registered file: checks are inlined, errors explained apart."""
    lfns: list[str] = []
    file_rows: list[tuple[str, str, int, str]] = []
    metadata: list[list[tuple[int, Any, Any, Any]]] = []
    specs = {name: (info.id, info.type) for name, info in fields.items()}
    for f in files:
        lfn, pfn, size, checksum = f.lfn, f.pfn, f.size, f.checksum
        if (
            (new and lfn_problem(lfn) is not None)
            or type(pfn) is not str
            or not storable_text(pfn)
            or len(f.metadata) > MAX_METADATA_KEYS
            or type(checksum) is not str
            or len(checksum) > CHECKSUM_MAX
            or type(size) is not int
            or not 0 <= size <= INT64_MAX
        ):
            raise _bad_file(f, new=new)
        values: list[tuple[int, Any, Any, Any]] = []
        for key, v in f.metadata.items():
            spec = specs.get(key)
            if spec is None:
                raise InvalidArgument(
                    f"file {lfn!r}: metadata field {shown(key)} is not declared in the catalog schema"
                )
            field_id, ftype = spec
            if ftype == "int" and type(v) is int and INT64_MIN <= v <= INT64_MAX:
                values.append((field_id, v, None, None))
            elif ftype == "str" and type(v) is str and len(v) <= STR_MAX and storable(v):
                values.append((field_id, None, None, v))
            elif ftype == "float" and type(v) is float and math.isfinite(v):
                values.append((field_id, None, v, None))
            else:
                values.append(_typed_value(lfn, key, v, field_id, ftype))
        lfns.append(lfn)
        file_rows.append((lfn, pfn, size, checksum))
        metadata.append(values)
    if len(set(lfns)) != len(lfns):
        seen: set[str] = set()
        dup = next(lfn for lfn in lfns if lfn in seen or seen.add(lfn))  # type: ignore[func-returns-value]
        raise AlreadyExists(f"file {dup!r} appears twice in the batch")
    return lfns, file_rows, metadata


def _bad_file(f: FileInput, *, new: bool = True) -> InvalidArgument:
    lfn = check_lfn(f.lfn) if new else str(f.lfn)
    if type(f.size) is not int or not 0 <= f.size <= INT64_MAX:
        return InvalidArgument(f"file {lfn!r}: size must be a non-negative 64-bit integer, not {shown(f.size)}")
    if len(f.metadata) > MAX_METADATA_KEYS:
        return InvalidArgument(f"file {lfn!r}: {len(f.metadata)} metadata values, more than {MAX_METADATA_KEYS}")
    return InvalidArgument(
        f"file {lfn!r}: pfn and checksum are strings without control characters (checksum up to "
        f"{CHECKSUM_MAX} characters, pfn up to {PFN_MAX})"
    )


def _typed_value(lfn: str, key: str, v: Any, field_id: int, ftype: str) -> tuple[int, Any, Any, Any]:
    """The slow path of one value: an int for a float field, or an error saying what is wrong."""
    if ftype == "float" and type(v) is int and -FLOAT_EXACT_INT <= v <= FLOAT_EXACT_INT:
        return (field_id, None, float(v), None)
    if ftype == "int":
        problem = "is not a 64-bit integer"
    elif ftype == "float":
        problem = "is not a finite number (ints beyond 2**53 are not exact floats)"
    else:
        problem = f"is not a string of at most {STR_MAX} characters without control characters or trailing spaces"
    raise InvalidArgument(f"file {lfn!r}: field {key!r} is {ftype}, {shown(v)} ({type(v).__name__}) {problem}")


def typed_values(
    lfn: str, metadata: Mapping[str, Any], fields: Mapping[str, FieldInfo]
) -> list[tuple[int, Any, Any, Any]]:
    """`(field_id, value_int, value_float, value_str)` per key, validated against the schema."""
    # The values of a catalogued file (its LFN was checked when it was registered).
    return _prepare([FileInput(lfn, metadata=metadata)], fields, new=False)[2][0]


def _lookup(session: Session, lfns: list[str]) -> dict[str, int]:
    """{lfn: id} of those of `lfns` in the catalog (LFNs are unique: reading new ids back
    this way is safe under concurrent registrations, unlike guessing auto-increment values)."""
    found: dict[str, int] = {}
    for start in range(0, len(lfns), LOOKUP_CHUNK):
        chunk = lfns[start : start + LOOKUP_CHUNK]
        found.update(session.execute(select(FILES.c.lfn, FILES.c.id).where(FILES.c.lfn.in_(chunk))).all())  # type: ignore[arg-type]
    return found


# -- metadata updates -------------------------------------------------------------------------
def set_metadata(
    *, session: Session, lfn: str, metadata: Mapping[str, Any], principal: Principal | None = None
) -> FileRecord:
    """Set (insert or replace) typed metadata values of one file; other keys stay. The file
    is then attached to any Active transformation it has come to match. Only its owner or an
    admin may (`principal`; None: the system itself), else PermissionDenied and no change."""
    fields = load_fields(session)
    file_id = _file_id(session, lfn)
    if principal is not None:
        ensure_owns_files(principal, file_owners(session=session, lfns=[lfn]), "change")
    values = typed_values(lfn, metadata, fields)
    if values:
        field_ids = [v[0] for v in values]
        session.execute(
            FILE_METADATA.delete().where(FILE_METADATA.c.file_id == file_id, FILE_METADATA.c.field_id.in_(field_ids))
        )
        executemany(session, FILE_METADATA, METADATA_COLUMNS, [(file_id, *v) for v in values])
    record = get_file(session=session, lfn=lfn)
    lineage = ancestry.ancestry_of(session=session, file_id=file_id)
    routing.attach_files(session=session, file_rows=[(file_id, record.metadata)], ancestry=lineage)
    return record


def file_owners(*, session: Session, lfns: Sequence[str]) -> dict[str, str | None]:
    """{lfn: owner} of those of `lfns` in the catalog (None: admin only)."""
    found: dict[str, str | None] = {}
    wanted = set(lfns)
    for start in range(0, len(lfns), LOOKUP_CHUNK):
        chunk = list(lfns[start : start + LOOKUP_CHUNK])
        rows = session.execute(select(FILES.c.lfn, FILES.c.owner).where(FILES.c.lfn.in_(chunk)))
        found.update({lfn: owner for lfn, owner in rows if lfn in wanted})
    return found


def _file_id(session: Session, lfn: str) -> int:
    check_lfn_lookup(lfn)
    row = session.execute(select(FILES.c.id, FILES.c.lfn).where(FILES.c.lfn == lfn)).first()
    # MariaDB's PAD SPACE collation would match "a " to "a": compare exactly here.
    if row is None or row.lfn != lfn:
        raise NotFound(f"no file {lfn!r} in the catalog")
    return int(row.id)


# -- reading ----------------------------------------------------------------------------------
def parse_query(query: MetaQuery | Mapping[str, Any] | str, schema: Schema) -> MetaQuery:
    """A user query: a MetaQuery, the dict form, the dict form as JSON (a string starting
    with "{"), or the compact string form. Malformed or ill-typed: InvalidArgument."""
    if isinstance(query, MetaQuery):
        return query
    try:
        if isinstance(query, str):
            check_query_text(query)
        if isinstance(query, str) and query.lstrip().startswith("{"):
            check_json_depth(query)
            try:
                parsed = json.loads(query)
            except json.JSONDecodeError as exc:
                raise InvalidQuery(f"metaquery {shown(query)} is not valid JSON: {exc}") from None
            return MetaQuery.from_dict(check_query_value(parsed), schema)
        if isinstance(query, Mapping):
            check_query_value(query)
        return MetaQuery.parse(query, schema)
    except ValueError as exc:
        raise InvalidArgument(f"bad metaquery: {exc}") from None


def find_file_batches(
    *,
    session: Session,
    query: MetaQuery | Mapping[str, Any] | str,
    limit: int = 0,
    after_id: int = 0,
    batch: int = 1000,
    with_metadata: bool = True,
) -> Iterator[list[FileRecord]]:
    """The matching files in catalog (id) order, `batch` at a time. The ids are selected
    once (one index-driven query), then the rows are fetched by id, batch by batch."""
    fields = load_fields(session)
    q = parse_query(query, Schema({n: i.type for n, i in fields.items()}))
    driver = choose_driver(session, q, fields)
    stmt = compile_ids(q, fields, driver=driver, after_id=after_id, limit=max(0, limit))
    if stmt is None:
        return
    ids = list(session.scalars(stmt))
    for start in range(0, len(ids), batch):
        yield _records(session, ids[start : start + batch], fields, with_metadata=with_metadata)


# Matching ids a stream selects per query (db.catalog.matching_file_ids): a key driving over
# a value range (not in id order) cannot seek past the last id sent, so a query per page of
# 1,000 re-read the whole range each time (17 pages of a 100,000-row run range: 7.4 s at ten
# million files, against 0.9 s for all the ids at once). At most this many ids are held.
FIND_ID_CHUNK = 100_000


def matching_file_ids(
    *, session: Session, query: MetaQuery | Mapping[str, Any] | str, after_id: int = 0, limit: int = FIND_ID_CHUNK
) -> list[int]:
    """The ids of at most `limit` (> 0) matching files past `after_id`, in catalog (id) order:
    one query. Keyset pagination: the next chunk starts after the last id of this one, so a
    stream reads its chunks, and the rows of each page (file_records), in separate short
    transactions."""
    fields = load_fields(session)
    q = parse_query(query, Schema({n: i.type for n, i in fields.items()}))
    stmt = compile_ids(q, fields, driver=choose_driver(session, q, fields), after_id=after_id, limit=max(1, limit))
    return [] if stmt is None else list(session.scalars(stmt))


def find_files(
    *, session: Session, query: MetaQuery | Mapping[str, Any] | str, limit: int = 0, after_id: int = 0,
    batch: int = 1000, with_metadata: bool = True,
) -> Iterator[FileRecord]:  # fmt: skip
    """`find_file_batches`, one file at a time."""
    for chunk in find_file_batches(
        session=session, query=query, limit=limit, after_id=after_id, batch=batch, with_metadata=with_metadata
    ):
        yield from chunk


def count_files(*, session: Session, query: MetaQuery | Mapping[str, Any] | str) -> int:
    fields = load_fields(session)
    q = parse_query(query, Schema({n: i.type for n, i in fields.items()}))
    stmt = compile_ids(q, fields, driver=choose_driver(session, q, fields), ordered=False)
    return 0 if stmt is None else int(session.scalar(select(func.count()).select_from(stmt.subquery())) or 0)


def get_file(*, session: Session, lfn: str) -> FileRecord:
    """One file with its metadata and, when a task produced it, its provenance."""
    file_id = _file_id(session, lfn)
    (record,) = _records(session, [file_id], load_fields(session), with_metadata=True)
    # Read from the file's own provenance record, never from the execution records (tasks,
    # task inputs) that `production delete` removes. An input since purged is left out.
    f = CatalogFile
    row = session.execute(
        select(
            f.producer_task_id, f.producer_attempt, f.producer_production, f.producer_transformation, f.reused_from
        ).where(f.id == file_id)
    ).one()
    if row.producer_task_id is None:
        return record
    inputs = session.scalars(
        select(CatalogFile.lfn)
        .join(ProducedFileInput, ProducedFileInput.input_file_id == CatalogFile.id)
        .where(ProducedFileInput.file_id == file_id)
        .order_by(ProducedFileInput.position)
    )
    provenance = Provenance(
        row.producer_production or "",
        row.producer_transformation or "",
        row.producer_task_id,
        row.producer_attempt or 0,
        tuple(inputs),
        row.reused_from,
    )
    return dataclasses.replace(record, provenance=provenance)


def file_records(*, session: Session, ids: list[int], with_metadata: bool = True) -> list[FileRecord]:
    """These files (the ids sorted; those that still exist), with their metadata unless told
    not to (no provenance), in id order."""
    return _records(session, ids, load_fields(session), with_metadata=with_metadata) if ids else []


def _records(
    session: Session, ids: list[int], fields: Mapping[str, FieldInfo], *, with_metadata: bool
) -> list[FileRecord]:
    metadata: dict[int, dict[str, MetaScalar]] = {fid: {} for fid in ids}
    if with_metadata:
        by_id = {info.id: (name, info.type) for name, info in fields.items()}
        m = FILE_METADATA.c
        for file_id, field_id, vi, vf, vs in session.execute(
            select(m.file_id, m.field_id, m.value_int, m.value_float, m.value_str).where(m.file_id.in_(ids))
        ):
            name, ftype = by_id[field_id]
            metadata[file_id][name] = vi if ftype == "int" else vf if ftype == "float" else vs
    f = FILES.c
    rows = session.execute(
        select(f.id, f.lfn, f.pfn, f.size, f.checksum, f.created_at, f.owner).where(f.id.in_(ids)).order_by(f.id)
    )
    return [
        FileRecord(r.id, r.lfn, r.pfn, r.size, r.checksum, r.created_at, metadata[r.id], owner=r.owner) for r in rows
    ]
