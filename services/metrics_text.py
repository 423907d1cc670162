"""The summary families of /metrics (per production and per transformation: tens of thousands
of series at 1,000 productions) in the Prometheus text format (0.0.4), written straight from
the dashboard's summary.

prometheus_client's generate_latest spends about 20 µs a series (a sample object per series,
label names validated and sorted, values formatted through its generic path): a second at
1,000 productions. This writes the very same bytes (family order, HELP and TYPE lines, label
names sorted as prometheus_client sorts them, values as its floatToGoString writes them; the
tests compare both) with one f-string a series. The agents' and the process's metrics stay
with prometheus_client: a few series each."""

from __future__ import annotations

from collections.abc import Iterable

from metaprod.core.statuses import FileStatus, ProductionStatus, TaskStatus
from metaprod.db.monitoring import Overview
from prometheus_client.utils import floatToGoString

CLEANED = ProductionStatus.CLEANED.value


def number(value: float) -> str:
    """A sample value as prometheus_client writes it (floatToGoString), fast for the common
    cases: counts below a million ("12.0") and finite floats below a million (their repr)."""
    if type(value) is int:
        if -1_000_000 < value < 1_000_000:
            return f"{value}.0"
    elif type(value) is float and -1e300 < value < 1e6:
        return repr(value)
    return str(floatToGoString(value))  # type: ignore[no-untyped-call]


def label(value: str) -> str:
    """A label value escaped as the text format asks (backslash, newline, double quote)."""
    if "\\" in value or "\n" in value or '"' in value:
        return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")
    return value


def _header(name: str, kind: str, documentation: str) -> str:
    # The HELP texts here are constants without backslashes or newlines (nothing to escape).
    return f"# HELP {name} {documentation}\n# TYPE {name} {kind}\n"


def summary_exposition(view: Overview) -> bytes:
    """The families the summary feeds, in the order (and bytes) the collector wrote them.

    Label names appear sorted (outcome < production < status < transformation), as
    prometheus_client writes them whatever order they were declared in."""
    live = [row for row in view.productions if row.status != CLEANED]
    # (production label, transformation label, transformation id, progress) of every live one.
    keyed = [
        (f'production="{label(row.name)}"', f'transformation="{label(t.name)}"', tid, t)
        for row in live
        for tid, t in zip(row.transformation_ids, row.progress.transformations, strict=True)
    ]
    out: list[str] = []
    add = out.append

    add(_header("metaprod_tasks_finished_total", "counter", "Task attempts ended, by outcome"))
    outcomes = view.attempt_outcomes
    for p, t, tid, _ in keyed:
        for outcome, n in outcomes.get(tid, {}).items():
            add(f'metaprod_tasks_finished_total{{outcome="{label(outcome.lower())}",{p},{t}}} {number(n)}\n')

    add(_header("metaprod_files_registered_total", "counter", "Files in the catalog"))
    add(f"metaprod_files_registered_total {number(view.files_registered)}\n")

    for name, documentation, of_files in (
        ("metaprod_files", "Files per transformation and status", True),
        ("metaprod_tasks", "Tasks per transformation and status", False),
    ):
        add(_header(name, "gauge", documentation))
        for p, t, _, progress in keyed:
            for st, n in (progress.files if of_files else progress.tasks).items():
                add(f'{name}{{{p},status="{label(st)}",{t}}} {number(n)}\n')

    add(_header("metaprod_transformation_percent", "gauge", "Share of its work done"))
    out.extend(f"metaprod_transformation_percent{{{p},{t}}} {number(pr.percent)}\n" for p, t, _, pr in keyed)
    add(_header("metaprod_transformation_failed_percent", "gauge", "Share of its work failed"))
    out.extend(
        f"metaprod_transformation_failed_percent{{{p},{t}}} {number(pr.failed_percent)}\n" for p, t, _, pr in keyed
    )

    names = [(f'production="{label(row.name)}"', row.progress) for row in live]
    add(_header("metaprod_production_percent", "gauge", "Share of the production done"))
    out.extend(f"metaprod_production_percent{{{p}}} {number(pr.percent)}\n" for p, pr in names)
    add(_header("metaprod_production_failed_percent", "gauge", "Share of the production failed"))
    out.extend(f"metaprod_production_failed_percent{{{p}}} {number(pr.failed_percent)}\n" for p, pr in names)
    add(_header("metaprod_production_status", "gauge", "The production's status (1 on its current one)"))
    out.extend(f'metaprod_production_status{{{p},status="{label(pr.status)}"}} 1.0\n' for p, pr in names)

    add(_header("metaprod_backlog", "gauge", "Work waiting, by kind"))
    tasks, files = view.tasks_by_status, view.files_by_status
    running = tasks.get(TaskStatus.SUBMITTED, 0) + tasks.get(TaskStatus.RUNNING, 0)
    backlog: Iterable[tuple[str, int]] = (
        ("unused_files", files.get(FileStatus.UNUSED, 0)),
        ("created_tasks", tasks.get(TaskStatus.CREATED, 0)),
        ("running_tasks", running),
        ("reported_attempts", view.reported_attempts),
    )
    out.extend(f'metaprod_backlog{{kind="{kind}"}} {number(n)}\n' for kind, n in backlog)
    return "".join(out).encode()
