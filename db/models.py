"""SQLAlchemy 2 typed models of the ProductionDB.

Every piece of state lives here so that any process can be killed and restarted at any
time. Status columns hold the domain's words (see metaprod.core.statuses).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Double,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.dialects import mysql
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeEngine

# Case- and accent-sensitive code-point order on MariaDB, as the metaquery algebra compares
# strings; SQLite's default BINARY collation already orders UTF-8 by code point.
BINARY_COLLATION = "utf8mb4_bin"

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Stores naive UTC, returns aware UTC: MariaDB DATETIME and SQLite keep no zone."""

    impl = DateTime(timezone=False)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        # MariaDB's DATETIME drops fractions unless told: heartbeats and leases need them.
        if dialect.name in {"mysql", "mariadb"}:
            return dialect.type_descriptor(mysql.DATETIME(fsp=6))
        return dialect.type_descriptor(DateTime(timezone=False))

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


def _str(length: int, *, binary: bool = False) -> String:
    if binary:
        return String(length).with_variant(String(length, collation=BINARY_COLLATION), "mysql", "mariadb")
    return String(length)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    # none_as_null: a missing query is SQL NULL (so `IS NULL` finds roots), not JSON null.
    type_annotation_map = {dict[str, Any]: JSON(none_as_null=True), datetime: UTCDateTime}


class MetadataField(Base):
    __tablename__ = "metadata_fields"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(_str(128, binary=True), unique=True)
    type: Mapped[str] = mapped_column(String(8))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


def _name_as_namespace(context: Any) -> str:
    """A production inserted without a namespace writes under its name."""
    return str(context.get_current_parameters()["name"])


class Production(Base):
    __tablename__ = "productions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(_str(128, binary=True), index=True)
    # The name while the production lives; NULL once Cleaned, which frees the name (NULLs never
    # collide in a unique index, on SQLite as on MariaDB) while the record stays listed.
    live_name: Mapped[str | None] = mapped_column(_str(128, binary=True), unique=True)
    # The first segment of its output LFNs, chosen once at creation: its name, or the next free
    # `name@N` when that namespace already holds files (see db.namespaces). Never reused.
    # NULL only in rows written by older code: read as the name.
    namespace: Mapped[str | None] = mapped_column(
        _str(140, binary=True), index=True, unique=True, default=_name_as_namespace
    )
    description: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(16), index=True)
    owner: Mapped[str] = mapped_column(String(128))
    spec: Mapped[dict[str, Any]]
    # `production delete --purge-outputs`: cleaning also removes the produced files.
    purge_outputs: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class ProductionEvent(Base):
    """One change of state of a production, by a person or an agent (`production history`)."""

    __tablename__ = "production_events"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    production_id: Mapped[int] = mapped_column(ForeignKey("productions.id", ondelete="CASCADE"), index=True)
    time: Mapped[datetime] = mapped_column(default=utcnow)
    actor: Mapped[str] = mapped_column(String(160))
    event: Mapped[str] = mapped_column(String(32))
    transformation: Mapped[str] = mapped_column(_str(128, binary=True), default="")
    detail: Mapped[str] = mapped_column(Text, default="")


