"""docs/: the CLI reference matches the parser, and no relative link is broken."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_cli_reference_is_fresh() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gen_cli_docs.py"), "--check"], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr


def test_docs_links_resolve() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "check_docs_links.py")], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr


def test_nothing_refers_outside_the_repository() -> None:
    for path in [ROOT / "README.md", *(ROOT / "docs").glob("*.md")]:
        text = path.read_text(encoding="utf-8")
        assert "DESIGN.md" not in text and "../shared" not in text, path
