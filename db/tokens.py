"""API tokens, stored hashed, and the lookup that turns a bearer secret into a Principal."""

from __future__ import annotations

from metaprod.core.auth import Principal, Role, hash_secret, new_secret
from metaprod.core.errors import AlreadyExists, InvalidArgument, NotFound, Unauthenticated
from metaprod.core.limits import MAX_OWNER_CHARS, check_name, check_text, shown
from metaprod.db.models import ApiToken, JobAttempt, utcnow
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session


def create_token(*, session: Session, name: str, role: str, owner: str | None = None) -> tuple[ApiToken, str]:
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
    if session.scalar(select(ApiToken.id).where(ApiToken.name == name)) is not None:
        raise AlreadyExists(f"a token named {name!r} exists")
    secret = new_secret()
    token = ApiToken(name=name, token_hash=hash_secret(secret), role=parsed.value, owner=owner or name)
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
    """Resolve a bearer secret: an API token, or a job attempt's worker token."""
    digest = hash_secret(secret)
    token = session.scalar(select(ApiToken).where(ApiToken.token_hash == digest))
    if token is not None:
        if token.revoked_at is not None:
            raise Unauthenticated(f"token {token.name!r} was revoked")
        return Principal(name=token.name, role=Role(token.role), owner=token.owner)
    # A bundle's attempts share one token: any of them names it.
    attempt = session.execute(
        select(JobAttempt.task_id, JobAttempt.attempt).where(JobAttempt.token_hash == digest).limit(1)
    ).first()
    if attempt is not None:
        return Principal(
            name=f"worker-t{attempt.task_id}-a{attempt.attempt}", role=Role.WORKER, owner="worker", token_digest=digest
        )
    raise Unauthenticated("unknown token")
