"""Conversions between protobuf messages (metaprod.v1) and the plain types of clients.types."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp
from metaprod.clients import types as t
from metaprod.core.errors import InvalidArgument
from metaprod.v1 import (
    admin_pb2,
    catalog_pb2,
    common_pb2,
    production_pb2,
    transformation_pb2,
)

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
FILE_KEYS = frozenset({"lfn", "pfn", "size", "checksum", "metadata"})


# --- queries and specs -------------------------------------------------------------------


def query_text(query: t.Query | None) -> str:
    """A metaquery for the wire: a dict is sent as JSON, a string (compact form) as is."""
    if query is None:
        return "{}"
    if isinstance(query, str):
        return query
    if isinstance(query, Mapping):
        try:
            return json.dumps(dict(query), allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise InvalidArgument(f"query is not JSON-serialisable: {exc}") from None
    raise InvalidArgument(f"a query is a dict or a string, not {type(query).__name__}")


def spec_text(spec: str | Mapping[str, Any]) -> str:
    """A spec for the wire: text (YAML or JSON) as is, a dict as JSON."""
    if isinstance(spec, str):
        return spec
    if isinstance(spec, Mapping):
        try:
            return json.dumps(dict(spec), allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise InvalidArgument(f"spec is not JSON-serialisable: {exc}") from None
    raise InvalidArgument(f"a spec is YAML/JSON text or a dict, not {type(spec).__name__}")


def decode_json_dict(text: str) -> dict[str, Any] | None:
    """The server's JSON dict form of a query or spec; None when empty or not a JSON object."""
    if not text:
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


# --- metadata values ---------------------------------------------------------------------


