"""TransformationService servicer: convert, call db.transformations / db.jobs, convert back."""

from __future__ import annotations

import grpc
from metaprod.core.auth import Principal, ensure_can_read, ensure_worker_for
from metaprod.db import jobs, productions, transformations
from metaprod.services import convert
from metaprod.services.batching import GroupCommitter
from metaprod.services.convert_catalog import file_input_from_pb
from metaprod.services.convert_production import file_row_to_pb, task_row_to_pb, transformation_to_pb
from metaprod.services.server import ServiceBinding, ServiceContext
from metaprod.v1 import transformation_pb2 as pb
from metaprod.v1 import transformation_pb2_grpc as pb_grpc
from sqlalchemy.orm import Session


class TransformationServicer(pb_grpc.TransformationServiceServicer):
    def __init__(self, context: ServiceContext) -> None:
        self.ctx = context
        self.reports: GroupCommitter[jobs.AttemptReport, jobs.ReportOutcome] = GroupCommitter(
            context.database,
            lambda session, report: jobs.report_attempt(session=session, report=report),
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
        self.ctx.notify("transformation")
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
        return pb.ListTransformationFilesResponse(files=[file_row_to_pb(r) for r in rows])

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
            count = transformations.reset_files(
                session=session,
                production=request.ref.production,
                name=request.ref.name,
                lfns=list(request.lfns),
                principal=principal,
            )
        self.ctx.notify("files")
        return pb.ResetFilesResponse(reset=count)

    def GetTaskLog(self, request: pb.GetTaskLogRequest, context: grpc.ServicerContext) -> pb.GetTaskLogResponse:
        principal = self._principal(context)
        with self.ctx.database.session_scope(readonly=True) as session:
            attempt, text = transformations.task_log(
                session=session, task_id=request.task, attempt=request.attempt, principal=principal
            )
        return pb.GetTaskLogResponse(task=request.task, attempt=attempt, log=text)

    def Heartbeat(self, request: pb.HeartbeatRequest, context: grpc.ServicerContext) -> pb.HeartbeatResponse:
        ensure_worker_for(self._principal(context), request.task, request.attempt)
        with self.ctx.database.session_scope() as session:
            proceed = jobs.record_heartbeat(session=session, task_id=request.task, attempt=request.attempt)
        return pb.HeartbeatResponse(proceed=proceed)

    def ReportTaskResult(
        self, request: pb.ReportTaskResultRequest, context: grpc.ServicerContext
    ) -> pb.ReportTaskResultResponse:
        ensure_worker_for(self._principal(context), request.task, request.attempt)
        report = jobs.AttemptReport(
            task_id=request.task,
            attempt=request.attempt,
            success=request.success,
            error=request.error,
            exit_code=request.exit_code,
            outputs=tuple(file_input_from_pb(f) for f in request.outputs),
        )
        outcome = self.reports.submit(report)
        if outcome.accepted:
            self.ctx.notify("report")
        return pb.ReportTaskResultResponse(accepted=outcome.accepted, status=outcome.status)


def _store_report(session: Session, report: jobs.AttemptReport) -> jobs.ReportOutcome:
    return jobs.report_attempt(session=session, report=report)


def bindings(context: ServiceContext) -> list[ServiceBinding]:
    return [
        ServiceBinding(
            TransformationServicer(context),
            pb_grpc.add_TransformationServiceServicer_to_server,
            pb.DESCRIPTOR.services_by_name["TransformationService"].full_name,
        )
    ]
