"""Input agent: attach catalog files that match an input-taking transformation's input query.

Registration already attaches new files at once through the file router; this cycle is the
safety net and the back-fill: it scans files above each transformation's watermark, so a
transformation started after its files were catalogued gets them too. It also repairs the
registration/watermark race (see metaprod.db.routing): every window it scanned is scanned
again `recheck_seconds` later, and on start it re-checks the last ids below each watermark."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

from metaprod.db.routing import ScannedWindow, backfill_active, recent_windows, rescan
from sqlalchemy.orm import Session

# A registration batch commits within seconds; a window is re-checked once, well after.
RECHECK_SECONDS = 30.0
# Catalog ids scanned per transformation and cycle: a transformation started over millions
# of catalogued files is backfilled in windows, the agent looping at once while one stopped
# short. A window seeks its ids in the value's index (db.querysql.compile_ids): 50,000 ids
# took 0.4-0.7 s on MariaDB with 2 cores loaded 5-6, up to 1.1 s with jobs running beside.
BACKFILL_IDS_PER_CYCLE = 25_000
# On start: catalog ids below each watermark re-checked (a predecessor's last windows).
STARTUP_LOOKBACK_IDS = 100_000


class InputAgent:
    name = "input"
    # "input_due": its own wake while a transformation's backfill stopped short of the top.
    wakes_on = frozenset({"production", "transformation", "input_due"})
    produces = frozenset({"files", "input_due"})

    def __init__(
        self,
        *,
        recheck_seconds: float = RECHECK_SECONDS,
        startup_lookback_ids: int = STARTUP_LOOKBACK_IDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.recheck_seconds = recheck_seconds
        self.startup_lookback_ids = startup_lookback_ids
        self.clock = clock
        self.pending: deque[tuple[float, ScannedWindow]] = deque()
        self.started = False
        self._more = False

    def produced(self) -> frozenset[str]:
        return self.produces if self._more else frozenset({"files"})

    def run_once(self, session: Session) -> str:
        repaired = 0
        if not self.started:
            repaired += rescan(
                session=session, windows=recent_windows(session=session, lookback_ids=self.startup_lookback_ids)
            )
            self.started = True
        now = self.clock()
        due: list[ScannedWindow] = []
        while self.pending and self.pending[0][0] <= now:
            due.append(self.pending.popleft()[1])
        repaired += rescan(session=session, windows=due)
        scanned: list[ScannedWindow] = []
        attached = backfill_active(session=session, on_scan=scanned.append, max_ids=BACKFILL_IDS_PER_CYCLE)
        self.pending.extend((now + self.recheck_seconds, w) for w in scanned)
        self._more = any(w.short for w in scanned)
        parts = [f"attached {attached} files" + (" (more due)" if self._more else "")] if attached or self._more else []
        if repaired:
            parts.append(f"repaired {repaired} missed attachments")
        return ", ".join(parts) or "idle"
