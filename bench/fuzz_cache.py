#!/usr/bin/env python3
"""The cache under long attack (issue 15): random corruptions of a real tree's cache, and concurrent writers.

    python3 bench/fuzz_cache.py [--tree bookworm-amd64] [--modules N] [--corruptions 1000] [--writer-runs 100]
                                [--json FILE]

Corruptions: the cache of the tree's modules (the first N with --modules) is built once; each round copies it,
corrupts it (tests/cache_fuzzing.py: random bytes, a random page, truncation, zeroed pages, two pages swapped),
opens it, reads every module through it and writes back what it missed, as parse_cached() does (the misses
are not parsed again: the parser is the same with and without the cache, so each served result is compared
with the uncached parse instead). Each round must serve only results equal to the uncached parse, and raise
nothing (a traceback is counted as a failure and printed). Concurrent writers: each run starts with no cache
and four processes, each
parsing an overlapping quarter of the modules through the same cache; every process must exit 0 without a
traceback, and afterwards the cache must hold every file each of them wrote (no lost commit) and give results
equal to an uncached parse. Prints the outcomes per kind; not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from tests import oracle  # noqa: E402
from tests.cache_fuzzing import corrupt  # noqa: E402
from kmodcompat.cache import RecordCache, parse_cached  # noqa: E402
from kmodcompat.cache.keys import identity_and_digest  # noqa: E402
from kmodcompat.errors import ModuleReadError  # noqa: E402
from kmodcompat.parse.scan import parse_many  # noqa: E402


def key(v):
    return v if not isinstance(v, ModuleReadError) else (v.path, v.reason, v.code, v.errno, v.detail, v.compression)


WRITER = """
import sys
sys.path.insert(0, sys.argv[2])
from kmodcompat.cache import RecordCache, parse_cached
with RecordCache(sys.argv[1]) as c:
    parse_cached(sys.argv[3:], c, jobs=1)
