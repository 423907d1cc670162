"""API tokens, stored hashed, and the lookup that turns a bearer secret into a Principal."""

from __future__ import annotations

from datetime import datetime

from metaprod.core.auth import Principal, Role, hash_secret, new_secret
from metaprod.core.errors import AlreadyExists, InvalidArgument, NotFound, Unauthenticated
from metaprod.core.limits import MAX_OWNER_CHARS, check_name, check_text, shown
from metaprod.core.statuses import AttemptStatus
from metaprod.db.models import ApiToken, JobAttempt, utcnow
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

# A worker token lives while one of its attempts is not yet finalized: a reported attempt
# still counts (its wrapper may retry a report whose answer it lost).
LIVE_WORKER_ATTEMPTS = frozenset(
    s.value for s in (AttemptStatus.SUBMITTED, AttemptStatus.RUNNING, AttemptStatus.REPORTED)
)


def create_token(
    *, session: Session, name: str, role: str, owner: str | None = None, expires_at: datetime | None = None
) -> tuple[ApiToken, str]:
    """Create a token and return it with its secret (shown once; only the hash is kept)."""
    check_name("token", name)
    if owner:
        check_text("owner", owner, MAX_OWNER_CHARS, newlines=False)
    try:
        parsed = Role(role)
    except ValueError:
        raise InvalidArgument(f"unknown role {shown(role)}: use admin, user or reader") from None
    if parsed is Role.WORKER:
        raise InvalidArgument("worker tokens are made by the agents for one task attempt each")
    if expires_at is not None and expires_at <= utcnow():
        raise InvalidArgument(f"expiry {expires_at.isoformat()} is not in the future")
    if session.scalar(select(ApiToken.id).where(ApiToken.name == name)) is not None:
        raise AlreadyExists(f"a token named {name!r} exists")
    secret = new_secret()
    token = ApiToken(
        name=name, token_hash=hash_secret(secret), role=parsed.value, owner=owner or name, expires_at=expires_at
    )
    session.add(token)
    try:
        with session.begin_nested():
            session.flush()
    except IntegrityError:
        raise AlreadyExists(f"a token named {name!r} exists") from None
    return token, secret


def list_tokens(*, session: Session) -> list[ApiToken]:
    return list(session.scalars(select(ApiToken).order_by(ApiToken.id)))


def revoke_token(*, session: Session, name: str) -> ApiToken:
    token = session.scalar(select(ApiToken).where(ApiToken.name == name))
    if token is None:
        raise NotFound(f"no token named {shown(name)}")
    if token.revoked_at is None:
        token.revoked_at = utcnow()
        session.flush()
    return token


def authenticate(*, session: Session, secret: str) -> Principal:
    """Resolve a bearer secret: an API token (not revoked, not expired), or the worker token
    of a bundle of job attempts, valid while one of them at least is live (not yet finalized)."""
    return authenticate_digest(session=session, digest=hash_secret(secret))


def authenticate_digest(*, session: Session, digest: str) -> Principal:
    """`authenticate`, given the secret's digest (see core.auth.hash_secret)."""
    token = session.execute(
        select(ApiToken.name, ApiToken.role, ApiToken.owner, ApiToken.revoked_at, ApiToken.expires_at).where(
            ApiToken.token_hash == digest
        )
    ).first()
    if token is not None:
        if token.revoked_at is not None:
            raise Unauthenticated(f"token {token.name!r} was revoked")
        if token.expires_at is not None and token.expires_at <= utcnow():
            raise Unauthenticated(f"token {token.name!r} expired at {token.expires_at.isoformat(timespec='seconds')}")
        return Principal(name=token.name, role=Role(token.role), owner=token.owner, expires_at=token.expires_at)
    # A bundle's attempts share one token: any of them names it; a live one keeps it valid.
    attempts = session.execute(
        select(JobAttempt.task_id, JobAttempt.attempt, JobAttempt.status)
        .where(JobAttempt.token_hash == digest)
        .order_by(JobAttempt.id)
    ).all()
    if attempts:
        live = [a for a in attempts if a.status in LIVE_WORKER_ATTEMPTS]
        if not live:
            first = attempts[0]
            raise Unauthenticated(
                f"worker token of task {first.task_id} attempt {first.attempt} is no longer valid:"
                " every attempt it was made for has ended"
            )
        return Principal(
            name=f"worker-t{live[0].task_id}-a{live[0].attempt}", role=Role.WORKER, owner="worker", token_digest=digest
        )
    raise Unauthenticated("unknown token")
