"""Plain frozen value types returned by the client API (never protobuf messages)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeAlias

# A metadata value: the catalog schema says which one a field holds (int | float | str).
MetaScalar: TypeAlias = int | float | str
# A metaquery: the dict form (sent as JSON) or the compact string form (sent as is).
Query: TypeAlias = Mapping[str, Any] | str
# A query as the server reports it: the decoded JSON dict form, or None when there is none.
QueryDict: TypeAlias = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Field:
    name: str
    type: str  # int | float | str


@dataclass(frozen=True, slots=True)
class AddFieldResult:
    field: Field
    created: bool  # False when the field already existed with the same type


@dataclass(frozen=True, slots=True)
class Provenance:
    production: str
    transformation: str
    task: int
    attempt: int
    inputs: tuple[str, ...] = ()
    reused_from: int | None = None  # reuse by content: the task whose outputs this file reuses


@dataclass(frozen=True, slots=True)
class CatalogFile:
    lfn: str
    pfn: str = ""
    size: int = 0
    checksum: str = ""
    metadata: dict[str, MetaScalar] = field(default_factory=dict)
    created_at: datetime | None = None
    provenance: Provenance | None = None  # None for imported (not produced) files
    owner: str = ""  # who may change it (its importer's or its production's owner); "": admin only


@dataclass(frozen=True, slots=True)
class Lineage:
    lfn: str
    ancestors: tuple[str, ...] = ()  # nearest generation first, then by LFN
    descendants: tuple[str, ...] = ()
    truncated: bool = False  # the depth limit stopped a walk: there may be more


@dataclass(frozen=True, slots=True)
class RegisterResult:
    registered: int
    attached: int  # transformation-file attachments made by the file router
    batches: int = 0
    skipped: int = 0  # already catalogued identically (skip_existing)


@dataclass(frozen=True, slots=True)
class Finding:
    code: str
    message: str
    transformations: tuple[str, ...] = ()
    key: str = ""


@dataclass(frozen=True, slots=True)
class ValidationResult:
    ok: bool
    errors: tuple[Finding, ...] = ()
    warnings: tuple[Finding, ...] = ()


@dataclass(frozen=True, slots=True)
class Transformation:
    id: int
    production: str
    name: str
    status: str
    parents: tuple[str, ...] = ()
    input_query: QueryDict | None = None
    output_query: QueryDict | None = None
    plugin: str = ""
    group_size: int = 0
    tasks: int = 0  # the task count of a root, 0 otherwise
    max_attempts: int = 0
    backend: str = ""
    command: str = ""
    spec: dict[str, Any] | None = None
    created_at: datetime | None = None
    group_by: tuple[str, ...] = ()
    max_runtime: int = 0  # seconds, 0: no limit
    input_closed: bool = False
    max_bytes: int = 0


@dataclass(frozen=True, slots=True)
class RetryResult:
    tasks: int  # tasks given a fresh attempt budget
    files: int  # Problematic files back to Unused
    skipped: tuple[int, ...] = ()  # killed tasks whose inputs other tasks took since


@dataclass(frozen=True, slots=True)
class ProductionEvent:
    time: datetime | None
    actor: str
    event: str
    transformation: str
    detail: str


@dataclass(frozen=True, slots=True)
class TransformationDetail:
    transformation: Transformation
    files: dict[str, int] = field(default_factory=dict)  # file status -> count
    tasks: dict[str, int] = field(default_factory=dict)  # task status -> count


@dataclass(frozen=True, slots=True)
class TransformationCreated:
    transformation: Transformation
    warnings: tuple[Finding, ...] = ()


@dataclass(frozen=True, slots=True)
class TransformationFile:
    lfn: str
    status: str  # a file status, or "Skipped": it descends from the transformation's outputs
    task: int = 0  # 0: not in a task
    error_count: int = 0


@dataclass(frozen=True, slots=True)
class TransformationFiles:
    files: tuple[TransformationFile, ...]
    skipped_files: int = 0  # all told, whatever the listing's status and limit


@dataclass(frozen=True, slots=True)
class Task:
    id: int
    index: int
    status: str
    attempt: int
    inputs: tuple[str, ...] = ()
    backend_job_id: str = ""
    last_error: str = ""
    created_at: datetime | None = None
    updated_at: datetime | None = None
    transformation: str = ""


@dataclass(frozen=True, slots=True)
class TaskAttempt:
    attempt: int
    status: str
    backend: str = ""
    backend_job_id: str = ""
    exit_code: int | None = None
    error: str = ""
    submitted_at: datetime | None = None
    started_at: datetime | None = None
    heartbeat_at: datetime | None = None
    finished_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class CheckpointFile:
    path: str
    size: int
    modified: datetime | None = None


@dataclass(frozen=True, slots=True)
class Checkpoint:
    state: str  # saved, removed, none or unknown (see GetTaskResponse.Checkpoint)
    location: str = ""
    keep: bool = False
    archive: CheckpointFile | None = None
    files: tuple[CheckpointFile, ...] = ()
    error: str = ""


@dataclass(frozen=True, slots=True)
class TaskDetail:
    task: Task
    production: str
    reused_from: int | None
    attempts: tuple[TaskAttempt, ...]
    outputs: tuple[str, ...]
    checkpoint: Checkpoint


@dataclass(frozen=True, slots=True)
class TaskLog:
    task: int
    attempt: int
    log: str


@dataclass(frozen=True, slots=True)
class TaskReport:
    accepted: bool  # False: a stale or duplicate report, nothing changed
    status: str


@dataclass(frozen=True, slots=True)
class Production:
    name: str
    status: str
    description: str = ""
    owner: str = ""
    transformations: tuple[Transformation, ...] = ()
    created_at: datetime | None = None
    updated_at: datetime | None = None
    namespace: str = ""  # its outputs are /<namespace>/<transformation>/<task>/...


@dataclass(frozen=True, slots=True)
class ProductionCreated:
    production: Production
    warnings: tuple[Finding, ...] = ()


@dataclass(frozen=True, slots=True)
class TransformationProgress:
    name: str
    status: str
    files: dict[str, int] = field(default_factory=dict)
    tasks: dict[str, int] = field(default_factory=dict)
    percent: float = 0.0  # share done
    failed_percent: float = 0.0  # share failed; the rest is pending
    skipped_files: int = 0  # matching files that descend from its own outputs (data cycles)
    reused_tasks: int = 0  # Done by reusing a Done task's outputs: no command ran


@dataclass(frozen=True, slots=True)
class Progress:
    name: str
    status: str
    percent: float = 0.0
    transformations: tuple[TransformationProgress, ...] = ()
    failed_percent: float = 0.0
    skipped_files: int = 0


@dataclass(frozen=True, slots=True)
class Token:
    id: int
    name: str
    role: str
    owner: str
    created_at: datetime | None = None
    revoked: bool = False
    expires_at: datetime | None = None  # None: valid until revoked


@dataclass(frozen=True, slots=True)
class NewToken:
    token: Token
    secret: str  # shown once; the server keeps only its hash


@dataclass(frozen=True, slots=True)
class Agent:
    name: str
    host: str
    pid: int
    started_at: datetime | None = None
    last_beat: datetime | None = None
    last_status: str = ""
    alive: bool = False


@dataclass(frozen=True, slots=True)
class Identity:
    name: str
    role: str
    owner: str


FileInput: TypeAlias = CatalogFile | Mapping[str, Any]
"""What `Client.catalog.register_files` accepts per file: a CatalogFile, or a mapping with the
keys lfn (required), pfn, size, checksum, metadata (as in the JSON Lines import format)."""