"""


def corruptions(db: str, paths: list[str], expected: list, rounds: int, rng: random.Random) -> dict:
    pristine = Path(db).read_bytes()
    outcomes: Counter = Counter()
    kinds: Counter = Counter()
    failures = []
    work = db + ".fuzz"
    started = time.monotonic()
    for i in range(rounds):
        for suffix in ("", "-wal", "-shm", ".damaged", ".damaged-wal", ".damaged-shm", "-journal"):
            if os.path.exists(work + suffix):
                os.unlink(work + suffix)
        data = bytearray(pristine)
        kinds[corrupt(data, rng)] += 1
        Path(work).write_bytes(bytes(data))
        try:
            try:
                c = RecordCache(work)
            except OSError:
                outcomes["unavailable (one line), everything parsed"] += 1
                continue
            with c:
                # What parse_cached does, without paying for the parses: what the cache serves must equal
                # the uncached parse; what it misses is written back (as a parse would be) into the damaged file.
                got = c.get_many(paths)
                moved = c.store is not None and c.store.moved_aside
                hits = c.hits
                missing = [i for i, v in enumerate(got) if v is None]
                c.put_parsed([(paths[i], *identity_and_digest(paths[i]), expected[i]) for i in missing])
                usable = c.usable
                got = [v if v is not None else expected[i] for i, v in enumerate(got)]
            if list(map(key, got)) != list(map(key, expected)):
                outcomes["RESULTS DIFFER"] += 1
                failures.append(f"round {i}: results differ")
            elif moved:
                outcomes["moved aside and rebuilt"] += 1
            elif not usable:
                outcomes["damage found while reading: given up for the run"] += 1
            elif hits == len(paths):
                outcomes["undamaged rows: every record served"] += 1
            else:
                outcomes["damaged rows dropped, parsed again"] += 1
        except Exception:
            outcomes["TRACEBACK"] += 1
            failures.append(f"round {i}: {traceback.format_exc()}")
        if (i + 1) % 50 == 0:
            print(f"  {i + 1} corruptions, {time.monotonic() - started:.0f} s: {dict(outcomes)}", file=sys.stderr)
    return {"rounds": rounds, "kinds": dict(kinds), "outcomes": dict(outcomes), "failures": failures[:20],
            "seconds": round(time.monotonic() - started, 1)}


def writers(tmp: Path, paths: list[str], expected: list, runs: int) -> dict:
    outcomes: Counter = Counter()
    failures = []
    started = time.monotonic()
    quarter = max(1, len(paths) // 4)
    for run in range(runs):
        db = str(tmp / f"w{run}" / "cache.sqlite")
        groups = [paths[i * quarter:(i + 1) * quarter + quarter // 2] for i in range(4)]  # overlapping
        procs = [subprocess.Popen([sys.executable, "-c", WRITER, db, str(REPO), *g], stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True) for g in groups]
        bad = False
        for p in procs:
            out, err = p.communicate()
            if p.returncode != 0 or "Traceback" in err:
                bad = True
                failures.append(f"run {run}: rc {p.returncode}: {err[-2000:]}")
            elif err:
                outcomes["a process went on without the cache (one line)"] += 1
        with RecordCache(db) as c:
            written = {bytes(p) for (p,) in c.store.db.execute("SELECT path FROM files")}
            got = parse_cached(paths, c, jobs=1)
        wanted = {os.fsencode(os.path.abspath(p)) for g in groups for p in g}
        lost = len(wanted - written) if not any("without" in f for f in failures[-4:]) else 0
        if lost:
            outcomes["LOST COMMITS"] += 1
            failures.append(f"run {run}: {lost} files written but not in the cache")
        if list(map(key, got)) != list(map(key, expected)):
            outcomes["RESULTS DIFFER"] += 1
            bad = True
        outcomes["TRACEBACK or failed" if bad else "clean"] += 1
        shutil.rmtree(tmp / f"w{run}")
        if (run + 1) % 10 == 0:
            print(f"  {run + 1} writer runs, {time.monotonic() - started:.0f} s: {dict(outcomes)}", file=sys.stderr)
    return {"runs": runs, "processes": 4, "outcomes": dict(outcomes), "failures": failures[:20],
            "seconds": round(time.monotonic() - started, 1)}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tree", default="bookworm-amd64")
    ap.add_argument("--modules", type=int, default=None, help="the first N modules only")
    ap.add_argument("--corruptions", type=int, default=1000)
    ap.add_argument("--writer-runs", type=int, default=100)
    ap.add_argument("--writer-modules", type=int, default=400, help="modules per concurrent-writer run")
    ap.add_argument("--seed", type=int, default=15)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    root = oracle.tree_root(args.tree)
    if root is None:
        raise SystemExit(f"tree {args.tree} not available")
    paths = [str(p) for p in oracle.tree_modules(root)][:args.modules]
    expected = parse_many(paths)
    result = {"tree": args.tree, "modules": len(paths), "cores": os.cpu_count()}
    with tempfile.TemporaryDirectory(prefix="fuzz-cache-") as tmp:
        db = os.path.join(tmp, "cache.sqlite")
        with RecordCache(db) as c:
            parse_cached(paths, c)
        subprocess.run(["sqlite3", db, "PRAGMA wal_checkpoint(TRUNCATE)"], capture_output=True)
        result["cache_bytes"] = os.path.getsize(db)
        if args.corruptions:
            result["corruptions"] = corruptions(db, paths, expected, args.corruptions, random.Random(args.seed))
        if args.writer_runs:
            wpaths = paths[:args.writer_modules]
            result["writers"] = writers(Path(tmp), wpaths, expected[:len(wpaths)], args.writer_runs)
    print(json.dumps(result, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1) + "\n")
    bad = any(k.isupper() or k.startswith(("RESULTS", "LOST", "TRACEBACK")) for part in ("corruptions", "writers")
              for k in result.get(part, {}).get("outcomes", {}))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
