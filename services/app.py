"""Assembly of the services: which servicers exist and how they bind to one server."""

from __future__ import annotations

import grpc
from metaprod.db.session import Database
from metaprod.services.auth import Authenticator
from metaprod.services.server import MetaprodServer, ServiceBinding, ServiceContext


def build_bindings(context: ServiceContext) -> list[ServiceBinding]:
    # Imported here so that each servicer module stays importable on its own.
    from metaprod.services.admin import bindings as admin_bindings
    from metaprod.services.catalog import bindings as catalog_bindings
    from metaprod.services.production import bindings as production_bindings
    from metaprod.services.transformation import bindings as transformation_bindings

    return [
        *admin_bindings(context),
        *catalog_bindings(context),
        *transformation_bindings(context),
        *production_bindings(context),
    ]


def build_server(
    database: Database,
    *,
    address: str = "127.0.0.1:50051",
    max_workers: int = 32,
    credentials: grpc.ServerCredentials | None = None,
    storage: str = "",
) -> MetaprodServer:
    context = ServiceContext(database=database, authenticator=Authenticator(database), storage=storage)
    context.on_close.append(context.authenticator.close)
    return MetaprodServer(
        context, build_bindings(context), address=address, max_workers=max_workers, credentials=credentials
    )
