"""TransformationService servicer: convert, call db.transformations / db.jobs, convert back."""

from __future__ import annotations

import time
from collections.abc import Sequence

import grpc
from metaprod.core.auth import Principal, ensure_can_read
from metaprod.core.checkpoints import CheckpointListing, checkpoint_view
from metaprod.core.statuses import TransformationStatus
from metaprod.db import productions, recovery, reports, task_detail, transformations
from metaprod.db.models import Transformation
from metaprod.services import convert, leases, storage
from metaprod.services.batching import GroupCommitter
from metaprod.services.convert_production import (
    beat_from_pb,
    checkpoint_to_pb,
    file_row_to_pb,
    outcome_to_pb,
    report_from_pb,
    retry_result_to_pb,
    task_detail_to_pb,
    task_row_to_pb,
    transformation_to_pb,
)
from metaprod.services.server import ServiceBinding, ServiceContext
from metaprod.v1 import transformation_pb2 as pb
from metaprod.v1 import transformation_pb2_grpc as pb_grpc
from sqlalchemy.orm import Session


class TransformationServicer(pb_grpc.TransformationServiceServicer):
    def __init__(self, context: ServiceContext) -> None:
        self.ctx = context
        # Reports arriving together are written in one transaction (see GroupCommitter).
        self.reports: GroupCommitter[tuple[Sequence[reports.AttemptReport], Principal], list[reports.ReportOutcome]]
        self.reports = GroupCommitter(
            context.database,
            lambda session, item: reports.report_attempts(session=session, reports=item[0], principal=item[1]),
            name="reports",
        )
        context.on_close.append(self.reports.close)

    def _principal(self, context: grpc.ServicerContext) -> Principal:
        return self.ctx.authenticator.principal(context)

    def CreateTransformation(
        self, request: pb.CreateTransformationRequest, context: grpc.ServicerContext
    ) -> pb.CreateTransformationResponse:
        principal = self._principal(context)
        entry = productions.load_spec(request.spec)
        with self.ctx.database.session_scope() as session:
            t, warnings = productions.add_transformation(
                session=session, production_name=request.production, transformation=entry, principal=principal
            )
            parents = productions.parent_names(session=session, transformation_ids=[t.id]).get(t.id, [])
            return pb.CreateTransformationResponse(
                transformation=transformation_to_pb(t, request.production, parents),
                warnings=convert.findings_to_pb(warnings),
            )

    def GetTransformation(
        self, request: pb.GetTransformationRequest, context: grpc.ServicerContext
    ) -> pb.GetTransformationResponse:
        ensure_can_read(self._principal(context))
        with self.ctx.database.session_scope(readonly=True) as session:
            t = transformations.get_transformation(
                session=session, production=request.ref.production, name=request.ref.name
            )
            files, tasks = transformations.status_counts(session=session, transformation=t)
            parents = productions.parent_names(session=session, transformation_ids=[t.id]).get(t.id, [])
            return pb.GetTransformationResponse(
                transformation=transformation_to_pb(t, request.ref.production, parents), files=files, tasks=tasks
            )

    def ListTransformations(
        self, request: pb.ListTransformationsRequest, context: grpc.ServicerContext
    ) -> pb.ListTransformationsResponse:
        ensure_can_read(self._principal(context))
        with self.ctx.database.session_scope(readonly=True) as session:
            rows = transformations.list_transformations(
                session=session, production=request.production, status=request.status
            )
            parents = productions.parent_names(session=session, transformation_ids=[t.id for t in rows])
            names = productions.production_names(session=session, ids={t.production_id for t in rows})
            return pb.ListTransformationsResponse(
                transformations=[transformation_to_pb(t, names[t.production_id], parents.get(t.id, [])) for t in rows]
            )

    def SetTransformationStatus(
        self, request: pb.SetTransformationStatusRequest, context: grpc.ServicerContext
    ) -> pb.SetTransformationStatusResponse:
        principal = self._principal(context)
        with self.ctx.database.session_scope() as session:
            t = transformations.set_transformation_status(
                session=session,
                production=request.ref.production,
                name=request.ref.name,
                status=request.status,
                principal=principal,
                kill=request.kill,
            )
            parents = productions.parent_names(session=session, transformation_ids=[t.id]).get(t.id, [])
            message = transformation_to_pb(t, request.ref.production, parents)
            active = t.status == TransformationStatus.ACTIVE.value
        committed = time.monotonic()
        self.ctx.notify("transformation")
        if request.kill or not active:
            leases.outlast(committed)  # stop means stop: no attempt starts once this returns
        return pb.SetTransformationStatusResponse(transformation=message)

    def ListTransformationFiles(
        self, request: pb.ListTransformationFilesRequest, context: grpc.ServicerContext
    ) -> pb.ListTransformationFilesResponse:
        principal = self._principal(context)
        with self.ctx.database.session_scope(readonly=True) as session:
            rows = transformations.list_files(
                session=session,
                production=request.ref.production,
                name=request.ref.name,
                status=request.status,
                limit=request.limit,
                principal=principal,
            )
            t = transformations.get_transformation(
                session=session, production=request.ref.production, name=request.ref.name
            )
            skipped = transformations.skipped_count(session=session, transformation=t)
        return pb.ListTransformationFilesResponse(files=[file_row_to_pb(r) for r in rows], skipped_files=skipped)

    def ListTasks(self, request: pb.ListTasksRequest, context: grpc.ServicerContext) -> pb.ListTasksResponse:
        principal = self._principal(context)
        with self.ctx.database.session_scope(readonly=True) as session:
            rows = transformations.list_tasks(
                session=session,
                production=request.ref.production,
                name=request.ref.name,
                status=request.status,
                limit=request.limit,
                principal=principal,
            )
            return pb.ListTasksResponse(tasks=[task_row_to_pb(r, request.ref.name) for r in rows])

    def ResetFiles(self, request: pb.ResetFilesRequest, context: grpc.ServicerContext) -> pb.ResetFilesResponse:
        principal = self._principal(context)
        with self.ctx.database.session_scope() as session:
            count = recovery.reset_files(
                session=session,
                production=request.ref.production,
                name=request.ref.name,
                lfns=list(request.lfns),
                principal=principal,
            )
        self.ctx.notify("files")
        return pb.ResetFilesResponse(reset=count)

    def _transformation_pb(self, session: Session, t: Transformation, production: str) -> pb.Transformation:
        parents = productions.parent_names(session=session, transformation_ids=[t.id]).get(t.id, [])
        return transformation_to_pb(t, production, parents)

    def CloseTransformation(
        self, request: pb.CloseTransformationRequest, context: grpc.ServicerContext
    ) -> pb.CloseTransformationResponse:
        principal = self._principal(context)
        ref = request.ref
        with self.ctx.database.session_scope() as session:
            t = recovery.close_transformation(
                session=session, production=ref.production, name=ref.name, principal=principal
            )
            message = self._transformation_pb(session, t, ref.production)
        self.ctx.notify("transformation")
        return pb.CloseTransformationResponse(transformation=message)

    def RetryTransformation(
        self, request: pb.RetryTransformationRequest, context: grpc.ServicerContext
    ) -> pb.RetryTransformationResponse:
        principal = self._principal(context)
        ref = request.ref
        with self.ctx.database.session_scope() as session:
            result = recovery.retry(
                session=session,
                production=ref.production,
                name=ref.name,
                task_ids=list(request.task_ids),
                principal=principal,
            )
        self.ctx.notify("transformation")
        return pb.RetryTransformationResponse(result=retry_result_to_pb(result))

    def RetryTask(self, request: pb.RetryTaskRequest, context: grpc.ServicerContext) -> pb.RetryTaskResponse:
        principal = self._principal(context)
        with self.ctx.database.session_scope() as session:
            result = recovery.retry_task(session=session, task_id=request.task_id, principal=principal)
        self.ctx.notify("transformation")
        return pb.RetryTaskResponse(result=retry_result_to_pb(result))

    def ExtendTransformation(
        self, request: pb.ExtendTransformationRequest, context: grpc.ServicerContext
    ) -> pb.ExtendTransformationResponse:
        principal = self._principal(context)
        ref = request.ref
        with self.ctx.database.session_scope() as session:
            t = recovery.extend(
                session=session, production=ref.production, name=ref.name, count=request.count, principal=principal
            )
            message = self._transformation_pb(session, t, ref.production)
        self.ctx.notify("transformation")
        return pb.ExtendTransformationResponse(transformation=message)

    def FlushTransformation(
        self, request: pb.FlushTransformationRequest, context: grpc.ServicerContext
    ) -> pb.FlushTransformationResponse:
        principal = self._principal(context)
        ref = request.ref
        with self.ctx.database.session_scope() as session:
            made = recovery.flush(session=session, production=ref.production, name=ref.name, principal=principal)
        self.ctx.notify("tasks")
        return pb.FlushTransformationResponse(tasks=made)

    def GetTaskLog(self, request: pb.GetTaskLogRequest, context: grpc.ServicerContext) -> pb.GetTaskLogResponse:
        principal = self._principal(context)
        with self.ctx.database.session_scope(readonly=True) as session:
            attempt, text = transformations.task_log(
                session=session, task_id=request.task, attempt=request.attempt, principal=principal
            )
        return pb.GetTaskLogResponse(task=request.task, attempt=attempt, log=text)

    def GetTask(self, request: pb.GetTaskRequest, context: grpc.ServicerContext) -> pb.GetTaskResponse:
        principal = self._principal(context)
        with self.ctx.database.session_scope(readonly=True) as session:
            detail = task_detail.task_detail(session=session, task_id=request.task, principal=principal)
            response = task_detail_to_pb(detail)
            task_id, status, keep = detail.task.id, detail.task.status, detail.keep_checkpoints
        # The storage is read outside the transaction: a slow object store holds no connection.
        listing = (
            storage.list_checkpoint(self.ctx.storage, task_id)
            if self.ctx.storage
            else CheckpointListing("", error="this server was started without a storage")
        )
        response.checkpoint.CopyFrom(checkpoint_to_pb(checkpoint_view(listing, task_status=status, keep=keep)))
        return response

    def Heartbeat(self, request: pb.HeartbeatRequest, context: grpc.ServicerContext) -> pb.HeartbeatResponse:
        (outcome,) = self._beat([request], context)
        return pb.HeartbeatResponse(proceed=outcome.proceed, withdrawn=outcome.withdrawn)

    def BundleHeartbeat(
        self, request: pb.BundleHeartbeatRequest, context: grpc.ServicerContext
    ) -> pb.BundleHeartbeatResponse:
        lease = 0.0
        if request.lease:
            outcomes, lease = self._lease(request.attempts, context)
        else:
            outcomes = self._beat(request.attempts, context)
        return pb.BundleHeartbeatResponse(
            attempts=[pb.HeartbeatResponse(proceed=o.proceed, withdrawn=o.withdrawn) for o in outcomes],
            lease_seconds=lease,
        )

    def ReportTaskResult(
        self, request: pb.ReportTaskResultRequest, context: grpc.ServicerContext
    ) -> pb.ReportTaskResultResponse:
        (outcome,) = self._report([request], context)
        return outcome_to_pb(outcome)

    def ReportBundleResults(
        self, request: pb.ReportBundleResultsRequest, context: grpc.ServicerContext
    ) -> pb.ReportBundleResultsResponse:
        outcomes = self._report(request.results, context)
        return pb.ReportBundleResultsResponse(outcomes=[outcome_to_pb(o) for o in outcomes])

    def _beat(self, beats: Sequence[pb.HeartbeatRequest], context: grpc.ServicerContext) -> list[reports.BeatOutcome]:
        principal = self._principal(context)
        with self.ctx.database.session_scope() as session:
            return reports.record_heartbeats(
                session=session, beats=[beat_from_pb(b) for b in beats], principal=principal
            )

    def _lease(
        self, beats: Sequence[pb.HeartbeatRequest], context: grpc.ServicerContext
    ) -> tuple[list[reports.BeatOutcome], float]:
        """A start lease for attempts not started yet (see metaprod.services.leases): granted
        on a read-only check, the common case, which costs no write. Else the beats are
        recorded as queued, in a transaction whose locking reads decide (a stop that committed
        first wins: the attempts of a stopped transformation are withdrawn, those of killed
        tasks refused); those still to proceed then hold a lease from that decision."""
        principal = self._principal(context)
        keys = [(b.task, b.attempt) for b in beats]
        with self.ctx.database.session_scope(readonly=True) as session:
            granted = reports.may_start(session=session, keys=keys, principal=principal)
        if granted:
            return [reports.BeatOutcome(True)] * len(keys), leases.LEASE_SECONDS
        queued = [reports.Beat(task_id=t, attempt=a, queued=True) for t, a in keys]
        with self.ctx.database.session_scope() as session:
            outcomes = reports.record_heartbeats(session=session, beats=queued, principal=principal)
        return outcomes, leases.LEASE_SECONDS if any(o.proceed for o in outcomes) else 0.0

    def _report(
        self, results: Sequence[pb.ReportTaskResultRequest], context: grpc.ServicerContext
    ) -> list[reports.ReportOutcome]:
        item = ([report_from_pb(r) for r in results], self._principal(context))
        outcomes = self.reports.submit(item)
        if any(o.accepted for o in outcomes):
            self.ctx.notify("report")
        return outcomes


def bindings(context: ServiceContext) -> list[ServiceBinding]:
    return [
        ServiceBinding(
            TransformationServicer(context),
            pb_grpc.add_TransformationServiceServicer_to_server,
            pb.DESCRIPTOR.services_by_name["TransformationService"].full_name,
        )
    ]
