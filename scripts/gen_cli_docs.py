"""Generate docs/cli.md, the CLI reference, from the `metaprod` argparse parser.

Run `python scripts/gen_cli_docs.py` after changing a command; `--check` exits non-zero when
docs/cli.md does not match the parser (scripts/test.sh runs it, like gen_protos.py --check).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET = ROOT / "docs" / "cli.md"
WIDTH = "100"

HEADER = """# CLI reference

Generated from the parser by `scripts/gen_cli_docs.py`; do not edit by hand (`scripts/test.sh`
fails when this page and the parser disagree). Every command also takes the global options
`--json`, `--address`, `--token` and `--timeout`, before or after the command words, and fails
with one line on stderr and a non-zero exit. Settings and environment variables:
[configuration.md](configuration.md). Shell completion: `eval "$(metaprod completion bash)"`.
"""


def walk(parser: argparse.ArgumentParser, words: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], str]]:
    yield words, parser.format_help()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            seen: set[int] = set()
            for name, sub in action.choices.items():
                if id(sub) in seen:  # aliases
                    continue
                seen.add(id(sub))
                yield from walk(sub, (*words, name))


def render() -> str:
    os.environ["COLUMNS"] = WIDTH  # argparse wraps to the terminal: fix it
    from metaprod.clients.cli import build_parser

    parts = [HEADER]
    for words, text in walk(build_parser()):
        title = " ".join(("metaprod", *words))
        parts.append(f"\n## `{title}`\n\n```text\n{text.rstrip()}\n```\n")
    return "".join(parts)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail when docs/cli.md is stale")
    opts = parser.parse_args()
    text = render()
    if opts.check:
        if not TARGET.exists() or TARGET.read_text(encoding="utf-8") != text:
            print(f"{TARGET.relative_to(ROOT)} is stale: run python scripts/gen_cli_docs.py", file=sys.stderr)
            return 1
        return 0
    TARGET.write_text(text, encoding="utf-8")
    print(f"wrote {TARGET.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
