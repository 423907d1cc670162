"""The four service facades of the client: catalog, transformations, productions, admin."""

from __future__ import annotations

import builtins
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from metaprod.clients import convert
from metaprod.clients import types as t
from metaprod.clients.transport import Transport
from metaprod.core.errors import InvalidArgument
from metaprod.v1 import admin_pb2, catalog_pb2, production_pb2, transformation_pb2

CATALOG = "metaprod.v1.FileCatalog"
TRANSFORMATIONS = "metaprod.v1.TransformationService"
PRODUCTIONS = "metaprod.v1.ProductionManager"
ADMIN = "metaprod.v1.Admin"
DEFAULT_BATCH_SIZE = 5000


@dataclass(slots=True)
class _Upload:
    sent: int = 0
    batches: int = 0
    error: BaseException | None = None


class CatalogAPI:
    def __init__(self, transport: Transport) -> None:
        self._t = transport

    def add_field(self, name: str, type: str) -> t.AddFieldResult:
        resp = self._t.unary(
            CATALOG, "AddField", catalog_pb2.AddFieldRequest(name=name, type=type), catalog_pb2.AddFieldResponse
        )
        return t.AddFieldResult(field=convert.field_from_proto(resp.field), created=resp.created)

    def list_fields(self) -> builtins.list[t.Field]:
        resp = self._t.unary(CATALOG, "ListFields", catalog_pb2.ListFieldsRequest(), catalog_pb2.ListFieldsResponse)
        return [convert.field_from_proto(f) for f in resp.fields]

    def register_files(
        self, files: Iterable[t.FileInput], *, batch_size: int = DEFAULT_BATCH_SIZE, skip_existing: bool = False
    ) -> t.RegisterResult:
        """Stream files to the catalog in batches of `batch_size` (one client-streaming call).
        With `skip_existing`, files already catalogued identically (size, checksum, metadata)
        are skipped and counted in `skipped`; a catalogued file that differs is still an error.

        A bad item (or an exception raised by `files`) ends the stream cleanly and is raised
        after the call; batches sent before it were registered (one transaction per batch).
        """
        messages = (convert.catalog_file_to_proto(item) for item in files)
        return self.register_messages(messages, batch_size=batch_size, skip_existing=skip_existing)

    def register_messages(
        self,
        files: Iterable[catalog_pb2.CatalogFile],
        *,
        batch_size: int = DEFAULT_BATCH_SIZE,
        skip_existing: bool = False,
    ) -> t.RegisterResult:
        """register_files for files already converted to messages (the CLI's import builds
        them straight from its JSON lines)."""
        if batch_size < 1:
            raise InvalidArgument(f"batch_size must be at least 1, not {batch_size}")
        upload = _Upload()

        def batches() -> Iterator[catalog_pb2.RegisterFilesRequest]:
            batch: builtins.list[catalog_pb2.CatalogFile] = []
            try:
                for item in files:
                    batch.append(item)
                    if len(batch) >= batch_size:
                        upload.sent += len(batch)
                        upload.batches += 1
                        yield catalog_pb2.RegisterFilesRequest(files=batch, skip_existing=skip_existing)
                        batch = []
            except Exception as exc:  # raised in grpc's sending thread: keep it for the caller
                upload.error = exc
                return
            if batch:
                upload.sent += len(batch)
                upload.batches += 1
                yield catalog_pb2.RegisterFilesRequest(files=batch, skip_existing=skip_existing)

        resp = self._t.client_stream(CATALOG, "RegisterFiles", batches(), catalog_pb2.RegisterFilesResponse)
        if upload.error is not None:
            exc = upload.error
            if isinstance(exc, InvalidArgument) and resp.registered + resp.skipped:
                note = f" ({resp.registered + resp.skipped} file(s) of the batches sent before it were registered)"
                raise InvalidArgument(exc.message + note, details=exc.details) from exc
            raise exc
        return t.RegisterResult(
            registered=resp.registered, attached=resp.attached, batches=upload.batches, skipped=resp.skipped
        )

    def find(
        self, query: t.Query | None = None, limit: int = 0, *, with_metadata: bool = True
    ) -> Iterator[t.CatalogFile]:
        """Matching files in catalog order, streamed (errors surface while iterating)."""
        request = catalog_pb2.FindFilesRequest(
            query=convert.query_text(query), limit=max(0, limit), with_metadata=with_metadata
        )
        for batch in self._t.server_stream(CATALOG, "FindFiles", request, catalog_pb2.FindFilesResponse):
            for msg in batch.files:
                yield convert.catalog_file_from_proto(msg)

    def get(self, lfn: str) -> t.CatalogFile:
        resp = self._t.unary(CATALOG, "GetFile", catalog_pb2.GetFileRequest(lfn=lfn), catalog_pb2.GetFileResponse)
        return convert.catalog_file_from_proto(resp.file)

    def set_metadata(self, lfn: str, metadata: Mapping[str, t.MetaScalar]) -> t.CatalogFile:
        request = catalog_pb2.SetMetadataRequest(lfn=lfn, metadata=convert.metadata_to_proto(metadata))
        resp = self._t.unary(CATALOG, "SetMetadata", request, catalog_pb2.SetMetadataResponse)
        return convert.catalog_file_from_proto(resp.file)

    def lineage(self, lfn: str, *, max_depth: int = 0) -> t.Lineage:
        """Every ancestor and descendant of `lfn`, transitively through provenance (one call;
        the server walks each direction in one recursive query). max_depth 0: the server's limit."""
        request = catalog_pb2.GetLineageRequest(lfn=lfn, max_depth=max_depth)
        resp = self._t.unary(CATALOG, "GetLineage", request, catalog_pb2.GetLineageResponse)
        return t.Lineage(
            lfn=resp.lfn,
            ancestors=tuple(resp.ancestors),
            descendants=tuple(resp.descendants),
            truncated=resp.truncated,
        )


