"""The sandbox's bwrap command line (what is shown, in which order, what is hidden) and, where
bwrap works, what a command in it can reach."""

from __future__ import annotations

import os
import select
import subprocess
import time
from pathlib import Path

import pytest
from metaprod.agents import sandbox


def argv(tmp_path: Path, **kw: object) -> list[str]:
    command = kw.pop("command", "echo hi")
    defaults: dict[str, object] = {
        "workdir": tmp_path / "work" / "j" / "t1-a1",
        "inputs": (),
        "hidden": (str(tmp_path),),
    }
    defaults.update(kw)
    return sandbox.build_argv("/usr/bin/bwrap", ["/bin/sh", "-c", str(command)], **defaults)  # type: ignore[arg-type]


def pairs(args: list[str], flag: str) -> list[tuple[str, str]]:
    return [(args[i + 1], args[i + 2]) for i, a in enumerate(args) if a == flag]


def test_namespaces_session_capabilities_and_the_command(tmp_path: Path) -> None:
    args = argv(tmp_path)
    assert args[0] == "/usr/bin/bwrap"
    for flag in ("--unshare-pid", "--unshare-ipc", "--unshare-uts", "--die-with-parent", "--new-session"):
        assert flag in args
    assert args[args.index("--cap-drop") + 1] == "ALL"
    assert args[-3:] == ["/bin/sh", "-c", "echo hi"]
    work = str(tmp_path / "work" / "j" / "t1-a1")
    assert (work, work) in pairs(args, "--bind") and args[args.index("--chdir") + 1] == work
    assert "--unshare-net" not in args  # jobs may fetch and store over the network


def test_only_system_paths_are_shown_and_the_environment_is_not_in_argv(tmp_path: Path) -> None:
    args = argv(tmp_path)
    shown = [src for src, _ in pairs(args, "--ro-bind") if src != "/dev/null"]
    assert shown and all(p in sandbox.SYSTEM_PATHS for p in shown)
    assert "/" not in shown and "/home" not in shown and "/root" not in shown
    assert "--setenv" not in args  # values would show in the process list
    assert args[args.index("--tmpfs") + 1] == "/tmp"


def test_a_data_directory_under_a_system_path_is_covered_before_inputs_and_work_are_bound(
    tmp_path: Path,
) -> None:
    args = sandbox.build_argv(
        "/usr/bin/bwrap",
        ["true"],
        workdir=Path("/opt/metaprod-data/work/j/t1-a1"),
        inputs=["/opt/metaprod-data/storage/p/t/000000/a1/in.dat", "relative/ignored"],
        hidden=["/opt"],
        system_paths=("/usr", "/opt"),
    )
    cover = args.index("/opt", args.index("--tmpfs", args.index("--tmpfs") + 1))
    data_input = args.index("/opt/metaprod-data/storage/p/t/000000/a1/in.dat")
    work = args.index("--bind")
    assert cover < data_input < work
    assert args[data_input - 1] == "--ro-bind-try"
    assert "relative/ignored" not in args


def test_choose(monkeypatch: pytest.MonkeyPatch) -> None:
    assert sandbox.choose("none") == sandbox.Choice(None)
    assert "unknown sandbox" in sandbox.choose("docker").error
    monkeypatch.setattr(sandbox, "probe", lambda program: "no user namespaces")
    assert sandbox.choose("auto").program is None and "no user namespaces" in sandbox.choose("auto").note
    assert "required" in sandbox.choose("bwrap").error


works = sandbox.choose("auto").program is not None


@pytest.mark.skipif(not works, reason="bwrap does not work on this machine")
def test_a_command_in_the_sandbox_sees_its_work_directory_and_inputs_only(tmp_path: Path) -> None:
    data = tmp_path / "data"
    workdir = data / "work" / "j" / "t1-a1"
    other = data / "work" / "j" / "t2-a1"
    for d in (workdir, other):
        d.mkdir(parents=True)
    (other / "secret").write_text("theirs")
    (data / "admin.token").write_text("token")
    stored = data / "storage" / "in.dat"
    stored.parent.mkdir()
    stored.write_text("input\n")
    command = (
        f"cat {stored}; cat {data}/admin.token ../t2-a1/secret; echo x > {stored}; echo mine > out; "
        "env | cut -d= -f1 | sort | tr '\\n' ' '; echo; ls /proc | grep -c '^[0-9]'"
    )
    args = argv(tmp_path, command=command, workdir=workdir, inputs=[str(stored)], hidden=[str(data)])
    result = subprocess.run(
        args, capture_output=True, text=True, env={"PATH": "/usr/bin:/bin", "GIVEN": "1"}, timeout=30
    )
    assert result.stdout.split("\n")[0] == "input"
    assert "token" not in result.stdout and "theirs" not in result.stdout
    assert "Read-only file system" in result.stderr
    assert stored.read_text() == "input\n" and (workdir / "out").read_text() == "mine\n"
    assert int(result.stdout.split()[-1]) < 10  # its own processes, not the host's
    assert set(result.stdout.splitlines()[-2].split()) <= {"GIVEN", "PATH", "PWD", "SHLVL", "_"}


def read_all(fd: int, box: sandbox.JobSandbox, mark: bytes, timeout: float = 30) -> tuple[bytes, int | None]:
    """The output of the attempt (up to its end mark, which the runner writes once its
    processes are gone: what comes after it is the next attempt's, kept for it in the box's
    `output_ahead`) and its exit code, once the runner reports it."""
    out, box.output_ahead = box.output_ahead, b""
    deadline = time.monotonic() + timeout
    while mark not in out and time.monotonic() < deadline:
        ready, _, _ = select.select([fd, box.pidfd], [], [], 1)
        if fd in ready:
            out += os.read(fd, 65536)
        elif box.pidfd in ready:
            break
    if mark not in out:
        raise TimeoutError(out)
    out, box.output_ahead = out.split(mark, 1)
    if not box.has_ended():  # an end read with the one before needs no wait
        select.select([box.status, box.pidfd], [], [], timeout)
    return out, box.ended()[1]


