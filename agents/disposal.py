"""Removal of a deleted production's files outside the database (db.cleaning.Disposal): its
attempts' logs and work directories under the data directory, and, with `--purge-outputs`,
the stored content of its outputs under the output storage. Nothing outside those two roots
is ever removed, whatever a record says."""

from __future__ import annotations

import contextlib
import logging
import shutil
from pathlib import Path

import fsspec
from metaprod.agents.settings import AgentSettings
from metaprod.db.cleaning import Disposal

log = logging.getLogger(__name__)


class Disposer:
    def __init__(self, settings: AgentSettings) -> None:
        self.data_dir = settings.data_dir
        self.storage = settings.storage.rstrip("/")

    def __call__(self, disposal: Disposal) -> None:
        for path in disposal.paths:
            self._remove_local(Path(path))
        if disposal.stored:
            self._remove_stored(disposal.stored)

    def _remove_local(self, path: Path) -> None:
        if not path.is_absolute() or not path.resolve().is_relative_to(self.data_dir):
            log.warning("not removing %s: outside the data directory %s", path, self.data_dir)
            return
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)

    def _remove_stored(self, pfns: tuple[str, ...]) -> None:
        fs, root = fsspec.core.url_to_fs(self.storage)
        root = root.rstrip("/")
        parents: set[str] = set()
        for pfn in pfns:
            _, path = fsspec.core.url_to_fs(pfn)
            if not path.startswith(root + "/") or "/../" in path:
                log.warning("not removing %s: outside the output storage %s", pfn, self.storage)
                continue
            with contextlib.suppress(FileNotFoundError):
                fs.rm_file(path)
            parents.add(path.rsplit("/", 1)[0])
        # The attempt directories (ROOT/<production>/<transformation>/<task>/a<attempt>) and
        # those above them, once empty.
        for parent in sorted(parents, key=len, reverse=True):
            while parent.startswith(root + "/"):
                try:
                    fs.rmdir(parent)
                except OSError:
                    break
                parent = parent.rsplit("/", 1)[0]