def _ref(production: str, name: str) -> transformation_pb2.TransformationRef:
    return transformation_pb2.TransformationRef(production=production, name=name)


class TransformationsAPI:
    def __init__(self, transport: Transport) -> None:
        self._t = transport

    def create(self, production: str, spec: str | Mapping[str, Any]) -> t.TransformationCreated:
        request = transformation_pb2.CreateTransformationRequest(production=production, spec=convert.spec_text(spec))
        resp = self._t.unary(
            TRANSFORMATIONS, "CreateTransformation", request, transformation_pb2.CreateTransformationResponse
        )
        return t.TransformationCreated(
            transformation=convert.transformation_from_proto(resp.transformation),
            warnings=convert.findings(resp.warnings),
        )

    def get(self, production: str, name: str) -> t.TransformationDetail:
        request = transformation_pb2.GetTransformationRequest(ref=_ref(production, name))
        resp = self._t.unary(
            TRANSFORMATIONS, "GetTransformation", request, transformation_pb2.GetTransformationResponse
        )
        return t.TransformationDetail(
            transformation=convert.transformation_from_proto(resp.transformation),
            files=convert.counts(resp.files),
            tasks=convert.counts(resp.tasks),
        )

    def list(self, production: str | None = None, status: str | None = None) -> builtins.list[t.Transformation]:
        request = transformation_pb2.ListTransformationsRequest(production=production or "", status=status or "")
        resp = self._t.unary(
            TRANSFORMATIONS, "ListTransformations", request, transformation_pb2.ListTransformationsResponse
        )
        return [convert.transformation_from_proto(m) for m in resp.transformations]

    def set_status(self, production: str, name: str, status: str, *, kill: bool = False) -> t.Transformation:
        request = transformation_pb2.SetTransformationStatusRequest(
            ref=_ref(production, name), status=status, kill=kill
        )
        resp = self._t.unary(
            TRANSFORMATIONS, "SetTransformationStatus", request, transformation_pb2.SetTransformationStatusResponse
        )
        return convert.transformation_from_proto(resp.transformation)

    def start(self, production: str, name: str) -> t.Transformation:
        return self.set_status(production, name, "Active")

    def stop(self, production: str, name: str, *, kill: bool = False) -> t.Transformation:
        return self.set_status(production, name, "Stopped", kill=kill)

    def files(
        self, production: str, name: str, status: str | None = None, limit: int = 0
    ) -> builtins.list[t.TransformationFile]:
        return list(self.file_listing(production, name, status, limit).files)

    def file_listing(
        self, production: str, name: str, status: str | None = None, limit: int = 0
    ) -> t.TransformationFiles:
        """`files`, with the number of files skipped as descendants of its own outputs."""
        request = transformation_pb2.ListTransformationFilesRequest(
            ref=_ref(production, name), status=status or "", limit=max(0, limit)
        )
        resp = self._t.unary(
            TRANSFORMATIONS, "ListTransformationFiles", request, transformation_pb2.ListTransformationFilesResponse
        )
        files = tuple(convert.transformation_file_from_proto(m) for m in resp.files)
        return t.TransformationFiles(files, resp.skipped_files)

    def tasks(self, production: str, name: str, status: str | None = None, limit: int = 0) -> builtins.list[t.Task]:
        request = transformation_pb2.ListTasksRequest(
            ref=_ref(production, name), status=status or "", limit=max(0, limit)
        )
        resp = self._t.unary(TRANSFORMATIONS, "ListTasks", request, transformation_pb2.ListTasksResponse)
        return [convert.task_from_proto(m) for m in resp.tasks]

    def reset(self, production: str, name: str, lfns: Sequence[str] = ()) -> int:
        """Put files back to Unused (all Problematic files when `lfns` is empty); the count."""
        request = transformation_pb2.ResetFilesRequest(ref=_ref(production, name), lfns=list(lfns))
        resp = self._t.unary(TRANSFORMATIONS, "ResetFiles", request, transformation_pb2.ResetFilesResponse)
        return resp.reset

    def close(self, production: str, name: str) -> t.Transformation:
        """Close a catalog-fed root's input: it ends once nothing is pending."""
        request = transformation_pb2.CloseTransformationRequest(ref=_ref(production, name))
        resp = self._t.unary(
            TRANSFORMATIONS, "CloseTransformation", request, transformation_pb2.CloseTransformationResponse
        )
        return convert.transformation_from_proto(resp.transformation)

    def retry(self, production: str, name: str, task_ids: Sequence[int] = ()) -> t.RetryResult:
        """Failed and Killed tasks (all, or the given ones) run again with a fresh attempt budget."""
        request = transformation_pb2.RetryTransformationRequest(ref=_ref(production, name), task_ids=list(task_ids))
        resp = self._t.unary(
            TRANSFORMATIONS, "RetryTransformation", request, transformation_pb2.RetryTransformationResponse
        )
        return convert.retry_result_from_proto(resp.result)

    def retry_task(self, task: int) -> t.RetryResult:
        request = transformation_pb2.RetryTaskRequest(task_id=task)
        resp = self._t.unary(TRANSFORMATIONS, "RetryTask", request, transformation_pb2.RetryTaskResponse)
        return convert.retry_result_from_proto(resp.result)

    def extend(self, production: str, name: str, count: int) -> t.Transformation:
        """A root with a task count gets `count` more tasks."""
        request = transformation_pb2.ExtendTransformationRequest(ref=_ref(production, name), count=count)
        resp = self._t.unary(
            TRANSFORMATIONS, "ExtendTransformation", request, transformation_pb2.ExtendTransformationResponse
        )
        return convert.transformation_from_proto(resp.transformation)

    def flush(self, production: str, name: str) -> int:
        """Partial groups become tasks now; the number of tasks made."""
        request = transformation_pb2.FlushTransformationRequest(ref=_ref(production, name))
        resp = self._t.unary(
            TRANSFORMATIONS, "FlushTransformation", request, transformation_pb2.FlushTransformationResponse
        )
        return resp.tasks

    def task_log(self, task: int, attempt: int = 0) -> t.TaskLog:
        request = transformation_pb2.GetTaskLogRequest(task=task, attempt=attempt)
        resp = self._t.unary(TRANSFORMATIONS, "GetTaskLog", request, transformation_pb2.GetTaskLogResponse)
        return t.TaskLog(task=resp.task, attempt=resp.attempt, log=resp.log)

    def task(self, task: int) -> t.TaskDetail:
        request = transformation_pb2.GetTaskRequest(task=task)
        resp = self._t.unary(TRANSFORMATIONS, "GetTask", request, transformation_pb2.GetTaskResponse)
        return convert.task_detail_from_proto(resp)

    def heartbeat(self, task: int, attempt: int) -> bool:
        """True while the attempt should go on; False when it was superseded or killed."""
        request = transformation_pb2.HeartbeatRequest(task=task, attempt=attempt)
        resp = self._t.unary(TRANSFORMATIONS, "Heartbeat", request, transformation_pb2.HeartbeatResponse)
        return resp.proceed

    def report_result(
        self,
        task: int,
        attempt: int,
        *,
        success: bool,
        error: str = "",
        exit_code: int = 0,
        outputs: Iterable[t.FileInput] = (),
    ) -> t.TaskReport:
        request = transformation_pb2.ReportTaskResultRequest(
            task=task,
            attempt=attempt,
            success=success,
            error=error,
            exit_code=exit_code,
            outputs=[convert.catalog_file_to_proto(o) for o in outputs],
        )
        resp = self._t.unary(TRANSFORMATIONS, "ReportTaskResult", request, transformation_pb2.ReportTaskResultResponse)
        return t.TaskReport(accepted=resp.accepted, status=resp.status)


