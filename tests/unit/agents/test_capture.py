"""The capped log of an attempt's output: head as it comes, tail kept within its size,
a marker of what was cut; nothing cut when it fits."""

from __future__ import annotations

import os
import threading

from metaprod.agents.capture import Capture, cut_marker


def captured(data: bytes, head: int, tail: int, chunk: int = 7) -> tuple[bytes, int]:
    read_fd, write_fd = os.pipe()
    out: list[bytes] = []
    capture = Capture(read_fd, out.append, head=head, tail=tail)
    peak = 0

    def feed() -> None:
        for i in range(0, len(data), chunk):
            os.write(write_fd, data[i : i + chunk])
        os.close(write_fd)

    writer = threading.Thread(target=feed)
    writer.start()
    while not capture.eof:
        capture.read_available()
        peak = max(peak, capture.tail_bytes)
    writer.join()
    capture.finish()
    return b"".join(out), peak


def test_output_that_fits_is_kept_whole() -> None:
    data = b"".join(b"line %d\n" % i for i in range(100))
    assert captured(data, head=1000, tail=1000)[0] == data


def test_head_and_tail_are_kept_with_a_marker_of_what_was_cut() -> None:
    data = bytes(range(256)) * 40  # 10240 bytes
    out, peak = captured(data, head=100, tail=300)
    assert out == data[:100] + cut_marker(len(data) - 400) + data[-300:]
    assert peak <= 300  # never more than the tail in memory


def test_a_large_output_costs_head_plus_tail() -> None:
    data = b"x" * (5 * 2**20)
    out, peak = captured(data, head=4096, tail=4096, chunk=65536)
    assert len(out) == 8192 + len(cut_marker(len(data) - 8192)) and peak <= 4096
    assert b"5234688 bytes of output cut" in out


def test_a_pipe_of_several_attempts_is_cut_at_each_ones_end_mark() -> None:
    """A job's sandbox writes its attempts' output one after the other into one pipe, each
    ended by its own mark: each capture gets its attempt's bytes exactly, whatever the
    reads' boundaries (a mark split between two reads, the next output read with it)."""
    marks = [b"\0metaprod-end-%d\0" % i for i in range(3)]
    outputs = [b"first line\nsecond", b"", b"x" * 100 + b"\0metaprod-end-" + b"tail"]
    stream = b"".join(o + m for o, m in zip(outputs, marks, strict=True))
    for chunk in (1, 5, 13, 64, len(stream)):
        read_fd, write_fd = os.pipe()
        for i in range(0, len(stream), chunk):
            os.write(write_fd, stream[i : i + chunk])
        os.close(write_fd)
        ahead = b""
        for output, mark in zip(outputs, marks, strict=True):
            got: list[bytes] = []
            capture = Capture(os.dup(read_fd), got.append, head=1000, tail=1000, mark=mark, ahead=ahead)
            capture.finish()
            ahead = capture.ahead
            assert b"".join(got) == output, (chunk, mark)
        assert ahead == b""
        os.close(read_fd)


def test_output_without_its_mark_is_kept_whole_when_the_pipe_ends() -> None:
    read_fd, write_fd = os.pipe()
    os.write(write_fd, b"cut short\0metaprod-e")
    os.close(write_fd)
    got: list[bytes] = []
    capture = Capture(read_fd, got.append, head=1000, tail=1000, mark=b"\0metaprod-end-9\0")
    capture.finish()
    assert b"".join(got) == b"cut short\0metaprod-e"


def test_output_is_written_as_it_comes_unless_it_may_begin_the_mark() -> None:
    """The wrapper's own lines go to the log between reads: a read's output is written at
    once (not held back by the length of the mark), so it cannot cut a line in two."""
    read_fd, write_fd = os.pipe()
    got: list[bytes] = []
    capture = Capture(read_fd, got.append, head=1000, tail=1000, mark=b"\0metaprod-end-7\0")
    os.write(write_fd, b"a whole line\n")
    capture.read_available()
    assert got == [b"a whole line\n"]
    os.write(write_fd, b"then\0metaprod")
    capture.read_available()
    assert got == [b"a whole line\n", b"then"]  # what may begin the mark waits for the next read
    os.write(write_fd, b"-end-7\0next")
    capture.finish()
    assert (b"".join(got), capture.ahead) == (b"a whole line\nthen", b"next")
    os.close(write_fd)
