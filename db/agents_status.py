"""Agent heartbeats: each agent process beats once per cycle; `agents status` reads them."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from datetime import timedelta

from metaprod.db.models import AgentHeartbeat, CatalogFile, JobAttempt, Production, Task, Transformation, utcnow
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

# An agent that has not beaten for this long is reported dead.
ALIVE_WINDOW = timedelta(seconds=60)


@dataclass(frozen=True)
class Cycles:
    """Cycles run since the previous beat, their summed duration, and the last one's."""

    count: int = 0
    seconds: float = 0.0
    last_seconds: float | None = None


NO_CYCLES = Cycles()


def beat(*, session: Session, name: str, status: str, stopped: bool = False, cycles: Cycles = NO_CYCLES) -> None:
    host, pid = socket.gethostname(), os.getpid()
    now = utcnow()
    values: dict[str, object] = {
        "last_beat": now,
        "last_status": status[:2000],
        "stopped": stopped,
        "cycles": AgentHeartbeat.cycles + cycles.count,
        "cycle_seconds_total": AgentHeartbeat.cycle_seconds_total + cycles.seconds,
    }
    if cycles.last_seconds is not None:
        values["last_cycle_seconds"] = cycles.last_seconds
    updated = session.execute(
        update(AgentHeartbeat)
        .where(AgentHeartbeat.name == name, AgentHeartbeat.host == host, AgentHeartbeat.pid == pid)
        .values(**values)
    ).rowcount  # type: ignore[attr-defined]
    if not updated:
        session.add(
            AgentHeartbeat(
                name=name,
                host=host,
                pid=pid,
                started_at=now,
                last_beat=now,
                last_status=status[:2000],
                stopped=stopped,
                cycles=cycles.count,
                cycle_seconds_total=cycles.seconds,
                last_cycle_seconds=cycles.last_seconds or 0.0,
            )
        )
    session.flush()


def list_agents(*, session: Session) -> list[tuple[AgentHeartbeat, bool]]:
    now = utcnow()
    rows = session.scalars(
        select(AgentHeartbeat).order_by(AgentHeartbeat.name, AgentHeartbeat.host, AgentHeartbeat.pid)
    )
    return [(row, not row.stopped and now - row.last_beat < ALIVE_WINDOW) for row in rows]


def work_signature(*, session: Session) -> dict[str, object]:
    """Cheap marks of new work, for agent processes that run apart from the services and so
    get no in-process wake-up: a change of a mark wakes the agents interested in it."""

    return {
        "files": session.scalar(select(func.max(CatalogFile.id))),
        "tasks": session.scalar(select(func.max(Task.id))),
        "report": session.scalar(select(func.count()).where(JobAttempt.status == "Reported")),
        "transformation": session.scalar(select(func.max(Transformation.updated_at))),
        "production": session.scalar(select(func.max(Production.updated_at))),
    }
