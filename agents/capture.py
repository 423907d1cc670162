"""An attempt's output (its stdout and stderr) on its way to the job's log, capped: the first
`head` bytes are written as they come, then only the last `tail` bytes are kept (in memory,
never more than `tail` bytes), written after a marker line saying how many bytes were cut,
once the output ends. 200 MB of output thus costs the log and the wrapper `head + tail`.

The command writes into a pipe; the wrapper's thread that waits for the command reads it
(:meth:`Capture.wait`), so no thread is added per attempt."""

from __future__ import annotations

import contextlib
import os
import select
import time
from collections import deque
from collections.abc import Callable, Sequence

CHUNK = 65536
# Head and tail, each: an attempt's part of the log (both, the marker and its own lines)
# then fits in what `task log` shows (its last MiB: metaprod.db.transformations.LOG_TAIL_BYTES).
DEFAULT_KEEP = 256 * 1024


def cut_marker(cut: int) -> bytes:
    return f"\n[metaprod] ... {cut} bytes of output cut (the log keeps its head and its tail) ...\n".encode()


class Capture:
    """Reads a command's output from `read_fd` (the read end of the pipe whose write end is
    its stdout and stderr) and writes it to `write` (the log), capped. Closes `read_fd`."""

    def __init__(
        self,
        read_fd: int,
        write: Callable[[bytes], None],
        *,
        head: int,
        tail: int,
        linger: float = 1.0,
        mark: bytes | None = None,
        ahead: bytes = b"",
    ) -> None:
        self.fd = read_fd
        # How long finish() waits for the end of the output (0: what the pipe holds is all,
        # as when a job's sandbox reports that the attempt's processes are gone).
        self.linger = linger
        os.set_blocking(read_fd, False)
        self.write = write
        self.head_left = head
        self.tail_size = tail
        self.tail: deque[bytes] = deque()
        self.tail_bytes = 0
        self.cut = 0
        self.total = 0
        self.eof = False
        # A pipe that carries several attempts' output one after the other (a job's sandbox):
        # this attempt's ends at `mark`; what came after it is the next one's (`ahead`), as
        # `ahead` given here is what the previous attempt's capture read past its own mark.
        self.mark = mark
        self.held = b""  # the last bytes read, held back while they may begin the mark
        self.ahead = b""
        if mark is not None and ahead:
            self._scan(ahead)

    def _scan(self, data: bytes) -> None:
        assert self.mark is not None
        data = self.held + data
        at = data.find(self.mark)
        if at >= 0:
            self.held, self.ahead, self.eof = b"", data[at + len(self.mark) :], True
            if at:
                self._take(data[:at])
            return
        # Held back: only an end of the data that may begin the mark (output is written on
        # as it comes, so a line is not cut where the wrapper's own lines could come between).
        start = max(0, len(data) - len(self.mark) + 1)
        held = len(data)
        if self.mark[:1] in data[start:]:
            held = next((i for i in range(start, len(data)) if self.mark.startswith(data[i:])), held)
        self.held = data[held:]
        if held:
            self._take(data[:held])

    def _take(self, data: bytes) -> None:
        self.total += len(data)
        if self.head_left > 0:
            now, data = data[: self.head_left], data[self.head_left :]
            self.head_left -= len(now)
            self.write(now)
            if not data:
                return
        self.tail.append(data)
        self.tail_bytes += len(data)
        while self.tail_bytes > self.tail_size:
            extra = self.tail_bytes - self.tail_size
            first = self.tail[0]
            if len(first) <= extra:
                self.tail.popleft()
                self.tail_bytes -= len(first)
                self.cut += len(first)
            else:
                self.tail[0] = first[extra:]
                self.tail_bytes -= extra
                self.cut += extra

    def read_available(self) -> None:
        """Everything the pipe holds now (without blocking)."""
        while not self.eof:
            try:
                data = os.read(self.fd, CHUNK)
            except BlockingIOError:
                return
            except OSError:
                data = b""
            if not data:
                self.eof = True
                if self.held:  # no mark came (the sandbox died): what was held is output
                    self._take(self.held)
                    self.held = b""
                return
            if self.mark is not None:
                self._scan(data)
            else:
                self._take(data)

    def wait(self, stop: int | Sequence[int], timeout: float | None) -> bool:
        """Read the output until one of the descriptors `stop` (a pidfd: its process ended)
        is readable: True, or until `timeout` seconds (None: no limit) have passed: False."""
        deadline = None if timeout is None else time.monotonic() + timeout
        stops = {stop} if isinstance(stop, int) else set(stop)
        poller = select.poll()
        for fd in stops:
            poller.register(fd, select.POLLIN)
        if not self.eof:
            poller.register(self.fd, select.POLLIN)
        while True:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            events = poller.poll(None if left is None else left * 1000)
            for fd, _ in events:
                if fd == self.fd:
                    self.read_available()
                    if self.eof:
                        poller.unregister(self.fd)
            if any(fd in stops for fd, _ in events):
                return True
            if deadline is not None and time.monotonic() >= deadline:
                return False

    def finish(self) -> None:
        """The command has ended (and what it left was killed): read what is left, for at
        most `linger` seconds (a process beyond our reach may hold the pipe open), then
        write the kept tail after the marker, and close the pipe."""
        deadline = time.monotonic() + self.linger
        while not self.eof:
            self.read_available()
            left = deadline - time.monotonic()
            if self.eof or left <= 0:
                break
            with contextlib.suppress(InterruptedError):
                select.select([self.fd], [], [], left)
        if self.cut:
            self.write(cut_marker(self.cut))
        if self.tail:
            self.write(b"".join(self.tail))
        self.tail.clear()
        os.close(self.fd)


__all__ = ["CHUNK", "DEFAULT_KEEP", "Capture", "cut_marker"]