def meta_value(key: str, value: object) -> common_pb2.MetaValue:
    """A python int/float/str as a MetaValue (bool and other types are refused)."""
    if isinstance(value, bool):
        raise InvalidArgument(f"metadata {key!r}: booleans are not a metadata type (use int or str)")
    if isinstance(value, int):
        if not INT64_MIN <= value <= INT64_MAX:
            raise InvalidArgument(f"metadata {key!r}: {value} does not fit in a 64-bit integer")
        return common_pb2.MetaValue(int_value=value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidArgument(f"metadata {key!r}: {value} is not a finite number")
        return common_pb2.MetaValue(float_value=value)
    if isinstance(value, str):
        return common_pb2.MetaValue(str_value=value)
    raise InvalidArgument(f"metadata {key!r}: {type(value).__name__} is not a metadata type (int, float, str)")


def meta_scalar(value: common_pb2.MetaValue) -> t.MetaScalar | None:
    kind = value.WhichOneof("kind")
    if kind == "int_value":
        return value.int_value
    if kind == "float_value":
        return value.float_value
    if kind == "str_value":
        return value.str_value
    return None


def metadata_to_proto(metadata: Mapping[str, object] | None) -> dict[str, common_pb2.MetaValue]:
    if metadata is None:
        return {}
    if not isinstance(metadata, Mapping):
        raise InvalidArgument(f"metadata must be a mapping, not {type(metadata).__name__}")
    out: dict[str, common_pb2.MetaValue] = {}
    for key, value in metadata.items():
        if not isinstance(key, str) or not key:
            raise InvalidArgument(f"metadata keys are non-empty strings, not {key!r}")
        out[key] = meta_value(key, value)
    return out


def metadata_from_proto(metadata: Mapping[str, common_pb2.MetaValue]) -> dict[str, t.MetaScalar]:
    out: dict[str, t.MetaScalar] = {}
    for key in sorted(metadata):
        value = meta_scalar(metadata[key])
        if value is not None:
            out[key] = value
    return out


# --- timestamps --------------------------------------------------------------------------


_EPOCH_UTC = datetime(1970, 1, 1, tzinfo=UTC)


def timestamp(ts: Timestamp | None) -> datetime | None:
    """As ts.ToDatetime(tzinfo=UTC) (nanoseconds cut to microseconds), by arithmetic: a listing
    of a thousand productions converts thousands."""
    if ts is None:
        return None
    seconds, nanos = ts.seconds, ts.nanos
    if seconds == 0 and nanos == 0:
        return None
    return _EPOCH_UTC + timedelta(seconds=seconds, microseconds=nanos // 1000)


# --- catalog -----------------------------------------------------------------------------


def field_from_proto(msg: catalog_pb2.Field) -> t.Field:
    return t.Field(name=msg.name, type=msg.type)


def provenance_from_proto(msg: catalog_pb2.Provenance) -> t.Provenance:
    return t.Provenance(
        production=msg.production,
        transformation=msg.transformation,
        task=msg.task,
        attempt=msg.attempt,
        inputs=tuple(msg.inputs),
        reused_from=msg.reused_from or None,
    )


def catalog_file_from_proto(msg: catalog_pb2.CatalogFile) -> t.CatalogFile:
    produced = msg.has_provenance or msg.HasField("provenance")
    return t.CatalogFile(
        lfn=msg.lfn,
        pfn=msg.pfn,
        size=msg.size,
        checksum=msg.checksum,
        metadata=metadata_from_proto(msg.metadata),
        created_at=timestamp(msg.created_at) if msg.HasField("created_at") else None,
        provenance=provenance_from_proto(msg.provenance) if produced else None,
        owner=msg.owner,
    )


def check_metadata(lfn: str, metadata: object) -> dict[str, t.MetaScalar]:
    """A copy of `metadata` once every key is a string and every value an int/float/str."""
    if metadata is None:
        return {}
    if not isinstance(metadata, Mapping):
        raise InvalidArgument(f"{lfn}: 'metadata' is a mapping, not {type(metadata).__name__}")
    try:
        metadata_to_proto(metadata)
    except InvalidArgument as exc:
        raise InvalidArgument(f"{lfn}: {exc.message}") from None
    return dict(metadata)


def file_from_mapping(item: Mapping[str, Any]) -> t.CatalogFile:
    """A CatalogFile from the import format {"lfn", "pfn"?, "size"?, "checksum"?, "metadata"?}."""
    unknown = sorted(str(k) for k in item if k not in FILE_KEYS)
    if unknown:
        raise InvalidArgument(f"unknown file key(s) {', '.join(unknown)} (expected {', '.join(sorted(FILE_KEYS))})")
    lfn = item.get("lfn")
    if not isinstance(lfn, str) or not lfn:
        raise InvalidArgument("every file needs a non-empty string 'lfn'")
    pfn = item.get("pfn") or ""
    checksum = item.get("checksum") or ""
    size = item.get("size") or 0
    if not isinstance(pfn, str) or not isinstance(checksum, str):
        raise InvalidArgument(f"{lfn}: 'pfn' and 'checksum' are strings")
    if isinstance(size, bool) or not isinstance(size, int) or not 0 <= size <= INT64_MAX:
        raise InvalidArgument(f"{lfn}: 'size' is a non-negative integer, not {size!r}")
    metadata = check_metadata(lfn, item.get("metadata"))
    return t.CatalogFile(lfn=lfn, pfn=pfn, size=size, checksum=checksum, metadata=metadata)


def catalog_file_to_proto(item: t.FileInput) -> catalog_pb2.CatalogFile:
    """A CatalogFile, or a mapping in the import format, as a message."""
    if isinstance(item, Mapping):
        item = file_from_mapping(item)
    elif not isinstance(item, t.CatalogFile):
        raise InvalidArgument(f"a file is a CatalogFile or a mapping, not {type(item).__name__}")
    if not item.lfn:
        raise InvalidArgument("every file needs a non-empty 'lfn'")
    try:
        values = metadata_to_proto(item.metadata)
    except InvalidArgument as exc:
        raise InvalidArgument(f"{item.lfn}: {exc.message}") from None
    msg = catalog_pb2.CatalogFile(lfn=item.lfn, pfn=item.pfn, size=item.size, checksum=item.checksum, metadata=values)
    provenance = item.provenance
    if provenance is not None:
        msg.provenance.CopyFrom(
            catalog_pb2.Provenance(
                production=provenance.production,
                transformation=provenance.transformation,
                task=provenance.task,
                attempt=provenance.attempt,
                inputs=list(provenance.inputs),
                reused_from=provenance.reused_from or 0,
            )
        )
        msg.has_provenance = True
    return msg


def import_file_to_proto(item: object, float_keys: frozenset[str]) -> catalog_pb2.CatalogFile:
    """One file of the import format as a message, its int values widened for the float
    fields named in `float_keys` (JSON writes 5.0 as 5). The common case (plain types, valid
    values) is checked and converted in one pass, each value written once into the message:
    at millions of lines the two-step path (file_from_mapping, then catalog_file_to_proto)
    was most of the import's own CPU. Anything else takes that path, for its exact errors."""
    if type(item) is dict and item.keys() <= FILE_KEYS:
        lfn, metadata = item.get("lfn"), item.get("metadata")
        pfn, checksum, size = item.get("pfn") or "", item.get("checksum") or "", item.get("size") or 0
        plain = type(lfn) is str and lfn and type(pfn) is str and type(checksum) is str
        if plain and type(size) is int and 0 <= size <= INT64_MAX and (metadata is None or type(metadata) is dict):
            msg = catalog_pb2.CatalogFile(lfn=lfn, pfn=pfn, size=size, checksum=checksum)
            values = msg.metadata
            for key, value in (metadata or {}).items():
                kind = type(value)
                if type(key) is not str or not key:
                    break
                if kind is str:
                    values[key].str_value = value
                elif kind is int and INT64_MIN <= value <= INT64_MAX:
                    if key in float_keys:
                        values[key].float_value = float(value)
                    else:
                        values[key].int_value = value
                elif kind is float and math.isfinite(value):
                    values[key].float_value = value
                else:
                    break
            else:
                return msg
    if not isinstance(item, Mapping):
        raise InvalidArgument("each line is a JSON object")
    checked = file_from_mapping(item)
    for key, value in checked.metadata.items():
        if key in float_keys and isinstance(value, int) and not isinstance(value, bool):
            checked.metadata[key] = float(value)
    return catalog_file_to_proto(checked)


# --- findings, transformations, tasks ----------------------------------------------------


def finding_from_proto(msg: common_pb2.Finding) -> t.Finding:
    return t.Finding(code=msg.code, message=msg.message, transformations=tuple(msg.transformations), key=msg.key)


def findings(msgs: Iterable[common_pb2.Finding]) -> tuple[t.Finding, ...]:
    return tuple(finding_from_proto(m) for m in msgs)


def counts(values: Mapping[str, int]) -> dict[str, int]:
    return {key: int(values[key]) for key in sorted(values)}


def transformation_from_proto(msg: transformation_pb2.Transformation) -> t.Transformation:
    return t.Transformation(
        id=msg.id,
        production=msg.production,
        name=msg.name,
        status=msg.status,
        parents=tuple(msg.parents),
        input_query=decode_json_dict(msg.input_query),
        output_query=decode_json_dict(msg.output_query),
        plugin=msg.plugin,
        group_size=msg.group_size,
        tasks=msg.tasks,
        max_attempts=msg.max_attempts,
        backend=msg.backend,
        command=msg.command,
        spec=decode_json_dict(msg.spec),
        created_at=timestamp(msg.created_at) if msg.HasField("created_at") else None,
        group_by=tuple(msg.group_by),
        max_runtime=msg.max_runtime,
        input_closed=msg.input_closed,
        max_bytes=msg.max_bytes,
    )


def retry_result_from_proto(msg: transformation_pb2.RetryResult) -> t.RetryResult:
    return t.RetryResult(tasks=msg.tasks, files=msg.files, skipped=tuple(msg.skipped))


def event_from_proto(msg: production_pb2.ProductionEvent) -> t.ProductionEvent:
    return t.ProductionEvent(
        time=timestamp(msg.time) if msg.HasField("time") else None,
        actor=msg.actor,
        event=msg.event,
        transformation=msg.transformation,
        detail=msg.detail,
    )


def transformation_file_from_proto(msg: transformation_pb2.TransformationFile) -> t.TransformationFile:
    return t.TransformationFile(lfn=msg.lfn, status=msg.status, task=msg.task, error_count=msg.error_count)


def task_from_proto(msg: transformation_pb2.Task) -> t.Task:
    return t.Task(
        id=msg.id,
        index=msg.index,
        status=msg.status,
        attempt=msg.attempt,
        inputs=tuple(msg.inputs),
        backend_job_id=msg.backend_job_id,
        last_error=msg.last_error,
        created_at=timestamp(msg.created_at) if msg.HasField("created_at") else None,
        updated_at=timestamp(msg.updated_at) if msg.HasField("updated_at") else None,
        transformation=msg.transformation,
    )


def _when(msg: Any, name: str) -> datetime | None:
    return timestamp(getattr(msg, name)) if msg.HasField(name) else None


def task_detail_from_proto(msg: transformation_pb2.GetTaskResponse) -> t.TaskDetail:
    def file(f: transformation_pb2.GetTaskResponse.CheckpointFile) -> t.CheckpointFile:
        return t.CheckpointFile(path=f.path, size=f.size, modified=_when(f, "modified"))

    c = msg.checkpoint
    return t.TaskDetail(
        task=task_from_proto(msg.task),
        production=msg.production,
        reused_from=msg.reused_from or None,
        attempts=tuple(
            t.TaskAttempt(
                attempt=a.attempt,
                status=a.status,
                backend=a.backend,
                backend_job_id=a.backend_job_id,
                exit_code=a.exit_code if a.HasField("exit_code") else None,
                error=a.error,
                submitted_at=_when(a, "submitted_at"),
                started_at=_when(a, "started_at"),
                heartbeat_at=_when(a, "heartbeat_at"),
                finished_at=_when(a, "finished_at"),
            )
            for a in msg.attempts
        ),
        outputs=tuple(msg.outputs),
        checkpoint=t.Checkpoint(
            state=c.state,
            location=c.location,
            keep=c.keep,
            archive=file(c.archive) if c.HasField("archive") else None,
            files=tuple(file(f) for f in c.files),
            error=c.error,
        ),
    )


# --- productions and progress ------------------------------------------------------------


def production_from_proto(msg: production_pb2.Production) -> t.Production:
    return t.Production(
        name=msg.name,
        status=msg.status,
        description=msg.description,
        owner=msg.owner,
        transformations=tuple(transformation_from_proto(tr) for tr in msg.transformations),
        created_at=timestamp(msg.created_at) if msg.HasField("created_at") else None,
        updated_at=timestamp(msg.updated_at) if msg.HasField("updated_at") else None,
        namespace=msg.namespace,
    )


def progress_from_proto(msg: production_pb2.Progress) -> t.Progress:
    return t.Progress(
        name=msg.name,
        status=msg.status,
        percent=msg.percent,
        transformations=tuple(
            t.TransformationProgress(
                name=tp.name,
                status=tp.status,
                files=counts(tp.files),
                tasks=counts(tp.tasks),
                percent=tp.percent,
                failed_percent=tp.failed_percent,
                skipped_files=tp.skipped_files,
                reused_tasks=tp.reused_tasks,
            )
            for tp in msg.transformations
        ),
        failed_percent=msg.failed_percent,
        skipped_files=msg.skipped_files,
    )


# --- admin -------------------------------------------------------------------------------


def token_from_proto(msg: admin_pb2.Token) -> t.Token:
    return t.Token(
        id=msg.id,
        name=msg.name,
        role=msg.role,
        owner=msg.owner,
        created_at=timestamp(msg.created_at) if msg.HasField("created_at") else None,
        revoked=msg.revoked,
        expires_at=timestamp(msg.expires_at) if msg.HasField("expires_at") else None,
    )


def agent_from_proto(msg: admin_pb2.Agent) -> t.Agent:
    return t.Agent(
        name=msg.name,
        host=msg.host,
        pid=msg.pid,
        started_at=timestamp(msg.started_at) if msg.HasField("started_at") else None,
        last_beat=timestamp(msg.last_beat) if msg.HasField("last_beat") else None,
        last_status=msg.last_status,
        alive=msg.alive,
    )


def identity_from_proto(msg: admin_pb2.WhoAmIResponse) -> t.Identity:
    return t.Identity(name=msg.name, role=msg.role, owner=msg.owner)