class ProductionsAPI:
    def __init__(self, transport: Transport) -> None:
        self._t = transport

    def create(self, spec: str | Mapping[str, Any]) -> t.ProductionCreated:
        request = production_pb2.CreateProductionRequest(spec=convert.spec_text(spec))
        resp = self._t.unary(PRODUCTIONS, "CreateProduction", request, production_pb2.CreateProductionResponse)
        return t.ProductionCreated(
            production=convert.production_from_proto(resp.production), warnings=convert.findings(resp.warnings)
        )

    def validate(self, spec: str | Mapping[str, Any]) -> t.ValidationResult:
        request = production_pb2.ValidateProductionRequest(spec=convert.spec_text(spec))
        resp = self._t.unary(PRODUCTIONS, "ValidateProduction", request, production_pb2.ValidateProductionResponse)
        return t.ValidationResult(
            ok=resp.ok, errors=convert.findings(resp.errors), warnings=convert.findings(resp.warnings)
        )

    def add_transformation(self, production: str, spec: str | Mapping[str, Any]) -> t.TransformationCreated:
        request = production_pb2.AddTransformationRequest(production=production, spec=convert.spec_text(spec))
        resp = self._t.unary(PRODUCTIONS, "AddTransformation", request, production_pb2.AddTransformationResponse)
        return t.TransformationCreated(
            transformation=convert.transformation_from_proto(resp.transformation),
            warnings=convert.findings(resp.warnings),
        )

    def start(self, name: str) -> t.Production:
        request = production_pb2.StartProductionRequest(name=name)
        resp = self._t.unary(PRODUCTIONS, "StartProduction", request, production_pb2.StartProductionResponse)
        return convert.production_from_proto(resp.production)

    def stop(self, name: str, *, kill: bool = False) -> t.Production:
        request = production_pb2.StopProductionRequest(name=name, kill=kill)
        resp = self._t.unary(PRODUCTIONS, "StopProduction", request, production_pb2.StopProductionResponse)
        return convert.production_from_proto(resp.production)

    def delete(self, name: str, *, purge_outputs: bool = False) -> t.Production:
        """Delete: execution records go, produced files stay (unless `purge_outputs`)."""
        request = production_pb2.DeleteProductionRequest(name=name, purge_outputs=purge_outputs)
        resp = self._t.unary(PRODUCTIONS, "DeleteProduction", request, production_pb2.DeleteProductionResponse)
        return convert.production_from_proto(resp.production)

    def get(self, name: str) -> t.Production:
        request = production_pb2.GetProductionRequest(name=name)
        resp = self._t.unary(PRODUCTIONS, "GetProduction", request, production_pb2.GetProductionResponse)
        return convert.production_from_proto(resp.production)

    def list(self, status: str | None = None, *, all: bool = False) -> builtins.list[t.Production]:
        """Cleaned (deleted) productions are left out unless `all` (or asked for by status)."""
        request = production_pb2.ListProductionsRequest(status=status or "", all=all)
        resp = self._t.unary(PRODUCTIONS, "ListProductions", request, production_pb2.ListProductionsResponse)
        return [convert.production_from_proto(m) for m in resp.productions]

    def progress(self, name: str) -> t.Progress:
        request = production_pb2.GetProgressRequest(name=name)
        resp = self._t.unary(PRODUCTIONS, "GetProgress", request, production_pb2.GetProgressResponse)
        return convert.progress_from_proto(resp.progress)

    def close(self, name: str) -> builtins.list[str]:
        """Close the input of every catalog-fed root; the names of those closed."""
        request = production_pb2.CloseProductionRequest(name=name)
        resp = self._t.unary(PRODUCTIONS, "CloseProduction", request, production_pb2.CloseProductionResponse)
        return list(resp.closed)

    def history(self, name: str) -> builtins.list[t.ProductionEvent]:
        request = production_pb2.GetHistoryRequest(name=name)
        resp = self._t.unary(PRODUCTIONS, "GetHistory", request, production_pb2.GetHistoryResponse)
        return [convert.event_from_proto(e) for e in resp.events]

    def watch(self, name: str, interval: float = 0.0) -> Iterator[t.Progress]:
        """Progress snapshots pushed by the server every `interval` seconds (0: its default)
        until the stream ends; a dropped connection is re-established (with backoff)."""
        request = production_pb2.WatchProgressRequest(name=name, interval_seconds=max(0.0, interval))
        stream = self._t.server_stream(
            PRODUCTIONS, "WatchProgress", request, production_pb2.WatchProgressResponse, resume=True
        )
        for resp in stream:
            yield convert.progress_from_proto(resp.progress)


