"""The watcher's discovery of files against the races of a directory being filled: a file
copied into a new directory in the moment between its listing and its inotify watch is still
registered at once, not at the next periodic rescan (a minute later by default)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from metaprod.clients import connect
from metaprod.clients.watch import Watcher

from tests.unit.clients.conftest import Fake, Server

pytest.importorskip("inotify_simple")


class RacingWatcher(Watcher):
    """Copies a file into a directory just before the watcher sets that directory's watch:
    the window a copy into a brand-new directory can fall into."""

    racing: str = "incoming"
    landed: bool = False

    def _watch_dir(self, rel_dir: str) -> None:
        if rel_dir == self.racing and not self.landed:
            (self.root / rel_dir / "late.dat").write_text("arrived between listing and watch\n")
            self.landed = True
        super()._watch_dir(rel_dir)


def wait_for(check: object, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return True
        time.sleep(0.05)
    return False


@pytest.mark.parametrize("depth", ["incoming", "incoming/deeper"])
def test_a_file_landing_before_the_watch_of_a_new_directory_is_registered(
    server: Server, fake: Fake, tmp_path: Path, depth: str
) -> None:
    root = tmp_path / "root"
    root.mkdir()
    with connect(server.address, "test-token") as client:
        # rescan an hour away: only inotify and the scans of new directories can find it.
        watcher = RacingWatcher(client=client, root=root, settle=0.05, sidecar_wait=0.0, rescan=3600.0)
        watcher.racing = depth
        done = threading.Thread(target=watcher.run, kwargs={"install_signals": False})
        done.start()
        try:
            assert wait_for(lambda: watcher._inotify is not None and watcher._wds, 10.0)
            (root / depth).mkdir(parents=True)
            registered = wait_for(lambda: f"/{depth}/late.dat" in fake.files, 10.0)
        finally:
            watcher.stop()
            done.join(timeout=10)
    assert watcher.landed
    assert registered, f"not registered: {sorted(fake.files)}"
    assert watcher.stats.registered == 1
