"""What the tests ask the kernel about processes."""

from __future__ import annotations

from pathlib import Path


def process_alive(pid: int) -> bool:
    """True if the process exists and is not a zombie."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:  # gone (FileNotFoundError), or ending mid-read (ESRCH)
        return False
