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
