"""Validation of a large production spec.

    python bench/bench_validate.py [--transformations 200] [--calls 10]
                                   [--db sqlite|mysql://root@127.0.0.1:3306] [--runs N]

Two specs of --transformations transformations, written as YAML text:
- fan-out: one root whose outputs every other transformation takes (the worst case of the
  link checks: every child's outputs can match every other child's input, N^2 undeclared
  links decided, their warnings summarised per kind);
- chain: each step takes the previous step's outputs (a realistic long chain).
Each is validated through `production validate` as a user calls it: the ValidateProduction
call of the Python client against `metaprod up` (a subprocess, fresh database), --calls times
(p50 / max; target < 1 s); then in this process the domain's validate_spec alone, and, as the
raw baseline of the same run, the YAML parse of the same text (what any reader of the spec
pays before checking anything), with the ratio of the call to it.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import yaml
from bench_pipeline import database_url, metaprod_up
from metaprod.core.spec import validate_spec
from metaprod.core.specload import load_spec_text
from runs import Runs
from specs import chain, fan_out


def timed(call: Callable[[], object], times: int) -> list[float]:
    seconds = []
    for _ in range(times):
        started = time.perf_counter()
        call()
        seconds.append(time.perf_counter() - started)
    return sorted(seconds)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--transformations", type=int, default=200)
    parser.add_argument("--calls", type=int, default=10)
    parser.add_argument("--db", default="sqlite")
    parser.add_argument("--runs", type=int, default=1)
    args = parser.parse_args()
    n = args.transformations
    texts = {name: yaml.safe_dump(make(n), sort_keys=False) for name, make in (("fan-out", fan_out), ("chain", chain))}
    runs = Runs()
    workdir = Path(tempfile.mkdtemp(prefix="metaprod-bench-"))
    try:
        for _ in range(args.runs):
            with database_url(args.db, workdir) as url, metaprod_up(workdir, url) as (client, _pid):
                for name, text in texts.items():
                    result = client.productions.validate(text)
                    assert result.ok, result.errors
                    call = timed(lambda text=text: client.productions.validate(text), args.calls)
                    domain = timed(lambda text=text: validate_spec(load_spec_text(text)), args.calls)
                    parse = timed(lambda text=text: yaml.safe_load(text), args.calls)
                    p50 = statistics.median(call)
                    print(
                        f"{name}, {n} transformations ({len(text) / 1024:.0f} KiB, {len(result.warnings)} warnings "
                        f"listed): ValidateProduction p50 {p50 * 1000:.0f} ms, max {call[-1] * 1000:.0f} ms "
                        f"(target < 1 s); validate_spec {statistics.median(domain) * 1000:.0f} ms; "
                        f"YAML parse (raw) {statistics.median(parse) * 1000:.0f} ms: the call is "
                        f"{p50 / statistics.median(parse):.1f}x the parse"
                    )
                    runs.add(f"{name} call p50 ms", p50 * 1000)
                    runs.add(f"{name} call max ms", call[-1] * 1000)
                    runs.add(f"{name} call / parse", p50 / statistics.median(parse), "{:.1f}")
        print(f"summary over {args.runs} run(s) ({args.db}):")
        print(runs.summary())
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