@pytest.mark.skipif(not works, reason="bwrap does not work on this machine")
def test_a_job_sandbox_runs_attempts_one_after_the_other_and_ends_each_ones_processes(tmp_path: Path) -> None:
    job_dir = tmp_path / "work" / "t1-a1+1"
    first, second = job_dir / "t1-a1", job_dir / "t2-a1"
    for d in (first, second):
        d.mkdir(parents=True)
    (job_dir / "job.json").write_text('{"token": "worker-secret"}')
    program = sandbox.choose("auto").program
    assert program is not None
    box = sandbox.JobSandbox(
        program,
        job_dir=job_dir,
        inputs=(),
        hidden=(str(tmp_path),),
        writable=(),
        masked=(str(job_dir / "job.json"),),
        env={"PATH": "/usr/bin:/bin"},
    )
    try:
        pid = box.start()
        mark = box.run(first, {"PATH": "/usr/bin:/bin", "WHO": "first"}, "setsid sleep 3001 & echo $WHO; pwd; exit 3")
        out, code = read_all(box.output, box, mark)
        assert (out.decode(), code) == (f"first\n{first}\n", 3)
        assert not [p for p in os.listdir("/proc") if p.isdigit() and b"3001" in _cmdline(p)]
        mark = box.run(second, {"PATH": "/usr/bin:/bin"}, "cat ../job.json; echo $WHO; ls /proc | grep -c '^[0-9]'")
        out, code = read_all(box.output, box, mark)
        lines = out.decode().splitlines()
        assert "worker-secret" not in out.decode() and "Permission denied" in lines[0]  # covered
        assert lines[1] == "" and int(lines[2]) <= 5 and code == 0  # no WHO of the first; its own processes
        assert box.pid == pid  # the same sandbox for both
    finally:
        box.close()
        sandbox.reap_closed(wait=True)
    assert not sandbox._CLOSED


def test_a_command_cannot_reach_the_runners_pipes(tmp_path: Path) -> None:
    """The runner's request and status pipes (fds 3 and 4) are its own: a command that could
    read the next attempt's request or write a forged end would break the attempts apart."""
    job_dir = tmp_path / "work" / "t1-a1+1"
    work = job_dir / "t1-a1"
    work.mkdir(parents=True)
    program = sandbox.choose("auto").program
    assert program is not None
    box = sandbox.JobSandbox(
        program, job_dir=job_dir, inputs=(), hidden=(str(tmp_path),), writable=(), masked=(), env={"PATH": "/bin"}
    )
    try:
        box.start()
        mark = box.run(work, {"PATH": "/usr/bin:/bin"}, "ls /proc/$$/fd; echo 0 >&4 && echo forged")
        out, code = read_all(box.output, box, mark)
        fds = [line for line in out.decode().splitlines() if line.isdigit()]
        assert fds == ["0", "1", "2"] and "forged" not in out.decode(), out
        assert code != 0  # the shell's redirection failed, and the runner reported that
    finally:
        box.close()
        sandbox.reap_closed(wait=True)


def _cmdline(pid: str) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def test_the_directories_of_path_are_shown_but_never_the_data_directory(tmp_path: Path) -> None:
    """A user's own bin on PATH (a conda env, ~/bin) is shown read-only; a PATH entry inside
    the data directory, or holding it, is not (it would show the data directory)."""
    bin_dir, data = tmp_path / "bin", tmp_path / "data"
    (data / "bin").mkdir(parents=True)
    bin_dir.mkdir()
    path = ":".join([str(bin_dir), str(data / "bin"), str(tmp_path), "relative/bin", str(tmp_path / "missing")])
    assert sandbox.path_directories(path, [str(data)]) == [str(bin_dir)]


@pytest.mark.skipif(not works, reason="bwrap does not work on this machine")
def test_attempts_handed_over_ahead_run_in_turn_and_none_starts_after_its_deadline(tmp_path: Path) -> None:
    """The wrapper may hand the next attempt to the runner while one runs: it starts once the
    one before has ended (and its processes are gone), never after its start deadline (the
    start lease): then the runner says "skip" and the command does not run."""
    job_dir = tmp_path / "work" / "t1-a1+2"
    dirs = [job_dir / f"t{i}-a1" for i in range(3)]
    for d in dirs:
        d.mkdir(parents=True)
    program = sandbox.choose("auto").program
    assert program is not None
    box = sandbox.JobSandbox(
        program, job_dir=job_dir, inputs=(), hidden=(str(tmp_path),), writable=(), masked=(), env={"PATH": "/bin"}
    )
    env = {"PATH": "/usr/bin:/bin"}
    try:
        box.start()
        first = box.run(dirs[0], env, "sleep 0.3 & echo one; wait; touch ran")
        second = box.run(dirs[1], env, "ls ../t0-a1; echo two", deadline=time.monotonic() + 30)
        third = box.run(dirs[2], env, "touch ran", deadline=time.monotonic() + 0.1)
        out, code = read_all(box.output, box, first)
        assert (out, code) == (b"one\n", 0)
        out, code = read_all(box.output, box, second)
        assert (out, code) == (b"ran\ntwo\n", 0)  # it started after the first had ended
        out, code = read_all(box.output, box, third)
        assert (out, code) == (b"", None)  # its deadline passed while the first ran
        assert not (dirs[2] / "ran").exists()
    finally:
        box.close()
        sandbox.reap_closed(wait=True)
