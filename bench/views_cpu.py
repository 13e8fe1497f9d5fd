#!/usr/bin/env python3
"""CPU seconds of compute_views on a real tree, as the report calls it, in one process.

    python3 bench/views_cpu.py [--rounds 3] [--models] TREE...      (TREE: a name under /tmp/realtrees or a root)

The tree is parsed once (all cores, not timed); then each round times, by
``time.process_time()``, compute_views over every parsed module in every
format with the tree's exporter CRCs, the as-built views kept and summarized
as :func:`kmodcompat.report.build_report` does, ``jobs=1``. ``--models`` also
times the same views with every model run on every re-encoded record
(``count=False``: what the counting saves). The minimum of the rounds is
printed. The machine is shared and noisy: compare runs made back to back.
Not a test.
"""

from __future__ import annotations

import argparse
import glob
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from kmodcompat.consumers.base import tree_crcs  # noqa: E402
from kmodcompat.depmod.tree import load_tree  # noqa: E402
from kmodcompat.files.kernel import find_kernel_files, load_kernel  # noqa: E402
from kmodcompat.report import module_summary, summary_from_counts  # noqa: E402
from kmodcompat.views import ALL_FORMATS, AS_IS, _compute  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("trees", nargs="+")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--models", action="store_true")
    args = ap.parse_args()
    for name in args.trees:
        root = name if os.path.isdir(os.path.join(name, "lib")) else f"/tmp/realtrees/{name}"
        moddir = sorted(glob.glob(os.path.join(root, "lib/modules/*")))[0]
        tree = load_tree(moddir, jobs=None)
        kernel, _ = load_kernel(find_kernel_files(tree).get("symvers"), None)
        mods = [(m.path, m.record) for m in tree.modules if m.record is not None]
        expected = tree_crcs({n: c for n, c, _ in kernel.symbols}, [r for _, r in mods]) if kernel else None
        for count in (True, False) if args.models else (True,):
            times = []
            for _ in range(args.rounds):
                t0 = time.process_time()
                _compute(mods, None, ALL_FORMATS, expected, (AS_IS,), module_summary, summary_from_counts, count)
                times.append(time.process_time() - t0)
            print(f"{name}: {len(mods)} modules, {'counted' if count else 'models'}: "
                  f"min {min(times):.2f} s CPU of {', '.join(f'{t:.2f}' for t in times)}", flush=True)


if __name__ == "__main__":
    main()
