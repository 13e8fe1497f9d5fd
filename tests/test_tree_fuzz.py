"""Fuzzing whole trees: hostile names, special files, metadata, depmod.d files, output directories.

A bounded run (``KMODCOMPAT_TREE_FUZZ`` trees, 160 by default: 0.12 s each on an
idle machine, 0.6 s with the 2 cores shared five ways) of the property of
tests/hostile_trees.check_tree; where real kmod is installed, depmod's output
is compared with it on every tree it terminates on (kmod 30 on all, kmod 34.2
on every other one). bench/fuzz_trees.py runs the same property for 10,000+
trees; what breaks it there is kept in tests/fuzz-corpus/tree-seeds.txt and
replayed here.
"""

from __future__ import annotations

import os

import pytest

from kmodcompat.parse.scan import deadline

from . import oracle
from .hostile_trees import check_tree
from .paths import FUZZ_CORPUS

CASES = int(os.environ.get("KMODCOMPAT_TREE_FUZZ", "160"))
SEEDS = FUZZ_CORPUS / "tree-seeds.txt"
#: Real depmod of each release installed (kmod 34 on every other tree: it costs a loader start).
REAL = {v: oracle.kmod_argv(v, "depmod") for v in ("kmod30", "kmod34") if oracle.kmod_available(v)}
#: Seconds one tree may take (a hang detector far above the ~0.2 s one takes).
HANG = 60


@pytest.mark.parametrize("block", range(4))
def test_random_trees(tmp_path, block):
    seeds = [f"test:{i}" for i in range(block, CASES, 4)]
    compared = 0
    broken = []
    for i, seed in enumerate(seeds):
        work = tmp_path / str(i)
        work.mkdir()
        real = {v: argv for v, argv in REAL.items() if v == "kmod30" or i % 2}
        with deadline(HANG):
            out = check_tree(seed, work, real or None, report=i % 10 == 0, outputs=i % 10 == 5)
        compared += out.compared_with_real
        broken += [f"{seed}: {p}" for p in out.problems]
    assert not broken, "\n".join(broken[:10])
    assert not REAL or compared >= len(seeds) // 3, compared  # most trees are compared with real depmod


def _stored_seeds() -> list[str]:
    if not SEEDS.exists():
        return []
    return [line.split("#", 1)[0].strip() for line in SEEDS.read_text().splitlines() if line.split("#", 1)[0].strip()]


@pytest.mark.parametrize("seed", _stored_seeds())
def test_stored_tree_seeds(tmp_path, seed):
    """Trees bench/fuzz_trees.py found breaking the property, once fixed, stay fixed."""
    with deadline(HANG):
        out = check_tree(seed, tmp_path, REAL or None, report=True)
    assert not out.problems, out.problems
