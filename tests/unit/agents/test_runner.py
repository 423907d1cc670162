"""The agent runner on a real database: post-commit steps run only after a commit, and the
heartbeat rides in the cycle at most once a second unless the agent turns idle or busy."""

from __future__ import annotations

from metaprod.agents.runner import AgentRunner
from metaprod.db.models import AgentHeartbeat
from metaprod.db.session import Database
from sqlalchemy import select
from sqlalchemy.orm import Session


class Recorder:
    name = "recorder"
    wakes_on = frozenset({"tasks"})
    produces = frozenset({"done"})

    def __init__(self, statuses: list[str]) -> None:
        self.statuses = statuses
        self.committed: list[str] = []
        self._prepared = ""

    def run_once(self, session: Session) -> str:
        status = self.statuses.pop(0)
        self._prepared = status
        if status == "boom":
            raise RuntimeError("the cycle failed")
        return status

    def after_commit(self, database: Database) -> None:
        self.committed.append(self._prepared)


def last_status(database: Database) -> str | None:
    with database.session_scope(readonly=True) as session:
        return session.scalar(select(AgentHeartbeat.last_status).where(AgentHeartbeat.name == "recorder"))


def test_the_post_commit_step_follows_only_committed_cycles(database: Database) -> None:
    agent = Recorder(["claimed 3 tasks", "boom", "idle"])
    runner = AgentRunner(database, [agent])
    assert runner.cycle(agent) == "claimed 3 tasks"
    assert runner.cycle(agent).startswith("error: RuntimeError")
    assert runner.cycle(agent) == "idle"
    assert agent.committed == ["claimed 3 tasks", "idle"]  # nothing acted upon for "boom"


def test_a_busy_agent_beats_once_a_second_and_at_once_when_it_turns_idle(database: Database) -> None:
    agent = Recorder(["claimed 3 tasks", "claimed 5 tasks", "idle", "claimed 1 tasks"])
    runner = AgentRunner(database, [agent])
    runner.cycle(agent)
    assert last_status(database) == "claimed 3 tasks"
    runner.cycle(agent)
    assert last_status(database) == "claimed 3 tasks"  # busy still, within the second: no write
    runner.cycle(agent)
    assert last_status(database) == "idle"
    runner.cycle(agent)
    assert last_status(database) == "claimed 1 tasks"
