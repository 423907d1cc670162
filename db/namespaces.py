"""Output namespaces: the first segment of the LFNs a production's tasks write.

A production's namespace is chosen once, when it is created: its name, or else the first
free `name@2`, `name@3`, ... A namespace is free when no production holds it and no file of
the catalog lies under it: a production made under the name of deleted ones (whose outputs
the catalog keeps), or under a name whose `/name/` somebody had already imported files into,
writes elsewhere, so nothing catalogued before it can collide with one of its outputs. Once
it is held, only its tasks (and admins) write there: see core.auth.ensure_may_write_namespace.
"""

from __future__ import annotations

from metaprod.db.models import CatalogFile, Production
from sqlalchemy import select
from sqlalchemy.orm import Session


def choose_namespace(*, session: Session, name: str) -> str:
    """The namespace of a new production called `name` (see the module's docstring)."""
    held = set(session.scalars(select(Production.namespace).where(Production.name == name)))
    rank = 1
    while True:
        candidate = name if rank == 1 else f"{name}@{rank}"
        if candidate not in held and not _holds_files(session, candidate) and not _is_held(session, candidate):
            return candidate
        rank += 1


def _is_held(session: Session, namespace: str) -> bool:
    found = session.scalar(select(Production.namespace).where(Production.namespace == namespace).limit(1))
    return found is not None and found == namespace  # exactly (MariaDB's PAD SPACE)


def _holds_files(session: Session, namespace: str) -> bool:
    """Whether a catalogued LFN starts with `/namespace/`: a range of the LFN index (code-point
    order on both databases; '0' follows '/')."""
    low, high = f"/{namespace}/", f"/{namespace}0"
    return (
        session.scalar(select(CatalogFile.id).where(CatalogFile.lfn >= low, CatalogFile.lfn < high).limit(1))
        is not None
    )
