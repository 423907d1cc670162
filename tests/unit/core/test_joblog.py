"""An attempt's part of a shared job log."""

from __future__ import annotations

from metaprod.core.joblog import attempt_part, section_header, tagged

LOG = "\n".join(
    [
        "backend: job started on node1",
        section_header(7, 1),
        "output of 7",
        section_header(8, 1),
        tagged(7, 1, "reported success=True accepted=True in 3 ms"),  # 7's report came late
        "output of 8",
        "more of 8",
        section_header(9, 2),
        tagged(8, 1, "reported success=False accepted=True in 2 ms command exited with code 5"),
        "output of 9",
        "",
    ]
)


def test_an_attempt_gets_the_preamble_its_section_and_its_tagged_lines() -> None:
    assert attempt_part(LOG, 7, 1) == (
        "backend: job started on node1\noutput of 7\n[metaprod] task 7 attempt 1: reported success=True "
        "accepted=True in 3 ms\n"
    )
    part = attempt_part(LOG, 8, 1)
    assert part.splitlines() == [
        "backend: job started on node1",
        "output of 8",
        "more of 8",
        "[metaprod] task 8 attempt 1: reported success=False accepted=True in 2 ms command exited with code 5",
    ]
    assert "output of 8" not in attempt_part(LOG, 9, 2) and "output of 9" in attempt_part(LOG, 9, 2)


def test_an_attempt_that_never_started_gets_the_preamble_and_its_own_notes() -> None:
    log = LOG + tagged(10, 1, "not started: the job was cancelled") + "\n"
    assert attempt_part(log, 10, 1).splitlines() == [
        "backend: job started on node1",
        "[metaprod] task 10 attempt 1: not started: the job was cancelled",
    ]


def test_a_log_without_sections_is_shown_whole() -> None:
    assert attempt_part("plain old log\nTraceback ...\n", 1, 1) == "plain old log\nTraceback ...\n"
