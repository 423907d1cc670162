"""The disposer removes a deleted production's logs, scratch and purged outputs, and nothing
outside the data directory and the output storage."""

from __future__ import annotations

from pathlib import Path

from metaprod.agents.disposal import Disposer
from metaprod.agents.settings import AgentSettings
from metaprod.db.cleaning import Disposal


def test_removes_logs_scratch_and_stored_outputs_under_their_roots(tmp_path: Path) -> None:
    data = tmp_path / "data"
    settings = AgentSettings(data_dir=data, services_address="127.0.0.1:1")
    log = data / "logs" / "0" / "t1-a1.log"
    job_dir = data / "work" / "t1-a1"
    stored = Path(settings.storage) / "p" / "gen" / "000000" / "a1" / "out.sim"
    kept = Path(settings.storage) / "p" / "gen" / "000001" / "a1" / "out.sim"
    outside = tmp_path / "elsewhere.txt"
    for path in (log, job_dir / "t1-a1" / "x", stored, kept, outside):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("x")

    dispose = Disposer(settings)
    dispose(Disposal(paths=(str(log), str(job_dir), str(outside), str(data / "missing.log"))))
    dispose(Disposal(stored=(str(stored), str(outside), f"{settings.storage}/p/../../elsewhere.txt")))

    assert not log.exists() and not job_dir.exists()
    assert not stored.exists() and not (Path(settings.storage) / "p" / "gen" / "000000").exists()
    assert kept.is_file() and outside.is_file()
