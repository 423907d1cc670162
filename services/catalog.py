"""FileCatalog servicer: typed fields, streamed registration, streamed metaquery search."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor

import grpc
from metaprod.core.auth import Principal, ensure_can_read, ensure_can_write
from metaprod.core.errors import DomainError, InvalidArgument
from metaprod.db import catalog, lineage
from metaprod.services import convert
from metaprod.services.convert_catalog import field_to_pb, file_input_from_pb, file_to_pb
from metaprod.services.server import ServiceBinding, ServiceContext
from metaprod.v1 import catalog_pb2 as pb
from metaprod.v1 import catalog_pb2_grpc as pb_grpc

# Files per registration transaction: large enough that per-transaction costs (commit, fsync,
# router version check) vanish, small enough that no stream holds locks or undo for long.
REGISTER_BATCH = 10_000
FIND_BATCH = 1_000


class FileCatalogServicer(pb_grpc.FileCatalogServicer):
    def __init__(self, context: ServiceContext) -> None:
        self.ctx = context

    def AddField(self, request: pb.AddFieldRequest, context: grpc.ServicerContext) -> pb.AddFieldResponse:
        ensure_can_write(self.ctx.authenticator.principal(context))
        with self.ctx.database.session_scope() as session:
            field, created = catalog.add_field(session=session, name=request.name, type=request.type)
            return pb.AddFieldResponse(field=field_to_pb(field), created=created)

    def ListFields(self, request: pb.ListFieldsRequest, context: grpc.ServicerContext) -> pb.ListFieldsResponse:
        ensure_can_read(self.ctx.authenticator.principal(context))
        with self.ctx.database.session_scope(readonly=True) as session:
            return pb.ListFieldsResponse(fields=[field_to_pb(f) for f in catalog.list_fields(session=session)])

    def RegisterFiles(
        self, request_iterator: Iterable[pb.RegisterFilesRequest], context: grpc.ServicerContext
    ) -> pb.RegisterFilesResponse:
        """Register a stream of files, REGISTER_BATCH per transaction.

        Each batch is validated as a whole and committed on its own, so a long stream never
        holds one huge transaction. A batch is all-or-nothing; a failed batch ends the call
        with its error, and the batches committed before it stay registered (the error
        message says how many files that is). Agents are woken after every batch.
        """
        principal = self.ctx.authenticator.principal(context)
        ensure_can_write(principal)
        committer = _Committer(self.ctx, principal)
        pending: list[catalog.FileInput] = []
        first = True
        try:
            try:
                for request in request_iterator:
                    if first:
                        committer.skip_existing, first = request.skip_existing, False
                    for msg in request.files:
                        if msg.has_provenance or msg.HasField("provenance"):
                            raise InvalidArgument(
                                f"file {msg.lfn!r}: provenance is recorded by the system when a task's outputs "
                                "are registered; it cannot be given here"
                            )
                        pending.append(file_input_from_pb(msg))
                    while len(pending) >= REGISTER_BATCH:
                        committer.submit(pending[:REGISTER_BATCH])
                        del pending[:REGISTER_BATCH]
                committer.finish(pending)
            except DomainError:
                committer.wait()  # a failure of the batch before comes first
                raise
        except DomainError as exc:
            done = committer.registered + committer.skipped
            if not done:
                raise
            skipped = f", {committer.skipped} of them skipped as already there" if committer.skipped else ""
            note = f" ({done} files of earlier batches of this stream were registered{skipped})"
            raise type(exc)(exc.message + note, details=exc.details) from None
        finally:
            committer.close()
        return pb.RegisterFilesResponse(
            registered=committer.registered, attached=committer.attached, skipped=committer.skipped
        )

    def FindFiles(self, request: pb.FindFilesRequest, context: grpc.ServicerContext) -> Iterator[pb.FindFilesResponse]:
        """Matching files in catalog order, FIND_BATCH per message. The ids are selected a
        chunk at a time (catalog.FIND_ID_CHUNK, one query), each batch's rows read in a
        transaction of its own, and the connection is back in the pool before the batch is
        sent: a client that reads slowly, or stalls, holds no database connection."""
        ensure_can_read(self.ctx.authenticator.principal(context))
        if request.limit < 0:
            raise InvalidArgument(f"limit must be 0 (no limit) or positive, not {request.limit}")
        left, after_id = request.limit or None, 0
        while left is None or left > 0:
            want = catalog.FIND_ID_CHUNK if left is None else min(catalog.FIND_ID_CHUNK, left)
            with self.ctx.database.session_scope(readonly=True) as session:
                ids = catalog.matching_file_ids(session=session, query=request.query, after_id=after_id, limit=want)
            for start in range(0, len(ids), FIND_BATCH):
                with self.ctx.database.session_scope(readonly=True) as session:
                    page = catalog.file_records(
                        session=session, ids=ids[start : start + FIND_BATCH], with_metadata=request.with_metadata
                    )
                if page:
                    yield pb.FindFilesResponse(files=[file_to_pb(record) for record in page])
                if not context.is_active():
                    return
            if len(ids) < want:
                return
            after_id = ids[-1]
            if left is not None:
                left -= len(ids)

    def GetFile(self, request: pb.GetFileRequest, context: grpc.ServicerContext) -> pb.GetFileResponse:
        ensure_can_read(self.ctx.authenticator.principal(context))
        with self.ctx.database.session_scope(readonly=True) as session:
            return pb.GetFileResponse(file=file_to_pb(catalog.get_file(session=session, lfn=request.lfn)))

    def SetMetadata(self, request: pb.SetMetadataRequest, context: grpc.ServicerContext) -> pb.SetMetadataResponse:
        principal = self.ctx.authenticator.principal(context)
        ensure_can_write(principal)
        metadata = convert.metadata_from_pb(request.metadata)
        with self.ctx.database.session_scope() as session:
            record = catalog.set_metadata(session=session, lfn=request.lfn, metadata=metadata, principal=principal)
        # New metadata may have attached the file to a transformation.
        self.ctx.notify("files")
        return pb.SetMetadataResponse(file=file_to_pb(record))

    def GetLineage(self, request: pb.GetLineageRequest, context: grpc.ServicerContext) -> pb.GetLineageResponse:
        ensure_can_read(self.ctx.authenticator.principal(context))
        with self.ctx.database.session_scope(readonly=True) as session:
            found = lineage.lineage(session=session, lfn=request.lfn, max_depth=request.max_depth or lineage.MAX_DEPTH)
        return pb.GetLineageResponse(
            lfn=found.lfn, ancestors=found.ancestors, descendants=found.descendants, truncated=found.truncated
        )


class _Committer:
    """Commits a stream's batches in order, one at a time, on a worker thread: the handler
    thread meanwhile reads and converts the next batch (Python work), while the database
    step runs mostly outside the GIL."""

    def __init__(self, ctx: ServiceContext, importer: Principal) -> None:
        self.ctx = ctx
        self.importer = importer
        self.registered = self.attached = self.skipped = 0
        self.skip_existing = False
        self._pool: ThreadPoolExecutor | None = None
        self._inflight: Future[catalog.RegisterResult] | None = None

    def _commit(self, files: list[catalog.FileInput]) -> catalog.RegisterResult:
        with self.ctx.database.session_scope() as session:
            result = catalog.register_files(
                session=session, files=files, skip_existing=self.skip_existing, importer=self.importer
            )
        self.ctx.notify("files")
        return result

    def _count(self, result: catalog.RegisterResult) -> None:
        self.registered += result.registered
        self.attached += result.attached
        self.skipped += result.skipped

    def submit(self, files: list[catalog.FileInput]) -> None:
        self.wait()
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="catalog-register")
        self._inflight = self._pool.submit(self._commit, files)

    def wait(self) -> None:
        inflight, self._inflight = self._inflight, None
        if inflight is not None:
            self._count(inflight.result())

    def finish(self, files: list[catalog.FileInput]) -> None:
        """Commit the last batch here, after the one in flight."""
        self.wait()
        if files:
            self._count(self._commit(files))

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)


def bindings(context: ServiceContext) -> list[ServiceBinding]:
    return [
        ServiceBinding(
            FileCatalogServicer(context),
            pb_grpc.add_FileCatalogServicer_to_server,
            pb.DESCRIPTOR.services_by_name["FileCatalog"].full_name,
        )
    ]