class Transformation(Base):
    __tablename__ = "transformations"
    __table_args__ = (UniqueConstraint("production_id", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    production_id: Mapped[int] = mapped_column(ForeignKey("productions.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(_str(128, binary=True))
    status: Mapped[str] = mapped_column(String(16), index=True)
    spec: Mapped[dict[str, Any]]
    input_query: Mapped[dict[str, Any] | None]
    output_query: Mapped[dict[str, Any] | None]
    output_metadata: Mapped[dict[str, Any] | None]
    plugin: Mapped[str] = mapped_column(String(32), default="standard")
    # NULL: a whole bucket (by_metadata) or every file (flushed when the parents end) per task.
    group_size: Mapped[int | None] = mapped_column(Integer)
    group_by: Mapped[list[str] | None] = mapped_column(JSON(none_as_null=True))
    max_bytes: Mapped[int | None] = mapped_column(BigInteger)
    task_count: Mapped[int | None] = mapped_column(Integer)
    max_attempts: Mapped[int] = mapped_column(Integer, default=3)
    # Seconds an attempt may run before it is killed with its whole process tree.
    max_runtime: Mapped[int | None] = mapped_column(Integer)
    # A catalog-fed root takes new matching files until its input is closed.
    input_closed: Mapped[bool] = mapped_column(Boolean, default=False)
    backend: Mapped[str] = mapped_column(String(32), default="local")
    command: Mapped[str] = mapped_column(Text)
    # Highest file id the input agent has looked at: the incremental scan starts after it.
    input_watermark: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class TransformationLink(Base):
    """A declared parent -> child link with the validated intersection of the queries."""

    __tablename__ = "transformation_links"

    child_id: Mapped[int] = mapped_column(ForeignKey("transformations.id", ondelete="CASCADE"), primary_key=True)
    parent_id: Mapped[int] = mapped_column(
        ForeignKey("transformations.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    intersection: Mapped[dict[str, Any] | None]


class CatalogFile(Base):
    __tablename__ = "files"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    lfn: Mapped[str] = mapped_column(_str(700, binary=True), unique=True)
    pfn: Mapped[str] = mapped_column(Text, default="")
    size: Mapped[int] = mapped_column(BigInteger, default=0)
    checksum: Mapped[str] = mapped_column(String(128), default="")
    # Provenance: the task attempt that produced the file (NULL for imported files). It is a
    # permanent record: no foreign key, so deleting a production's execution records (tasks,
    # attempts) keeps it whole; the names are those the producer had when the file was made.
    producer_task_id: Mapped[int | None] = mapped_column(Integer, index=True)
    producer_attempt: Mapped[int | None] = mapped_column(Integer)
    producer_production_id: Mapped[int | None] = mapped_column(Integer, index=True)
    producer_production: Mapped[str | None] = mapped_column(_str(128, binary=True))
    producer_transformation: Mapped[str | None] = mapped_column(_str(128, binary=True))
    # Reuse by content: the task whose outputs (same content, same PFN) this file stands for.
    reused_from: Mapped[int | None] = mapped_column(Integer, index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Who may change or remove it: the importer's owner, or its production's owner. NULL:
    # admin only (files imported before the catalog had owners).
    owner: Mapped[str | None] = mapped_column(String(128))


class FileMetadataValue(Base):
    """One typed metadata value of one file; the column used follows the field's type."""

    __tablename__ = "file_metadata"
    __table_args__ = (
        Index("ix_file_metadata_int", "field_id", "value_int", "file_id"),
        Index("ix_file_metadata_float", "field_id", "value_float", "file_id"),
        Index("ix_file_metadata_str", "field_id", "value_str", "file_id"),
    )

    file_id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"),
        ForeignKey("files.id", ondelete="CASCADE"),
        primary_key=True,
    )
    field_id: Mapped[int] = mapped_column(ForeignKey("metadata_fields.id", ondelete="CASCADE"), primary_key=True)
    value_int: Mapped[int | None] = mapped_column(BigInteger)
    value_float: Mapped[float | None] = mapped_column(Double)
    value_str: Mapped[str | None] = mapped_column(_str(255, binary=True))


class ProducedFileInput(Base):
    """Provenance of a produced file: its producer task's inputs, in task order. Kept apart
    from task_inputs, which `production delete` removes with the tasks."""

    __tablename__ = "file_inputs"

    file_id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), ForeignKey("files.id", ondelete="CASCADE"), primary_key=True
    )
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    # No foreign key: an input purged from the catalog leaves its id (and the record) behind.
    input_file_id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), index=True)


class FileAncestry(Base):
    """The transformations in the ancestry of a produced file: its producer's and, through its
    inputs, every transformation upstream of it, in any production (none for imported files).
    Computed once when the file is registered; a transformation never takes a file whose
    ancestry holds it (data cycles). No foreign key on the transformation: a permanent record."""

    __tablename__ = "file_ancestry"

    file_id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), ForeignKey("files.id", ondelete="CASCADE"), primary_key=True
    )
    transformation_id: Mapped[int] = mapped_column(Integer, primary_key=True)


class SkippedFile(Base):
    """A file that matched a transformation's input query but descends from its outputs:
    never attached to it, recorded so that `transformation files` and `progress` count it."""

    __tablename__ = "skipped_files"

    transformation_id: Mapped[int] = mapped_column(
        ForeignKey("transformations.id", ondelete="CASCADE"), primary_key=True
    )
    file_id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), ForeignKey("files.id", ondelete="CASCADE"), primary_key=True
    )