class AdminAPI:
    def __init__(self, transport: Transport) -> None:
        self._t = transport

    def create_token(self, name: str, role: str, owner: str = "", expires_at: datetime | None = None) -> t.NewToken:
        """A new token; `expires_at` (UTC-aware): when it stops being valid (None: until revoked)."""
        request = admin_pb2.CreateTokenRequest(name=name, role=role, owner=owner)
        if expires_at is not None:
            if expires_at.tzinfo is None:
                raise InvalidArgument("expires_at must be a timezone-aware datetime")
            request.expires_at.FromDatetime(expires_at)
        resp = self._t.unary(ADMIN, "CreateToken", request, admin_pb2.CreateTokenResponse)
        return t.NewToken(token=convert.token_from_proto(resp.token), secret=resp.secret)

    def list_tokens(self) -> builtins.list[t.Token]:
        resp = self._t.unary(ADMIN, "ListTokens", admin_pb2.ListTokensRequest(), admin_pb2.ListTokensResponse)
        return [convert.token_from_proto(m) for m in resp.tokens]

    def revoke_token(self, name: str) -> t.Token:
        request = admin_pb2.RevokeTokenRequest(name=name)
        resp = self._t.unary(ADMIN, "RevokeToken", request, admin_pb2.RevokeTokenResponse)
        return convert.token_from_proto(resp.token)

    def list_agents(self) -> builtins.list[t.Agent]:
        resp = self._t.unary(ADMIN, "ListAgents", admin_pb2.ListAgentsRequest(), admin_pb2.ListAgentsResponse)
        return [convert.agent_from_proto(m) for m in resp.agents]

    def whoami(self) -> t.Identity:
        resp = self._t.unary(ADMIN, "WhoAmI", admin_pb2.WhoAmIRequest(), admin_pb2.WhoAmIResponse)
        return convert.identity_from_proto(resp)
