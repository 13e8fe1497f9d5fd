#!/usr/bin/env python3
"""The long run of the compiled parser under AddressSanitizer and UBSan (tests/accel_asan.py's harness).

    python3 bench/fuzz_accel.py [--minutes 30] [--seed 1] [--tree bookworm-amd64] [--keep DIR]

Builds kmodcompat/parse/_accel.c with -fsanitize=address,undefined, then runs the
harness for the given time: every fixture, tests/fuzz-corpus file and (with --tree)
a sample of a real tree's small modules, then mutations of them (tests/fuzzing.py),
each parsed by the compiled and the pure-Python path (the records must be equal)
and fed to each C function on an exact-size buffer, with the image's own section
extents and with boundary lies. tests/test_accel.py runs the same for 30 seconds.
A sanitizer report or a difference ends the run with a non-zero status; the input
that caused it is left in --keep (default: a scratch directory, printed). Keep it
in tests/fuzz-corpus/ with a note (see its README). Not a test.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from tests import accel_asan, oracle  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=30)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--tree", default=None, help="a tree of tests/oracle.py TREES whose small modules join the seeds")
    ap.add_argument("--keep", default=None, metavar="DIR", help="where the last input is kept")
    args = ap.parse_args()
    if accel_asan.compiler() is None:
        print("fuzz_accel: no gcc with libasan here", file=sys.stderr)
        return 2
    real = None
    if args.tree:
        root = oracle.tree_root(args.tree, fetch=True)
        real = str(root) if root is not None else None
    keep = Path(args.keep or tempfile.mkdtemp(prefix="kmc-fuzz-accel-"))
    keep.mkdir(parents=True, exist_ok=True)
    so = accel_asan.build(keep / "build")
    seconds = args.minutes * 60
    done = accel_asan.run(so, seconds, args.seed, real, timeout=seconds + 600, current=str(keep / "current.ko"))
    sys.stdout.write(done.stdout)
    sys.stderr.write(done.stderr[-20000:])
    if done.returncode:
        print(f"fuzz_accel: exit {done.returncode} (86: ASan, 87: UBSan, 1: records differ); the input: "
              f"{keep / 'current.ko'}", file=sys.stderr)
    else:
        print(f"fuzz_accel: seed {args.seed}, {args.minutes:g} min: nothing found", file=sys.stderr)
    return done.returncode


if __name__ == "__main__":
    sys.exit(main())
