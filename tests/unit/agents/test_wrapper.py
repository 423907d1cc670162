"""The job wrapper's own parts: each attempt's work directory."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from metaprod.agents.wrapper import WorkDirectories


def ended_group() -> int:
    """The process-group id of a command that has ended and been reaped."""
    proc = subprocess.run(["/bin/sh", "-c", "echo $$"], capture_output=True, text=True, start_new_session=True)
    return int(proc.stdout)


def test_an_empty_abandoned_directory_is_renamed_for_the_next_attempt(tmp_path: Path) -> None:
    dirs = WorkDirectories()
    first, second, third = (tmp_path / f"t{i}-a1" for i in (1, 2, 3))
    dirs.take(first)
    inode = first.stat().st_ino
    dirs.vacate(first, ended_group())
    dirs.take(second)
    assert not first.exists() and second.stat().st_ino == inode  # the same directory, renamed
    assert list(second.iterdir()) == []
    (second / "output").write_text("kept")
    dirs.vacate(second, ended_group())
    dirs.take(third)
    assert (second / "output").read_text() == "kept"  # not empty: left as it is
    assert third.is_dir() and third.stat().st_ino != inode and list(third.iterdir()) == []


def test_a_directory_is_not_reused_while_a_process_of_its_command_lives(tmp_path: Path) -> None:
    dirs = WorkDirectories()
    first, second = tmp_path / "t1-a1", tmp_path / "t2-a1"
    dirs.take(first)
    lingering = subprocess.Popen(["sleep", "30"], cwd=first, start_new_session=True)
    try:
        dirs.vacate(first, lingering.pid)
        dirs.take(second)
        assert first.is_dir() and second.is_dir()
        assert first.stat().st_ino != second.stat().st_ino
    finally:
        lingering.kill()
        lingering.wait()


@pytest.mark.parametrize("change", ["chmod", "symlink"])
def test_a_changed_directory_is_not_reused(tmp_path: Path, change: str) -> None:
    dirs = WorkDirectories()
    first, second = tmp_path / "t1-a1", tmp_path / "t2-a1"
    dirs.take(first)
    if change == "chmod":
        first.chmod(0o500)
    else:
        first.rmdir()
        (tmp_path / "elsewhere").mkdir()
        first.symlink_to(tmp_path / "elsewhere")
    dirs.vacate(first, ended_group())
    dirs.take(second)
    assert os.path.lexists(first)  # left as it was
    assert second.is_dir() and not second.is_symlink() and list(second.iterdir()) == []
    assert second.stat().st_mode & 0o777 != 0o500
