"""Whole Debian trees against real kmod 30 and kmod 34.2: modinfo and dump-modversions, byte for byte.

Every module of each tree is parsed once; both kmod models then render
``modinfo`` and ``modprobe --dump-modversions`` from that one record and the
result (stdout, stderr, exit status) must equal the real tool's.

Trees come from tools/debian_archive.py under $REALTREES. Missing trees
are skipped, unless KMODCOMPAT_FETCH_TREES=1 (as tools/test.sh sets), which
downloads them. The agreement figures are written to
$REALTREES/.oracle/agreement-<tree>.json.
"""

from __future__ import annotations

import json
import os
from concurrent.futures import ProcessPoolExecutor

import pytest

from kmodcompat.kmod import tools
from kmodcompat.kmod.profile import KMOD_RELEASES
from kmodcompat.errors import ModuleReadError
from kmodcompat.parse.module import parse_module

from . import oracle

pytestmark = pytest.mark.realtree

FETCH = os.environ.get("KMODCOMPAT_FETCH_TREES") == "1"
TOOLS = ("modinfo", "dump-modversions")


def _ours(paths: list[str]) -> list[tuple[str, dict[str, tuple[bytes, bytes, int]]]]:
    out = []
    for path in paths:
        try:
            opened = parse_module(path)
        except ModuleReadError as e:
            opened = e
        res = {}
        for vid, kmod in KMOD_RELEASES.items():
            res[f"modinfo-{vid}"] = tuple(tools.modinfo_file(kmod, path, opened=opened))
            res[f"dump-modversions-{vid}"] = tuple(tools.dump_modversions(kmod, path, opened=opened))
        out.append((path, res))
    return out


def ours_for_tree(mods: list[str]) -> dict[str, dict[str, tuple[bytes, bytes, int]]]:
    chunks = [mods[i:i + 64] for i in range(0, len(mods), 64)]
    result: dict[str, dict[str, tuple[bytes, bytes, int]]] = {}
    with ProcessPoolExecutor() as pool:
        for part in pool.map(_ours, chunks):
            result.update(part)
    return result


@pytest.fixture(scope="module", params=sorted(oracle.TREES))
def tree(request):
    name = request.param
    root = oracle.tree_root(name, fetch=FETCH)
    if root is None:
        pytest.skip(f"tree {name} not under {oracle.REALTREES} (KMODCOMPAT_FETCH_TREES=1 downloads it)")
    for v in KMOD_RELEASES:
        if not oracle.kmod_available(v):
            pytest.skip(f"{v} is not runnable here (tools/test.sh installs it)")
    mods = oracle.tree_modules(root)
    return name, root, mods, ours_for_tree(mods)


@pytest.mark.parametrize("version", sorted(KMOD_RELEASES))
@pytest.mark.parametrize("tool", TOOLS)
def test_tree_identical_to_kmod(tree, version, tool):
    name, root, mods, ours = tree
    real = oracle.tree_oracle(root, version, tool)
    assert sorted(real) == mods
    mismatches = []
    for m in mods:
        r = real[m]
        mine = ours[m][f"{tool}-{version}"]
        if (r.stdout, r.stderr, r.status) != mine:
            mismatches.append((m, r, mine))
    summary_path = oracle.REALTREES / ".oracle" / f"agreement-{name}.json"
    summary = json.loads(summary_path.read_text()) if summary_path.exists() else {}
    summary[f"{tool}-{version}"] = {"modules": len(mods), "identical": len(mods) - len(mismatches)}
    summary_path.parent.mkdir(parents=True, exist_ok=True)
    summary_path.write_text(json.dumps(summary, indent=1, sort_keys=True))
    print(f"{name} {tool} {version}: {len(mods) - len(mismatches)}/{len(mods)} identical")
    detail = "\n".join(f"{m}\n  real: {r.stdout[:300]!r} {r.stderr!r} {r.status}\n  ours: {mine[0][:300]!r} "
                       f"{mine[1]!r} {mine[2]}" for m, r, mine in mismatches[:5])
    assert not mismatches, f"{len(mismatches)}/{len(mods)} differ from real {version} {tool}:\n{detail}"
