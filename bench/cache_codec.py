#!/usr/bin/env python3
"""The cache's record codec against pickle, on a real tree's records. Not a test.

    python3 bench/cache_codec.py [--tree bookworm-amd64] [--rounds 5]

Parses the tree once (all cores), then times, per round and over every
record: pickle.dumps/loads (protocol 5, records.py's flat rows: what the
cache stored before) and codec.encode/decode (JSON, every column checked),
and prints medians, total bytes and the decode ratio. Also checks that every
record decodes equal to itself.
"""

from __future__ import annotations

import argparse
import pickle
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from tests import oracle  # noqa: E402
from kmodcompat.cache import codec  # noqa: E402
from kmodcompat.parse.scan import gc_paused, parse_many  # noqa: E402


def timed(fn) -> tuple[float, object]:
    t = time.perf_counter()
    with gc_paused():
        out = fn()
    return time.perf_counter() - t, out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tree", default="bookworm-amd64")
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    root = oracle.tree_root(args.tree)
    if root is None:
        raise SystemExit(f"tree {args.tree} not available")
    paths = [str(p) for p in oracle.tree_modules(root)]
    recs = parse_many(paths, jobs=None)
    times: dict[str, list[float]] = {k: [] for k in ("pickle.dumps", "pickle.loads", "encode", "decode")}
    for _ in range(args.rounds):
        t, pk = timed(lambda: [pickle.dumps(r, protocol=5) for r in recs])
        times["pickle.dumps"].append(t)
        t, _ = timed(lambda pk=pk: [pickle.loads(b) for b in pk])
        times["pickle.loads"].append(t)
        t, js = timed(lambda: [codec.encode(r) for r in recs])
        times["encode"].append(t)
        t, back = timed(lambda js=js: [codec.decode(b, p) for b, p in zip(js, paths)])
        times["decode"].append(t)
    bad = sum(1 for a, b in zip(recs, back) if (a != b if not isinstance(a, Exception) else str(a) != str(b)))
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"tree {args.tree}: {len(recs)} records, {args.rounds} rounds (medians), {bad} differ after decoding")
    for k, v in med.items():
        print(f"  {k:14s} {v:7.3f} s")
    print(f"  bytes: pickle {sum(map(len, pk)):,}, codec {sum(map(len, js)):,}")
    print(f"  decode / pickle.loads: {med['decode'] / med['pickle.loads']:.2f}x")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
