"""Splitting claimed attempts into jobs, and the job file of a bundle."""

from __future__ import annotations

import json
import stat
from pathlib import Path

from metaprod.agents.jobs import job_layout, plan_bundles, prepare_job
from metaprod.agents.settings import AgentSettings
from metaprod.db.jobs import ClaimedJob, JobInput


def claimed(task_id: int, transformation: str = "reco", backend: str = "local") -> ClaimedJob:
    return ClaimedJob(
        task_id=task_id,
        task_index=task_id - 1,
        attempt=1,
        attempt_id=100 + task_id,
        secret="s3cret",
        backend=backend,
        backend_options={},
        production="p",
        transformation=transformation,
        command="true",
        outputs=[{"glob": "*.out"}],
        inputs=(JobInput(f"/in/{task_id}", f"file:///data/in/{task_id}"),),
    )


def sizes(bundles: list[list[ClaimedJob]]) -> list[int]:
    return [len(b) for b in bundles]


def test_a_lone_attempt_gets_a_job_of_its_own() -> None:
    assert sizes(plan_bundles([claimed(1)], lambda _: 2, 32)) == [1]


def test_attempts_share_jobs_two_per_slot_within_the_cap() -> None:
    jobs = [claimed(i) for i in range(1, 21)]
    # 20 attempts, 2 slots: a job of 10 for each.
    bundles = plan_bundles(jobs, lambda _: 2, 32)
    assert sizes(bundles) == [10, 10]
    assert [j.task_id for b in bundles for j in b] == list(range(1, 21))  # claim order kept
    assert sizes(plan_bundles(jobs, lambda _: 2, 3)) == [3] * 6 + [2]  # max_bundle caps a job
    assert sizes(plan_bundles(jobs, lambda _: 100, 32)) == [1] * 20  # a big cluster: one each
    assert sizes(plan_bundles(jobs, lambda _: 2, 1)) == [1] * 20  # bundling switched off


def test_a_job_never_mixes_transformations_or_backends() -> None:
    jobs = [claimed(1), claimed(2, "merge"), claimed(3), claimed(4, backend="slurm"), claimed(5)]
    bundles = plan_bundles(jobs, lambda _: 1, 32)
    assert sorted(tuple(j.task_id for j in b) for b in bundles) == [(1, 3, 5), (2,), (4,)]


def test_a_bundle_job_has_one_directory_with_a_work_directory_per_attempt(tmp_path: Path) -> None:
    settings = AgentSettings(data_dir=tmp_path, services_address="127.0.0.1:1")
    bundle = [claimed(1), claimed(2), claimed(1234)]
    spec = prepare_job(bundle, settings)
    job_dir = (tmp_path / "work" / "t1-a1+2").resolve()
    assert spec.key == "t1-a1+2" and spec.workdir == job_dir
    job_file = job_dir / "job.json"
    assert stat.S_IMODE(job_file.stat().st_mode) == 0o600  # it holds the worker token
    job = json.loads(job_file.read_text())
    assert job["token"] == "s3cret" and job["command"] == "true"
    assert [t["task_id"] for t in job["tasks"]] == [1, 2, 1234]
    first = job["tasks"][0]
    assert first["workdir"] == str(job_dir / "t1-a1")
    assert not Path(first["workdir"]).exists()  # made by the wrapper, empty, just before its command
    assert first["lfn_prefix"] == "/p/reco/000000/"
    # One log for the job, in a directory per thousand tasks (by its first task).
    assert spec.log_path == (tmp_path / "logs" / "0" / "t1-a1+2.log").resolve()
    # The last attempt's scratch is the whole job directory: it is finalized last.
    assert job_layout(bundle, settings).scratch == [None, None, str(job_dir)]


def test_the_job_file_says_how_to_reach_the_services_over_tls(tmp_path: Path) -> None:
    tls = {"ca": "-----BEGIN CERTIFICATE-----\n...", "cert": "/etc/pki/job.pem", "key": "/etc/pki/job.key"}
    settings = AgentSettings(data_dir=tmp_path, services_address="10.0.0.1:50051", job_tls=tls)
    job = json.loads(Path(prepare_job([claimed(1)], settings).argv[-1]).read_text())
    assert job["tls"] == tls and job["address"] == "10.0.0.1:50051"
    plain = AgentSettings(data_dir=tmp_path / "plain", services_address="127.0.0.1:1")
    assert "tls" not in json.loads(Path(prepare_job([claimed(2)], plain).argv[-1]).read_text())
