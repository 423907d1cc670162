"""Admin servicer: tokens, agent heartbeats, and who the caller is."""

from __future__ import annotations

import grpc
from metaprod.core.auth import Role, ensure_admin, ensure_can_grant, ensure_can_read
from metaprod.core.errors import InvalidArgument
from metaprod.db import agents_status, tokens
from metaprod.services import convert
from metaprod.services.auth import forget_tokens
from metaprod.services.server import ServiceBinding, ServiceContext
from metaprod.v1 import admin_pb2 as pb
from metaprod.v1 import admin_pb2_grpc as pb_grpc


class AdminServicer(pb_grpc.AdminServicer):
    def __init__(self, context: ServiceContext) -> None:
        self.ctx = context

    def CreateToken(self, request: pb.CreateTokenRequest, context: grpc.ServicerContext) -> pb.CreateTokenResponse:
        principal = self.ctx.authenticator.principal(context)
        try:
            role = Role(request.role)
        except ValueError:
            ensure_admin(principal)
            raise InvalidArgument(f"unknown role {request.role!r}: use admin, user or reader") from None
        ensure_can_grant(principal, role)
        expires_at = convert.datetime_from_pb(request.expires_at) if request.HasField("expires_at") else None
        with self.ctx.database.session_scope() as session:
            token, secret = tokens.create_token(
                session=session,
                name=request.name,
                role=request.role,
                owner=request.owner or None,
                expires_at=expires_at,
            )
            return pb.CreateTokenResponse(token=convert.token_to_pb(token), secret=secret)

    def ListTokens(self, request: pb.ListTokensRequest, context: grpc.ServicerContext) -> pb.ListTokensResponse:
        ensure_admin(self.ctx.authenticator.principal(context))
        with self.ctx.database.session_scope(readonly=True) as session:
            return pb.ListTokensResponse(tokens=[convert.token_to_pb(t) for t in tokens.list_tokens(session=session)])

    def RevokeToken(self, request: pb.RevokeTokenRequest, context: grpc.ServicerContext) -> pb.RevokeTokenResponse:
        ensure_admin(self.ctx.authenticator.principal(context))
        with self.ctx.database.session_scope() as session:
            revoked = convert.token_to_pb(tokens.revoke_token(session=session, name=request.name))
        forget_tokens()  # committed: this process stops trusting the token at once
        return pb.RevokeTokenResponse(token=revoked)

    def ListAgents(self, request: pb.ListAgentsRequest, context: grpc.ServicerContext) -> pb.ListAgentsResponse:
        ensure_can_read(self.ctx.authenticator.principal(context))
        with self.ctx.database.session_scope(readonly=True) as session:
            rows = agents_status.list_agents(session=session)
            return pb.ListAgentsResponse(agents=[convert.agent_to_pb(row, alive) for row, alive in rows])

    def WhoAmI(self, request: pb.WhoAmIRequest, context: grpc.ServicerContext) -> pb.WhoAmIResponse:
        principal = self.ctx.authenticator.principal(context)
        return pb.WhoAmIResponse(name=principal.name, role=principal.role.value, owner=principal.owner)


def bindings(context: ServiceContext) -> list[ServiceBinding]:
    return [
        ServiceBinding(
            AdminServicer(context),
            pb_grpc.add_AdminServicer_to_server,
            pb.DESCRIPTOR.services_by_name["Admin"].full_name,
        )
    ]
