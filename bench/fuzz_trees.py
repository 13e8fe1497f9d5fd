#!/usr/bin/env python3
"""Long-run fuzzing of everything around the module files: trees, depmod.d files, names, output directories.

    python3 bench/fuzz_trees.py                      # 10,000 trees over all cores
    python3 bench/fuzz_trees.py -n 500 -j 2          # a quick run
    python3 bench/fuzz_trees.py --patterns 200000    # depmod.d kernel patterns against glibc only

Tree ``i`` of a run is ``random_tree(random.Random(f"{seed}:{i}"))`` from
tests/hostile_trees.py: fixture modules under hostile names (newlines, escape
sequences, bytes that are not UTF-8, '|', '<img>'), FIFOs, sockets, links to
/dev/zero and /dev/null, dangling links, link loops, directories 50 to 1,100
deep, modules.order / modules.builtin / modules.builtin.modinfo that are
garbage, FIFOs, links to /dev/zero or directories, depmod.d files with odd
patterns, NULs, 20,000-word lines, and output directories with planted links.
The property is tests/hostile_trees.check_tree (the one tests/test_tree_fuzz.py
runs on 160 trees): the survey, ``depmod -n`` (compared byte for byte with
real kmod 30 and 34.2 wherever real depmod terminates), ``validate`` and, for
every fifth tree, ``report`` finish without a traceback, print no raw control
character of their own, and write nothing through a planted link. Every tree
runs under an alarm (``--timeout``) in a worker under an address-space limit
(``--memory-limit``).

A tree that breaks the property is listed with its seed (``--seed S`` and its
index rebuild it: ``check_tree(f"{S}:{i}", ...)``) and appended to
tests/fuzz-corpus/tree-seeds.txt, which tests/test_tree_fuzz.py replays. Exit
status 0 when nothing broke.

``--patterns N`` compares N random ERE patterns (tests/hostile_trees.random_pattern,
kernel-version-like texts) between kmodcompat.depmod.ere and glibc's
regcomp/regexec (ctypes), each pair under the alarm.
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import shutil
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from kmodcompat.parse.scan import DeadlineExceeded, deadline  # noqa: E402
from tests import oracle  # noqa: E402
from tests.hostile_trees import check_tree, random_pattern  # noqa: E402

SEEDS_FILE = REPO / "tests" / "fuzz-corpus" / "tree-seeds.txt"
_ARGS: argparse.Namespace


def _init(args: argparse.Namespace) -> None:
    global _ARGS
    _ARGS = args
    limit = args.memory_limit << 20
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def run_block(start: int, stop: int) -> tuple[int, Counter, list[str], int]:
    """Trees ``start`` to ``stop``: (done, outcome counts, problems, peak RSS KiB)."""
    args = _ARGS
    real = {v: oracle.kmod_argv(v, "depmod") for v in ("kmod30", "kmod34") if oracle.kmod_available(v)} \
        if not args.no_real else {}
    outcomes: Counter = Counter()
    problems: list[str] = []
    base = Path(tempfile.mkdtemp(prefix="kmc-fuzz-trees-"))
    try:
        for i in range(start, stop):
            seed = f"{args.seed}:{i}"
            work = base / str(i)
            work.mkdir()
            try:
                with deadline(args.timeout):
                    out = check_tree(seed, work, real or None, report=i % 5 == 0, outputs=i % 10 == 3)
                problems += [f"{seed}: {p}" for p in out.problems]
                outcomes["compared with real depmod" if out.compared_with_real else "not compared"] += 1
                if out.real_timed_out:
                    outcomes["real depmod did not finish (not compared)"] += 1
                outcomes["with skipped paths" if out.skipped else "nothing skipped"] += 1
            except DeadlineExceeded:
                problems.append(f"{seed}: hang: no result within {args.timeout:g} s")
            except Exception as e:  # noqa: BLE001 -- anything escaping the property is what we hunt
                problems.append(f"{seed}: exception: {type(e).__name__}: {str(e).splitlines()[0][:300]}")
            finally:
                shutil.rmtree(work, ignore_errors=True)
    finally:
        os.system(f"rm -rf -- '{base}'")  # deep trees: shutil.rmtree recurses
    return stop - start, outcomes, problems, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def run_patterns(start: int, stop: int) -> tuple[int, Counter, list[str], int]:
    sys.path.insert(0, str(REPO / "tests"))
    from tests.test_ere import glibc, ours  # noqa: PLC0415 -- ctypes glibc, only in this mode
    from kmodcompat.depmod.ere import PatternTooComplex

    outcomes: Counter = Counter()
    problems: list[str] = []
    for i in range(start, stop):
        rng = random.Random(f"{_ARGS.seed}:p{i}")
        p = random_pattern(rng).encode()
        texts = (b"6.1.0-13-amd64", b"6.12.117+deb13-amd64", bytes(rng.choice(b"a6.-_") for _ in range(8)))
        try:
            with deadline(_ARGS.timeout):
                for t in texts:
                    try:
                        got = ours(p, t)
                    except PatternTooComplex:
                        outcomes["too complex"] += 1
                        break
                    want = glibc(p, t)
                    outcomes["refused by regcomp" if want is None else "compared"] += 1
                    if got != want and not (b"\\" in p and b"{" in p):  # glibc's back-reference bug: test_ere
                        problems.append(f"{_ARGS.seed}:p{i}: {p!r} on {t!r}: ours {got}, glibc {want}")
        except DeadlineExceeded:
            problems.append(f"{_ARGS.seed}:p{i}: {p!r}: hang")
    return stop - start, outcomes, problems, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-n", "--trees", type=int, default=10_000)
    ap.add_argument("--patterns", type=int, default=0, help="compare this many ERE patterns with glibc instead")
    ap.add_argument("-j", "--jobs", type=int, default=len(os.sched_getaffinity(0)))
    ap.add_argument("--seed", type=int, default=1, help="run seed (tree i uses Random(f'{seed}:{i}'))")
    ap.add_argument("--timeout", type=float, default=120.0, help="seconds per tree before it counts as a hang")
    ap.add_argument("--memory-limit", type=int, default=2048, metavar="MIB",
                    help="address-space limit per worker (RLIMIT_AS)")
    ap.add_argument("--no-real", action="store_true", help="do not compare with real depmod")
    ap.add_argument("--block", type=int, default=50, help="trees per task")
    args = ap.parse_args()

    count = args.patterns or args.trees
    task = run_patterns if args.patterns else run_block
    what = "patterns" if args.patterns else "trees"
    print(f"{count} {what}, {args.jobs} workers, seed {args.seed}", flush=True)
    blocks = [(i, min(i + args.block, count)) for i in range(0, count, args.block)]
    done, outcomes, problems, peak = 0, Counter(), [], 0
    started = time.monotonic()
    with ProcessPoolExecutor(args.jobs, initializer=_init, initargs=(args,)) as pool:
        for fut in as_completed([pool.submit(task, a, b) for a, b in blocks]):
            n, o, p, rss = fut.result()
            done += n
            outcomes.update(o)
            problems += p
            peak = max(peak, rss)
            if done % 1000 < args.block:
                print(f"  {done}/{count} {what}, {len(problems)} problems, {time.monotonic() - started:.0f} s",
                      flush=True)
    elapsed = time.monotonic() - started
    print(f"{what}: {done}; problems: {len(problems)}; peak RSS of a worker: {peak >> 10} MiB; "
          f"time: {elapsed:.0f} s ({done / max(elapsed, 1e-9):.1f} {what}/s)")
    print("outcomes: " + ", ".join(f"{k} {v}" for k, v in sorted(outcomes.items())))
    for line in problems[:30]:
        print("  " + line)
    if problems and not args.patterns:
        SEEDS_FILE.parent.mkdir(parents=True, exist_ok=True)
        with SEEDS_FILE.open("a") as f:
            for line in problems:
                f.write(line.split(": ", 1)[0] + "  # " + line.split(": ", 1)[1][:200].replace("\n", " ") + "\n")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
