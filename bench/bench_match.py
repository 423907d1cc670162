"""Benchmark: routing catalog files to transformations, FileRouter against the naive loop.

    .venv/bin/python bench/bench_match.py [--files N] [--queries Q] [--naive-files M] [--seed S] [--runs N]

Generates N metadata dicts (seeded) and Q input queries spread over D `datatype` values (default Q/10, at
least 20: about ten consumers per data type, as a production system's steps have) and
ranges of `run` (int) and `energy` (float), routes every file with `FileRouter.route`, times the
naive loop (`[tid for tid, q in queries if q.matches(md)]`) on M files drawn at random from the
whole input (the same share of every chunk, so it sees what the router sees) and extrapolates it,
checks on a sample that both give the same answer, and prints files/s and the ratio. With
`--runs N` the whole measure is repeated (seeds S, S+1, ...) and every figure is printed as
min / median / max.
It also times routing with the data-cycle check (`route_split`: each file of a produced batch
excludes the transformations of its ancestry; here every file carries an ancestry of 3 ids).
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections.abc import Iterator
from typing import Any

from metaprod.core.metaquery import MetaQuery, Schema
from metaprod.core.router import FileRouter
from runs import Runs

SCHEMA = Schema({"datatype": "str", "run": "int", "energy": "float", "site": "str"})
SITES = ["CERN", "IN2P3", "RAL", "FNAL", "CNAF"]
CHUNK = 100_000


def datatypes_for(n: int) -> list[str]:
    return [f"type{i:04d}" for i in range(n)]


def make_queries(n: int, rng: random.Random, datatypes: list[str]) -> dict[int, MetaQuery]:
    queries: dict[int, MetaQuery] = {}
    for tid in range(n):
        d: dict[str, Any] = {"datatype": datatypes[tid % len(datatypes)]}
        if tid % 10 == 9:  # some consume two data types
            d["datatype"] = {"in": [datatypes[tid % len(datatypes)], datatypes[(tid + 7) % len(datatypes)]]}
        if rng.random() < 0.8:
            lo = rng.randrange(0, 90_000)
            d["run"] = {">=": lo, "<": lo + rng.randrange(1_000, 20_000)}
        if rng.random() < 0.6:
            a = rng.uniform(0, 80)
            d["energy"] = {">": round(a, 2), "<=": round(a + rng.uniform(5, 40), 2)}
        if rng.random() < 0.1:
            d["site"] = {"nin": rng.sample(SITES, 2)}
        queries[tid] = MetaQuery.from_dict(d, SCHEMA)
    return queries


def make_files(n: int, rng: random.Random, datatypes: list[str]) -> Iterator[list[dict[str, Any]]]:
    kinds = [*datatypes, "log", "other"]
    done = 0
    while done < n:
        size = min(CHUNK, n - done)
        yield [
            {
                "datatype": rng.choice(kinds),
                "run": rng.randrange(0, 100_000),
                "energy": rng.uniform(0, 100),
                "site": rng.choice(SITES),
                "lfn": f"/prod/file{done + j}",
            }
            for j in range(size)
        ]
        done += size


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--files", type=int, default=1_000_000)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--naive-files", type=int, default=50_000, help="files timed in the naive loop, drawn at random")
    ap.add_argument("--sample", type=int, default=20_000, help="files compared router vs naive")
    ap.add_argument(
        "--datatypes",
        type=int,
        default=0,
        help="distinct datatype values (default: queries/10, at least 20: about ten consumers per data type)",
    )
    ap.add_argument("--seed", type=int, default=12345)
    ap.add_argument("--runs", type=int, default=1, help="repeat the measure; print min/median/max of each figure")
    args = ap.parse_args(argv)
    runs = Runs()
    for run in range(args.runs):
        if args.runs > 1:
            print(f"--- run {run + 1} of {args.runs} (seed {args.seed + run})")
        if measure(args, args.seed + run, runs):
            return 1
    print(f"summary over {args.runs} run(s):")
    print(runs.summary())
    return 0


def measure(args: argparse.Namespace, seed: int, runs: Runs) -> int:
    rng = random.Random(seed)
    datatypes = datatypes_for(args.datatypes or max(20, args.queries // 10))
    queries = make_queries(args.queries, rng, datatypes)
    t0 = time.perf_counter()
    router: FileRouter[int] = FileRouter(queries)
    router.route({})  # build the index now, so that it is timed apart from routing
    build_s = time.perf_counter() - t0

    items = list(queries.items())
    tids = list(queries)
    ancestries = [frozenset(rng.sample(tids, min(3, len(tids)))) for _ in range(64)]
    route_s = naive_s = route_cpu = naive_cpu = split_s = split_cpu = 0.0
    skipped = 0
    routed = naive_count = matched = 0
    mismatches = checked = 0
    for chunk in make_files(args.files, rng, datatypes):
        route = router.route
        t0, c0 = time.perf_counter(), time.process_time()
        results = [route(md) for md in chunk]
        route_s += time.perf_counter() - t0
        route_cpu += time.process_time() - c0
        routed += len(chunk)
        matched += sum(map(len, results))

        split = router.route_split
        lineage = [ancestries[j % len(ancestries)] for j in range(len(chunk))]
        t0, c0 = time.perf_counter(), time.process_time()
        splits = [split(md, anc) for md, anc in zip(chunk, lineage, strict=True)]
        split_s += time.perf_counter() - t0
        split_cpu += time.process_time() - c0
        skipped += sum(len(out) for _, out in splits)

        # The naive loop's share of this chunk, drawn at random: spread over the whole input.
        share = round(len(chunk) * min(1.0, args.naive_files / args.files))
        picked = sorted(rng.sample(range(len(chunk)), share))
        todo = [chunk[j] for j in picked]
        if todo:
            t0, c0 = time.perf_counter(), time.process_time()
            naive = [[tid for tid, q in items if q.matches(md)] for md in todo]
            naive_s += time.perf_counter() - t0
            naive_cpu += time.process_time() - c0
            naive_count += len(todo)
            for got, want in zip((results[j] for j in picked), naive, strict=True):
                if checked < args.sample:
                    checked += 1
                    mismatches += got != set(want)
        for md, got in zip(chunk, results, strict=True):
            if checked >= args.sample:
                break
            checked += 1
            mismatches += got != {tid for tid, q in items if q.matches(md)}

    router_rate = routed / route_s
    naive_rate = naive_count / naive_s if naive_s else float("nan")
    print(
        f"queries: {len(queries)} over {len(datatypes)} datatypes, files routed: {routed:,}, "
        f"index built in {build_s * 1000:.0f} ms"
    )
    print(f"matches per file: {matched / routed:.2f} on average")
    print(
        f"router: {router_rate:,.0f} files/s ({routed:,} files in {route_s:.2f} s wall clock; "
        f"{routed / route_cpu:,.0f} files/s of CPU time)"
    )
    print(
        f"router with the data-cycle check: {routed / split_s:,.0f} files/s ({routed / split_cpu:,.0f} files/s "
        f"of CPU time; {skipped:,} of {matched:,} matches skipped as the files' own ancestry)"
    )
    print(
        f"naive loop over matches(): {naive_rate:,.0f} files/s (timed on {naive_count:,} files drawn at random "
        f"in {naive_s:.2f} s and extrapolated: {routed / naive_rate:.1f} s for {routed:,} files; "
        f"{naive_count / naive_cpu:,.0f} files/s of CPU time)"
    )
    print(f"ratio router/naive: {router_rate / naive_rate:.1f}x")
    print(f"check: router == naive on {checked:,} sampled files: {'OK' if not mismatches else 'MISMATCH'}")
    runs.add("router files/s", router_rate)
    runs.add("router with the data-cycle check files/s", routed / split_s)
    runs.add("naive loop files/s", naive_rate)
    runs.add("ratio router/naive", router_rate / naive_rate, "{:.1f}x")
    if mismatches:
        print(f"{mismatches} files routed differently", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
