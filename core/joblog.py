"""The log of a job, shared by the task attempts it runs one after the other (a bundle).

The wrapper opens a section per attempt with a header line before its command starts; the
command's output follows. Its own messages about an attempt, which may come later (a report
is acknowledged while the next command already runs), are tagged with the attempt. An
attempt's log is the job's preamble (what precedes every section: the backend's and the
wrapper's own notes), its section, and the lines tagged with it anywhere.
"""

from __future__ import annotations

import re

_HEADER = re.compile(r"^\[metaprod\] === task (\d+) attempt (\d+) ===$")
_TAG = re.compile(r"^\[metaprod\] task (\d+) attempt (\d+): ")


def section_header(task_id: int, attempt: int) -> str:
    return f"[metaprod] === task {task_id} attempt {attempt} ==="


def tagged(task_id: int, attempt: int, message: str) -> str:
    return f"[metaprod] task {task_id} attempt {attempt}: {message}"


def attempt_part(text: str, task_id: int, attempt: int) -> str:
    """The lines of a job log that belong to one attempt (the whole text if it has no
    section at all: a job that failed before its first command, or an older log)."""
    key = (str(task_id), str(attempt))
    lines = text.splitlines(keepends=True)
    if not any(_HEADER.match(line.rstrip("\n")) for line in lines):
        return text
    kept: list[str] = []
    section: tuple[str, ...] | None = None
    for line in lines:
        header = _HEADER.match(line.rstrip("\n"))
        if header is not None:
            section = header.groups()
            continue
        tag = _TAG.match(line)
        if tag is not None:
            if tag.groups() == key:
                kept.append(line)
            continue
        if section is None or section == key:
            kept.append(line)
    return "".join(kept)
