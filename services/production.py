"""ProductionManager servicer: convert, call db.productions, convert back."""

from __future__ import annotations

import time
from collections.abc import Iterator

import grpc
from metaprod.core.auth import Principal, ensure_can_read
from metaprod.core.statuses import PRODUCTION_OUTCOMES, ProductionStatus
from metaprod.db import cleaning, events, listing, productions, recovery
from metaprod.db.models import Production
from metaprod.services import convert, leases
from metaprod.services.convert_production import (
    event_to_pb,
    listing_to_pb,
    production_to_pb,
    progress_to_pb,
    transformation_to_pb,
)
from metaprod.services.server import ServiceBinding, ServiceContext
from metaprod.v1 import production_pb2 as pb
from metaprod.v1 import production_pb2_grpc as pb_grpc
from sqlalchemy.orm import Session

DEFAULT_WATCH_SECONDS = 1.0
# A watch ends when the production has ended (it may reopen later, but the watcher asked
# how this run ends) or is gone.
TERMINAL = {s.value for s in PRODUCTION_OUTCOMES} | {ProductionStatus.CLEANED.value}


class ProductionServicer(pb_grpc.ProductionManagerServicer):
    def __init__(self, context: ServiceContext) -> None:
        self.ctx = context

    def _principal(self, context: grpc.ServicerContext) -> Principal:
        return self.ctx.authenticator.principal(context)

    def _production_pb(self, session: Session, production: Production) -> pb.Production:
        transformations = productions.transformations_of(session=session, production=production)
        parents = productions.parents_by_child(session=session, production=production)
        return production_to_pb(production, transformations, parents)

    def CreateProduction(
        self, request: pb.CreateProductionRequest, context: grpc.ServicerContext
    ) -> pb.CreateProductionResponse:
        principal = self._principal(context)
        spec = productions.load_spec(request.spec)
        with self.ctx.database.session_scope() as session:
            created = productions.create_production(session=session, spec=spec, principal=principal)
            return pb.CreateProductionResponse(
                production=self._production_pb(session, created.production),
                warnings=convert.findings_to_pb(created.warnings),
            )

    def ValidateProduction(
        self, request: pb.ValidateProductionRequest, context: grpc.ServicerContext
    ) -> pb.ValidateProductionResponse:
        ensure_can_read(self._principal(context))
        spec = productions.load_spec(request.spec)
        with self.ctx.database.session_scope(readonly=True) as session:
            result = productions.validate(session=session, spec=spec)
        return pb.ValidateProductionResponse(
            ok=result.ok, errors=convert.findings_to_pb(result.errors), warnings=convert.findings_to_pb(result.warnings)
        )

    def AddTransformation(
        self, request: pb.AddTransformationRequest, context: grpc.ServicerContext
    ) -> pb.AddTransformationResponse:
        principal = self._principal(context)
        entry = productions.load_spec(request.spec)
        with self.ctx.database.session_scope() as session:
            t, warnings = productions.add_transformation(
                session=session, production_name=request.production, transformation=entry, principal=principal
            )
            parents = productions.parent_list(entry)
            return pb.AddTransformationResponse(
                transformation=transformation_to_pb(t, request.production, parents),
                warnings=convert.findings_to_pb(warnings),
            )

    def _move(
        self, name: str, target: ProductionStatus, context: grpc.ServicerContext, kill: bool = False
    ) -> pb.Production:
        principal = self._principal(context)
        with self.ctx.database.session_scope() as session:
            production = productions.set_production_status(
                session=session, name=name, target=target, principal=principal, kill=kill
            )
            message = self._production_pb(session, production)
        committed = time.monotonic()
        self.ctx.notify("production")
        if kill or target != ProductionStatus.ACTIVE:
            leases.outlast(committed)  # stop means stop: no attempt starts once this returns
        return message

    def StartProduction(
        self, request: pb.StartProductionRequest, context: grpc.ServicerContext
    ) -> pb.StartProductionResponse:
        return pb.StartProductionResponse(production=self._move(request.name, ProductionStatus.ACTIVE, context))

    def StopProduction(
        self, request: pb.StopProductionRequest, context: grpc.ServicerContext
    ) -> pb.StopProductionResponse:
        return pb.StopProductionResponse(
            production=self._move(request.name, ProductionStatus.STOPPED, context, kill=request.kill)
        )

    def DeleteProduction(
        self, request: pb.DeleteProductionRequest, context: grpc.ServicerContext
    ) -> pb.DeleteProductionResponse:
        principal = self._principal(context)
        with self.ctx.database.session_scope() as session:
            production = cleaning.request_delete(
                session=session, name=request.name, principal=principal, purge_outputs=request.purge_outputs
            )
            message = self._production_pb(session, production)
        committed = time.monotonic()
        self.ctx.notify("production")
        leases.outlast(committed)  # its tasks were killed: none starts once this returns
        return pb.DeleteProductionResponse(production=message)

    def GetProduction(
        self, request: pb.GetProductionRequest, context: grpc.ServicerContext
    ) -> pb.GetProductionResponse:
        ensure_can_read(self._principal(context))
        with self.ctx.database.session_scope(readonly=True) as session:
            production = productions.get_production(session=session, name=request.name)
            return pb.GetProductionResponse(production=self._production_pb(session, production))

    def ListProductions(
        self, request: pb.ListProductionsRequest, context: grpc.ServicerContext
    ) -> pb.ListProductionsResponse:
        ensure_can_read(self._principal(context))
        with self.ctx.database.session_scope(readonly=True) as session:
            rows = listing.list_productions(session=session, status=request.status, include_cleaned=request.all)
            # Three queries for the whole list (not three per production): a thousand
            # productions list as fast as one.
            by_production = listing.transformations_by_production(session=session, production_ids=[p.id for p in rows])
            parents = productions.parent_names(
                session=session, transformation_ids=[t.id for ts in by_production.values() for t in ts]
            )
        return listing_to_pb(rows, by_production, parents)

    def _progress(self, name: str, principal: Principal) -> pb.Progress:
        with self.ctx.database.session_scope(readonly=True) as session:
            return progress_to_pb(productions.production_progress(session=session, name=name, principal=principal))

    def GetProgress(self, request: pb.GetProgressRequest, context: grpc.ServicerContext) -> pb.GetProgressResponse:
        return pb.GetProgressResponse(progress=self._progress(request.name, self._principal(context)))

    def WatchProgress(
        self, request: pb.WatchProgressRequest, context: grpc.ServicerContext
    ) -> Iterator[pb.WatchProgressResponse]:
        principal = self._principal(context)
        interval = request.interval_seconds if request.interval_seconds > 0 else DEFAULT_WATCH_SECONDS
        previous: pb.Progress | None = None
        while context.is_active():
            progress = self._progress(request.name, principal)
            if progress != previous:
                yield pb.WatchProgressResponse(progress=progress)
                previous = progress
            if progress.status in TERMINAL:
                return
            time.sleep(max(0.05, interval))

    def CloseProduction(
        self, request: pb.CloseProductionRequest, context: grpc.ServicerContext
    ) -> pb.CloseProductionResponse:
        principal = self._principal(context)
        with self.ctx.database.session_scope() as session:
            closed = recovery.close_production(session=session, name=request.name, principal=principal)
        self.ctx.notify("transformation")
        return pb.CloseProductionResponse(closed=closed)

    def GetHistory(self, request: pb.GetHistoryRequest, context: grpc.ServicerContext) -> pb.GetHistoryResponse:
        ensure_can_read(self._principal(context))
        with self.ctx.database.session_scope(readonly=True) as session:
            production = productions.get_production(session=session, name=request.name)
            entries = events.history(session=session, production=production)
        return pb.GetHistoryResponse(events=[event_to_pb(e) for e in entries])


def bindings(context: ServiceContext) -> list[ServiceBinding]:
    return [
        ServiceBinding(
            ProductionServicer(context),
            pb_grpc.add_ProductionManagerServicer_to_server,
            pb.DESCRIPTOR.services_by_name["ProductionManager"].full_name,
        )
    ]
