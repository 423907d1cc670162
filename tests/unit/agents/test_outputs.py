"""An attempt's outputs on the worker: regular files inside the work directory only, their
size limit, their checksum read in chunks, and the removal of what was stored."""

from __future__ import annotations

import os
import zlib
from pathlib import Path
from typing import Any

import fsspec
import pytest
from metaprod.agents import outputs


def job(glob: str, **extra: Any) -> dict[str, Any]:
    return {"outputs": [{"glob": glob, "metadata": {}}], **extra}


def collect(workdir: Path, glob: str) -> list[str]:
    return [p.relative_to(workdir).as_posix() for p, _ in outputs.collect(job(glob), workdir, ".meta.json")]


def test_regular_files_are_outputs(tmp_path: Path) -> None:
    (tmp_path / "a.out").write_text("a")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.out").write_text("b")
    assert collect(tmp_path, "**/*.out") == ["a.out", "sub/b.out"]


def test_a_symlink_output_is_refused_with_its_name(tmp_path: Path) -> None:
    secret = tmp_path.parent / "admin.token"
    secret.write_text("secret")
    work = tmp_path / "work"
    work.mkdir()
    (work / "leak.dat").symlink_to(secret)
    with pytest.raises(ValueError, match=r"output leak\.dat is a symbolic link"):
        collect(work, "*.dat")


def test_a_file_under_a_symlinked_directory_is_refused(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "x.out").write_text("x")
    work = tmp_path / "work"
    work.mkdir()
    (work / "d").symlink_to(outside)
    with pytest.raises(ValueError, match="lies under a symbolic link"):
        collect(work, "d/*.out")


@pytest.mark.parametrize("glob", ["../*.out", "/etc/host*"])
def test_a_glob_leaving_the_work_directory_is_an_error_not_a_crash(tmp_path: Path, glob: str) -> None:
    with pytest.raises(ValueError, match="output glob"):
        collect(tmp_path, glob)


def test_checksum_in_chunks_equals_the_whole_files(tmp_path: Path) -> None:
    data = os.urandom(3 * outputs.CHUNK + 17)
    path = tmp_path / "f"
    path.write_bytes(data)
    assert outputs.adler32_of(path) == (len(data), f"adler32:{zlib.adler32(data):08x}")


def test_max_output_bytes(tmp_path: Path) -> None:
    (tmp_path / "a").write_bytes(b"x" * 600)
    (tmp_path / "b").write_bytes(b"x" * 600)
    paths = [tmp_path / "a", tmp_path / "b"]
    outputs.check_size(job("*"), paths)
    outputs.check_size(job("*", max_output_bytes=1200), paths)
    with pytest.raises(ValueError, match="outputs total 1200 bytes, more than max_output_bytes 1000"):
        outputs.check_size(job("*", max_output_bytes=1000), paths)


def test_remove_stored_leaves_nothing_of_the_attempt(tmp_path: Path) -> None:
    base = tmp_path / "p" / "t" / "000000" / "a1"
    (base / "sub").mkdir(parents=True)
    targets = [str(base / "x.out"), str(base / "sub" / "y.out")]
    for target in targets:
        Path(target).write_text("stored")
    outputs.remove_stored(fsspec.filesystem("file"), targets, str(base))
    assert not base.exists() and (tmp_path / "p" / "t" / "000000").is_dir()


def test_a_work_directory_replaced_by_a_symlink_is_refused(tmp_path: Path) -> None:
    """An earlier attempt of the job may have made the next one's directory a symlink to a
    host directory: nothing is read through it."""
    host = tmp_path / "host-etc"
    host.mkdir()
    (host / "shadow").write_text("root:secret")
    work = tmp_path / "t2-a1"
    work.symlink_to(host)
    with pytest.raises(ValueError, match="work directory is a symbolic link"):
        collect(work, "*")
