"""`metaprod catalog watch DIR`: register each file that appears under DIR once it is complete.

A file is a candidate when inotify reports it written and closed (IN_CLOSE_WRITE) or moved in
(IN_MOVED_TO), or when a scan finds it (the initial scan, and a periodic rescan as a safety
net against missed events). A candidate is registered once it is complete:

- not open for writing as far as inotify tells (created or modified and not yet closed), and
- its size and modification time, and its sidecar's, unchanged for `settle` seconds, and
- when it has no ``<file>.meta.json`` sidecar, `sidecar_wait` more seconds have passed (so a
  sidecar written just after its file is not missed; write the sidecar first to skip the wait).

Its LFN is PREFIX + its path relative to DIR, its PFN its absolute path, its checksum an
adler32 computed streamed (``adler32:xxxxxxxx``, as the job wrapper records outputs), its
metadata the pattern's captures updated by the sidecar's keys (the sidecar wins). Files and
directories whose name starts with ``.`` (partial transfers of rsync and the like), sidecars
and anything but regular files are never registered. Registrations go in batches with
`skip_existing`: a file already catalogued identically is skipped, so a restarted watcher
registers nothing twice; one catalogued with another size, checksum or metadata is logged
and left alone until it changes again.

Everything goes through the catalog's gRPC calls with the watcher's token: this is a client.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from metaprod.clients import types as t
from metaprod.clients.cli_common import coerce_to_schema
from metaprod.clients.client import Client
from metaprod.clients.errors import ServiceUnavailable
from metaprod.core.errors import DomainError, InvalidArgument
from metaprod.core.pathpattern import PathPattern

SIDECAR = ".meta.json"
READ_CHUNK = 1 << 20
STALE_WRITE = 300.0  # seconds: a file "being written" but untouched this long is scanned again
# (size, mtime_ns) of a file and of its sidecar (None: no sidecar).
Signature = tuple[int, int, int | None, int | None]

try:  # Linux only; elsewhere (or past the inotify limits) the watcher polls
    import inotify_simple
except ImportError:  # pragma: no cover - not on Linux
    inotify_simple = None


def adler32_file(path: Path) -> str:
    value = 1
    with open(path, "rb") as f:
        while chunk := f.read(READ_CHUNK):
            value = zlib.adler32(chunk, value)
    return f"adler32:{value:08x}"


def lfn_for(prefix: str, rel: str) -> str:
    return prefix.rstrip("/") + "/" + rel


def check_prefix(prefix: str) -> str:
    if not prefix.startswith("/") or "//" in prefix or any(s in (".", "..") for s in prefix.split("/")):
        raise InvalidArgument(f"bad --lfn-prefix {prefix!r}: an absolute, normalised LFN path such as /data/")
    return prefix


@dataclass
class _Pending:
    signature: Signature
    since: float  # monotonic time this signature was first seen


@dataclass
class WatchStats:
    registered: int = 0
    skipped: int = 0  # already catalogued identically
    unmatched: int = 0  # not matching the pattern
    failed: int = 0  # refused by the catalog, or a bad sidecar
    batches: int = 0

    def as_dict(self) -> dict[str, int]:
        return {
            "registered": self.registered,
            "skipped": self.skipped,
            "unmatched": self.unmatched,
            "failed": self.failed,
            "batches": self.batches,
        }


@dataclass
class Watcher:
    client: Client
    root: Path
    pattern: PathPattern | None = None
    lfn_prefix: str = "/"
    settle: float = 1.0
    sidecar_wait: float = 2.0
    rescan: float = 60.0
    batch_size: int = 1000
    log: Callable[[str], None] = field(default=lambda message: None)
    stats: WatchStats = field(default_factory=WatchStats)
    schema: dict[str, str] = field(default_factory=dict)
    _pending: dict[str, _Pending] = field(default_factory=dict)
    _writing: set[str] = field(default_factory=set)
    _done: dict[str, Signature] = field(default_factory=dict)  # registered, skipped or refused as it was
    _stop: bool = False
    _inotify: Any = None
    _wds: dict[int, str] = field(default_factory=dict)  # watch descriptor -> directory relative to root
    _retry_at: float = 0.0

    # -- control ------------------------------------------------------------------------------
    def stop(self, *_: object) -> None:
        self._stop = True

    def run(self, *, install_signals: bool = True) -> WatchStats:
        """Watch until stop() (SIGINT/SIGTERM when `install_signals`). Files not yet complete at
        the stop are left for the next start."""
        self.root = self.root.resolve()
        if not self.root.is_dir():
            raise InvalidArgument(f"{self.root} is not a directory")
        self.schema = {f.name: f.type for f in self.client.catalog.list_fields()}
        if self.pattern is not None:
            self.pattern.check_schema(self.schema)
        previous: list[Any] = []
        if install_signals:

            def handler(signum: int, frame: FrameType | None) -> None:
                self.stop()

            previous = [signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)]
        try:
            self._open_inotify()
            found = self.scan()
            self.log(f"watching {self.root} ({'inotify' if self._inotify else 'polling'}): {found} file(s) found")
            next_scan = time.monotonic() + self.rescan
            tick = max(0.05, min(0.25, self.settle / 2))
            while not self._stop:
                self._read_events(tick)
                now = time.monotonic()
                if now >= next_scan:
                    self.scan()
                    next_scan = now + self.rescan
                self.register_ready(now)
        finally:
            if self._inotify is not None:
                self._inotify.close()
                self._inotify = None
            if previous:
                for s, h in zip((signal.SIGINT, signal.SIGTERM), previous, strict=True):
                    signal.signal(s, h)
        return self.stats

    # -- finding files ------------------------------------------------------------------------
    @staticmethod
    def _hidden(rel: str) -> bool:
        return any(part.startswith(".") for part in rel.split("/"))

    def _signature(self, rel: str) -> Signature | None:
        path = self.root / rel
        try:
            st = path.lstat()
        except OSError:
            return None
        if not os.path.isfile(path) or path.is_symlink():
            return None
        try:
            sc = (self.root / (rel + SIDECAR)).stat()
            return (st.st_size, st.st_mtime_ns, sc.st_size, sc.st_mtime_ns)
        except OSError:
            return (st.st_size, st.st_mtime_ns, None, None)

    def _candidate(self, rel: str, *, reset: bool = False) -> None:
        if self._hidden(rel):
            return
        if rel.endswith(SIDECAR):  # a sidecar: its file is the candidate
            rel = rel[: -len(SIDECAR)]
            if not rel or not (self.root / rel).is_file():
                return
        pending = self._pending.get(rel)
        if pending is not None and not reset:
            return
        sig = self._signature(rel)
        if sig is None or self._done.get(rel) == sig:
            return
        self._pending[rel] = _Pending(sig, time.monotonic())

    def scan(self, under: str = "") -> int:
        """Walk DIR (or one directory under it): watch every directory, and every file not yet
        handled as it is now becomes a candidate. Returns how many files were seen."""
        seen = 0
        top = self.root / under if under else self.root
        # Each directory is watched before it is listed: a file created after its listing
        # then has an event, one created before is listed (watched after the listing, a file
        # copied in between was left to the periodic rescan, a minute later).
        self._watch_dir(under)
        for dirpath, dirnames, filenames in os.walk(top):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            rel_dir = Path(dirpath).relative_to(self.root).as_posix()
            rel_dir = "" if rel_dir == "." else rel_dir
            for name in dirnames:  # os.walk lists them after this body has run
                self._watch_dir(f"{rel_dir}/{name}" if rel_dir else name)
            for name in sorted(filenames):
                if name.startswith("."):
                    continue
                rel = f"{rel_dir}/{name}" if rel_dir else name
                if not rel.endswith(SIDECAR):
                    seen += 1
                if rel in self._writing and self._stale(rel):
                    self._writing.discard(rel)  # written long ago with no close seen (a hard link ...)
                if rel not in self._writing:
                    self._candidate(rel)
        return seen

    def _stale(self, rel: str) -> bool:
        try:
            return time.time() - (self.root / rel).stat().st_mtime > max(STALE_WRITE, self.rescan)
        except OSError:
            return True

    # -- inotify ------------------------------------------------------------------------------
    def _open_inotify(self) -> None:
        if inotify_simple is None:
            self.rescan = min(self.rescan, max(1.0, self.settle))
            return
        try:
            self._inotify = inotify_simple.INotify()
        except OSError as exc:
            self.log(f"inotify unavailable ({exc}): polling every {min(self.rescan, max(1.0, self.settle)):g} s")
            self.rescan = min(self.rescan, max(1.0, self.settle))

    def _watch_dir(self, rel_dir: str) -> None:
        if self._inotify is None or rel_dir in self._wds.values():
            return
        f = inotify_simple.flags
        mask = f.CREATE | f.MODIFY | f.CLOSE_WRITE | f.MOVED_TO | f.MOVED_FROM | f.DELETE | f.DELETE_SELF | f.MOVE_SELF
        try:
            wd = self._inotify.add_watch(str(self.root / rel_dir if rel_dir else self.root), mask)
        except OSError as exc:
            self.log(f"cannot watch {rel_dir or '.'} ({exc}): the periodic rescan covers it")
            return
        self._wds[wd] = rel_dir

    def _read_events(self, timeout: float) -> None:
        if self._inotify is None:
            time.sleep(timeout)
            return
        f = inotify_simple.flags
        for event in self._inotify.read(timeout=int(timeout * 1000)):
            if event.mask & f.Q_OVERFLOW:
                self.log("inotify queue overflow: rescanning")
                self._writing.clear()
                self.scan()
                continue
            if event.mask & f.IGNORED:
                self._wds.pop(event.wd, None)
                continue
            base = self._wds.get(event.wd)
            if base is None or not event.name:
                continue
            rel = f"{base}/{event.name}" if base else event.name
            if self._hidden(rel):
                continue
            if event.mask & f.ISDIR:
                if event.mask & (f.CREATE | f.MOVED_TO):
                    self.scan(rel)  # files may have landed before its watch was set
                continue
            if event.mask & (f.DELETE | f.MOVED_FROM):
                self._writing.discard(rel)
                self._pending.pop(rel, None)
                self._done.pop(rel, None)
            elif event.mask & (f.CREATE | f.MODIFY):
                self._writing.add(rel)
                self._pending.pop(rel, None)
            elif event.mask & (f.CLOSE_WRITE | f.MOVED_TO):
                self._writing.discard(rel)
                self._candidate(rel, reset=True)

    # -- registering --------------------------------------------------------------------------
    def _ready(self, now: float) -> list[str]:
        ready: list[str] = []
        for rel, pending in list(self._pending.items()):
            if rel in self._writing or rel + SIDECAR in self._writing:
                continue
            sig = self._signature(rel)
            if sig is None:
                del self._pending[rel]
            elif sig != pending.signature:
                self._pending[rel] = _Pending(sig, now)
            elif now - pending.since >= self.settle + (self.sidecar_wait if sig[2] is None else 0.0):
                ready.append(rel)
        return sorted(ready)

    def register_ready(self, now: float) -> None:
        if now < self._retry_at:
            return
        ready = self._ready(now)
        for start in range(0, len(ready), self.batch_size):
            if self._stop and start:
                return
            self._register(ready[start : start + self.batch_size])

    def _describe(self, rel: str) -> tuple[t.CatalogFile, Signature] | None:
        """The catalog entry of a complete file, or None (logged) when it is not to be registered."""
        sig = self._pending[rel].signature
        metadata: dict[str, t.MetaScalar] = {}
        if self.pattern is not None:
            captured = self.pattern.match(rel)
            if captured is None:
                self.log(f"skipped {rel}: does not match the pattern {self.pattern.text}")
                self.stats.unmatched += 1
                self._settled(rel, sig)
                return None
            metadata.update(captured)
        path = self.root / rel
        try:
            if sig[2] is not None:
                extra = json.loads((self.root / (rel + SIDECAR)).read_text(encoding="utf-8"))
                if not isinstance(extra, dict):
                    raise ValueError("it must hold a JSON object")
                for key, value in extra.items():
                    if isinstance(value, bool) or not isinstance(value, int | float | str):
                        raise ValueError(f"{key!r} is not a number or a string")
                metadata.update(extra)
            checksum = adler32_file(path)
        except (OSError, ValueError) as exc:
            where = f"sidecar {rel + SIDECAR}: " if isinstance(exc, ValueError) else ""
            self.log(f"skipped {rel}: {where}{exc}")
            self.stats.failed += 1
            self._settled(rel, sig)
            return None
        if self._signature(rel) != sig:  # changed while read: not complete after all
            self._pending[rel] = _Pending(self._signature(rel) or sig, time.monotonic())
            return None
        item = t.CatalogFile(
            lfn=lfn_for(self.lfn_prefix, rel),
            pfn=str(path),
            size=sig[0],
            checksum=checksum,
            metadata=coerce_to_schema(metadata, self.schema),
        )
        return item, sig

    def _settled(self, rel: str, sig: Signature) -> None:
        del self._pending[rel]
        self._done[rel] = sig

    def _register(self, rels: list[str]) -> None:
        described = [(rel, d) for rel in rels if (d := self._describe(rel)) is not None]
        if not described:
            return
        try:
            result = self.client.catalog.register_files(
                [item for _, (item, _) in described], batch_size=len(described), skip_existing=True
            )
        except ServiceUnavailable as exc:
            self._retry_at = time.monotonic() + 5.0
            self.log(f"catalog unreachable ({exc.message}): retrying in 5 s")
            return
        except DomainError as exc:
            if len(described) == 1:
                rel, (item, sig) = described[0]
                self.log(f"refused {item.lfn}: {exc.message}")
                self.stats.failed += 1
                self._settled(rel, sig)
                return
            for rel, _ in described:  # find the culprit(s): one by one
                self._register([rel])
            return
        self.stats.registered += result.registered
        self.stats.skipped += result.skipped
        self.stats.batches += 1
        for rel, (_, sig) in described:
            self._settled(rel, sig)
        lfns = [item.lfn for _, (item, _) in described]
        names = ", ".join(lfns[:3]) + (f", ... ({len(lfns) - 3} more)" if len(lfns) > 3 else "")
        skipped = f", {result.skipped} already catalogued" if result.skipped else ""
        self.log(f"registered {result.registered} file(s){skipped}: {names}")


def stderr_log(message: str) -> None:
    stamp = time.strftime("%Y-%m-%d %H:%M:%S")
    print(f"{stamp} metaprod catalog watch: {message}", file=sys.stderr, flush=True)
