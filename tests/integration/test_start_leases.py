"""Start leases through the services (see metaprod.services.leases): granted on reads alone
while a bundle's attempts may start; a stop returns only once the leases granted before it
have run out, and after it a lease is refused and the attempts are withdrawn, uncounted."""

from __future__ import annotations

import time

from metaprod.agents.reporting import Reporter
from metaprod.clients import Client
from metaprod.db import jobs
from metaprod.db.models import Task
from metaprod.db.session import Database
from metaprod.services import leases

from tests.integration.conftest import RunningServer
from tests.unit.db.test_jobs import claim
from tests.unit.db.test_reports import states
from tests.unit.db.test_tasks import cycle, setup


def bundle(database: Database) -> tuple[list[tuple[int, int]], str]:
    """Three claimed attempts of transformation p/t sharing one job (and worker token)."""
    tid = setup(database, {"group_size": 1}, 3)
    cycle(database, tid)
    claimed = [j for j in claim(database) if j.transformation == "t"]
    with database.session_scope() as session:
        plans = [[jobs.PlannedAttempt(j.attempt_id, f"/scratch/{j.task_id}", "/log") for j in claimed]]
        (secret,) = jobs.record_job_plans(session=session, plans=plans)
    assert secret is not None
    return [(j.task_id, j.attempt) for j in claimed], secret


def test_a_stop_outlasts_the_leases_granted_before_it(server: RunningServer, admin: Client) -> None:
    keys, secret = bundle(server.database)
    reporter = Reporter(server.address, secret)
    sent = time.monotonic()
    answers, seconds = reporter.lease(keys)
    assert [a.proceed for a in answers] == [True] * 3 and seconds == leases.LEASE_SECONDS
    # Granted on reads: the attempts are still Submitted, as are their tasks.
    assert {states(server.database)[task] for task, _ in keys} == {("Submitted", "Submitted")}

    admin.transformations.stop("p", "t")
    returned = time.monotonic()
    assert returned >= sent + seconds + leases.MARGIN_SECONDS

    # Asked again: refused, and the attempts go back to their tasks, uncounted.
    answers, seconds = reporter.lease(keys)
    assert seconds == 0 and [(a.proceed, a.withdrawn) for a in answers] == [(False, True)] * 3
    with server.database.session_scope(readonly=True) as session:
        tasks = [session.get_one(Task, task) for task, _ in keys]
        assert [(t.status, t.attempt) for t in tasks] == [("Created", attempt - 1) for _, attempt in keys]
    # A start (not a stop) does not wait.
    began = time.monotonic()
    admin.transformations.start("p", "t")
    assert time.monotonic() - began < 10 * leases.LEASE_SECONDS


def test_a_lease_is_refused_for_a_killed_task_without_withdrawing_it(server: RunningServer, admin: Client) -> None:
    keys, secret = bundle(server.database)
    admin.transformations.stop("p", "t", kill=True)
    answers, seconds = Reporter(server.address, secret).lease(keys)
    assert seconds == 0 and [(a.proceed, a.withdrawn) for a in answers] == [(False, False)] * 3
    assert {states(server.database)[task] for task, _ in keys} == {("Killed", "Submitted")}
