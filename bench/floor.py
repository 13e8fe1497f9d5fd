#!/usr/bin/env python3
"""The floors under a cold `kmodcompat report`: work any report must do before its analysis.

    python3 bench/floor.py startup
    python3 bench/floor.py decompress BASEDIR KVER [-j N]
    python3 bench/floor.py parse BASEDIR KVER [-j N]

``startup``: the interpreter and the modules a report imports, nothing run.
``decompress``: startup, then every module file of the tree (as depmod finds
them) read and decompressed once, on N processes (default: all cores), and
nothing else: what the library builds this Python loads cost.
``parse``: startup, then the tree read and parsed into records (no cache) as
`report` does before it analyses anything.

bench.py times these beside depmod in the same rounds: a report can be no
faster than ``parse``, whatever its analysis costs. Not a test.
"""

from __future__ import annotations

import argparse
import gc
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import kmodcompat.report  # noqa: E402,F401  (what a report imports, networkx included)
import kmodcompat.cli.report  # noqa: E402,F401
from kmodcompat.errors import ModuleReadError  # noqa: E402
from kmodcompat.files.opener import read_module_bytes  # noqa: E402
from kmodcompat.parse.scan import gc_paused, map_files  # noqa: E402
from kmodcompat.depmod.tree import load_tree, parse_tree  # noqa: E402


def _inflate(path: str) -> int | ModuleReadError:
    try:
        return len(read_module_bytes(path).data)
    except ModuleReadError as e:
        return e


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("stage", choices=("startup", "decompress", "parse"))
    ap.add_argument("basedir", nargs="?")
    ap.add_argument("kver", nargs="?")
    ap.add_argument("-j", "--jobs", type=int, default=None)
    args = ap.parse_args()
    if args.stage == "startup":
        return
    if args.basedir is None or args.kver is None:
        ap.error(f"{args.stage} needs BASEDIR and KVER")
    tree = load_tree(args.basedir, args.kver, parse=False)
    if args.stage == "decompress":
        sizes = map_files(_inflate, [m.path for m in tree.modules], args.jobs)
        failed = [s for s in sizes if not isinstance(s, int)]
        print(f"{len(sizes) - len(failed)} modules, {sum(s for s in sizes if isinstance(s, int)) >> 20} MiB "
              f"decompressed, {len(failed)} unreadable")
    else:
        with gc_paused():  # as cli/report.py parses: the records frozen before the collector is back on
            tree = parse_tree(tree, jobs=args.jobs, cache=None)
            gc.freeze()
        print(f"{len(tree.modules)} modules parsed, {len(tree.failures)} unreadable")


if __name__ == "__main__":
    main()