class TransformationFile(Base):
    __tablename__ = "transformation_files"
    __table_args__ = (Index("ix_transformation_files_status", "transformation_id", "status", "file_id"),)

    transformation_id: Mapped[int] = mapped_column(
        ForeignKey("transformations.id", ondelete="CASCADE"), primary_key=True
    )
    file_id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"),
        ForeignKey("files.id", ondelete="CASCADE"),
        primary_key=True,
    )
    # The task holding an Assigned file is found through task_inputs (one row per file per
    # task), not stored here: grouping a million files then updates one index, not two.
    status: Mapped[str] = mapped_column(String(16))
    error_count: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Task(Base):
    __tablename__ = "tasks"
    __table_args__ = (
        UniqueConstraint("transformation_id", "task_index"),
        Index("ix_tasks_status", "status", "not_before"),
        # The submit agent's claim order (status Created, then task_index): a scan of this
        # index serves every transformation's lowest-indexed Created tasks first.
        Index("ix_tasks_status_index", "status", "task_index"),
        Index("ix_tasks_signature", "signature", "status"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    transformation_id: Mapped[int] = mapped_column(ForeignKey("transformations.id", ondelete="CASCADE"))
    task_index: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16))
    attempt: Mapped[int] = mapped_column(Integer, default=0)
    # Attempts made before the last `retry`: only attempt - attempts_base count against max_attempts.
    attempts_base: Mapped[int] = mapped_column(Integer, default=0)
    # Retry backoff: the task is not submitted again before this time.
    not_before: Mapped[datetime | None]
    backend: Mapped[str] = mapped_column(String(32), default="local")
    backend_job_id: Mapped[str | None] = mapped_column(String(128))
    last_error: Mapped[str | None] = mapped_column(Text)
    # Reuse by content (metaprod.db.reuse): a hash of what the task computes from what (NULL:
    # an input without a checksum); and the Done task whose outputs it took instead of running.
    signature: Mapped[str | None] = mapped_column(String(64))
    reused_from: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class StatusCounter(Base):
    """How many of a transformation's tasks, files or ended attempts are in a status (what:
    task, file, attempt; reused: its tasks Done by reuse), and the catalog's files (row 0,
    catalog, files), kept by the transactions that change them (db.counters): summaries read
    these rows, never a scan. No foreign key: row 0 is no transformation; cleaning drops a
    transformation's rows (transformations are never deleted)."""

    __tablename__ = "status_counters"

    transformation_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    what: Mapped[str] = mapped_column(String(8), primary_key=True)
    status: Mapped[str] = mapped_column(String(16), primary_key=True)
    n: Mapped[int] = mapped_column(BigInteger, default=0)


class TaskInput(Base):
    __tablename__ = "task_inputs"

    task_id: Mapped[int] = mapped_column(ForeignKey("tasks.id", ondelete="CASCADE"), primary_key=True)
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    file_id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), ForeignKey("files.id", ondelete="CASCADE"), index=True
    )


class JobAttempt(Base):
    """Every attempt of a task stays on record, with its outcome and where its log is."""

    __tablename__ = "job_attempts"
    __table_args__ = (
        UniqueConstraint("task_id", "attempt"),
        Index("ix_job_attempts_status", "status"),
        # The dashboard's metrics read the attempts that started or finished since they last
        # looked (histograms of durations and of the wait from a file to its job).
        Index("ix_job_attempts_started_at", "started_at"),
        Index("ix_job_attempts_finished_at", "finished_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    task_id: Mapped[int] = mapped_column(ForeignKey("tasks.id", ondelete="CASCADE"))
    attempt: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16))
    backend: Mapped[str] = mapped_column(String(32))
    backend_job_id: Mapped[str | None] = mapped_column(String(128))
    token_hash: Mapped[str | None] = mapped_column(String(64), index=True)
    workdir: Mapped[str | None] = mapped_column(Text)
    log_path: Mapped[str | None] = mapped_column(Text)
    exit_code: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
    # The job's report, kept until the finalize agent has registered (or refused) the outputs.
    report: Mapped[dict[str, Any] | None]
    submitted_at: Mapped[datetime | None]
    started_at: Mapped[datetime | None]
    heartbeat_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]


class AgentHeartbeat(Base):
    __tablename__ = "agent_heartbeats"
    __table_args__ = (UniqueConstraint("name", "host", "pid"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64))
    host: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_beat: Mapped[datetime] = mapped_column(default=utcnow)
    last_status: Mapped[str] = mapped_column(Text, default="")
    stopped: Mapped[bool] = mapped_column(Boolean, default=False)
    # Cycles run and the time they took, summed (Prometheus counters), and the last one's.
    cycles: Mapped[int] = mapped_column(BigInteger, default=0)
    cycle_seconds_total: Mapped[float] = mapped_column(Double, default=0.0)
    last_cycle_seconds: Mapped[float] = mapped_column(Double, default=0.0)


class MonitorSample(Base):
    """One transformation's counts at one time: the dashboard's history plots (throughput,
    failures, backlog), taken at a fixed cadence by the sampler agent, only when they changed
    since its previous sample, and pruned after some days. No foreign keys: a history record."""

    __tablename__ = "monitor_samples"
    __table_args__ = (Index("ix_monitor_samples_transformation_id_time", "transformation_id", "time"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    time: Mapped[datetime] = mapped_column(index=True)
    production_id: Mapped[int] = mapped_column(Integer, index=True)
    transformation_id: Mapped[int] = mapped_column(Integer)
    # In the unit of its progress (core.progress): tasks of a root, files of a child.
    done: Mapped[int] = mapped_column(Integer, default=0)
    failed: Mapped[int] = mapped_column(Integer, default=0)
    pending: Mapped[int] = mapped_column(Integer, default=0)
    # Tasks waiting for a job (Created) and those with one (Submitted, Running).
    queued_tasks: Mapped[int] = mapped_column(Integer, default=0)
    running_tasks: Mapped[int] = mapped_column(Integer, default=0)


class ApiToken(Base):
    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(_str(128, binary=True), unique=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    owner: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None]
    expires_at: Mapped[datetime | None]
