"""``kmodcompat depmod`` against real kmod 30 and 34.2 depmod on five whole Debian trees.

For each tree and kmod release, real depmod runs on a scratch root (module
directories symlinked, nothing written into $REALTREES) with an empty ``-C``
configuration so the host's /etc/depmod.d stays out:

* ``depmod -C conf -b ROOT -e -F System.map KVER`` (``-F`` only where the
  tree has a System.map): every file it writes, ``.bin`` ones included, its
  stderr and exit status must equal ours byte for byte;
* ``depmod -C conf -b ROOT -n -e -E Module.symvers KVER``: stdout, stderr
  and status must be equal.

The agreement figures and the timings of one whole-tree run (ours next to
real depmod, measured in the same test) go to
$REALTREES/.oracle/depmod-agreement-<tree>.json; nothing asserts on time.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from kmodcompat.kmod.profile import KMOD_RELEASES
from kmodcompat.depmod.kernel_symbols import load_module_symvers, load_system_map
from kmodcompat.depmod.resolve import run_depmod
from kmodcompat.depmod.writer import render
from kmodcompat.depmod.tree import load_tree

from . import oracle

pytestmark = pytest.mark.realtree

FETCH = os.environ.get("KMODCOMPAT_FETCH_TREES") == "1"


def _stderr(*groups) -> bytes:
    return b"".join(d.line().encode("utf-8", "surrogateescape") for g in groups for d in g)


@pytest.fixture(scope="module", params=sorted(oracle.TREES))
def real_tree(request) -> tuple[str, Path]:
    name = request.param
    root = oracle.tree_root(name, fetch=FETCH)
    if root is None:
        pytest.skip(f"tree {name} not under {oracle.REALTREES} (KMODCOMPAT_FETCH_TREES=1 downloads it)")
    return name, root


def _record(tree: str, key: str, value: dict) -> None:
    path = oracle.REALTREES / ".oracle" / f"depmod-agreement-{tree}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    summary = json.loads(path.read_text()) if path.exists() else {}
    summary[key] = value
    path.write_text(json.dumps(summary, indent=1, sort_keys=True))


@pytest.mark.parametrize("version", sorted(KMOD_RELEASES))
def test_depmod_whole_tree_identical(real_tree, version, tmp_path):
    name, root = real_tree
    if not oracle.kmod_available(version):
        pytest.skip(f"{version} is not runnable here (tools/test.sh installs it)")
    kmod = KMOD_RELEASES[version]
    krel = oracle.tree_krel(root)
    smap, symvers = oracle.kernel_symbol_files(root)
    scratch = tmp_path / "root"
    moddir = oracle.depmod_scratch_root(root, scratch)
    conf = tmp_path / "conf"
    conf.mkdir()

    started = time.perf_counter()
    tree = load_tree(str(scratch), krel, config=[str(conf)], kmod=kmod)
    kernel = load_system_map(str(smap)) if smap else None
    dm = run_depmod(tree, kernel, print_unknown=kernel is not None)
    ours = render(dm)
    ours_s = time.perf_counter() - started

    args = ["-C", str(conf), "-b", str(scratch)] + (["-e", "-F", str(smap)] if smap else []) + [krel]
    started = time.perf_counter()
    real = oracle.run_kmod(version, "depmod", args)
    real_s = time.perf_counter() - started
    real_files = oracle.read_outputs(moddir)
    our_files = dict(ours.files)

    differing = sorted(f for f in set(real_files) | set(our_files) if real_files.get(f) != our_files.get(f))
    stderr_ok = real.stderr == _stderr(dm.diagnostics, ours.diagnostics)
    result = {"modules": len(tree.modules), "files": len(real_files), "identical_files": len(real_files) -
              len(differing), "stderr_identical": stderr_ok, "stderr_lines": real.stderr.count(b"\n"),
              "status": [real.status, 1 if dm.failed else 0], "seconds_ours": round(ours_s, 2),
              "seconds_depmod": round(real_s, 2), "ratio": round(ours_s / real_s, 2) if real_s else None}

    if symvers is not None:
        dm_e = run_depmod(tree, load_module_symvers(str(symvers)), print_unknown=True)
        ours_n = render(dm_e, dry_run=True)
        real_n = oracle.run_kmod(version, "depmod", ["-C", str(conf), "-b", str(scratch), "-n", "-e", "-E",
                                                    str(symvers), krel])
        result["n_E_stdout_identical"] = real_n.stdout == ours_n.stdout
        result["n_E_stderr_identical"] = real_n.stderr == _stderr(dm_e.diagnostics, ours_n.diagnostics)
        result["n_E_stderr_lines"] = real_n.stderr.count(b"\n")
        assert real_n.status == (1 if dm_e.failed else 0)
    _record(name, version, result)
    print(f"{name} {version}: {result}")

    assert not differing, f"{name} {version}: files differ: {differing}"
    assert stderr_ok, (f"{name} {version} stderr differs:\nreal: {real.stderr[:600]!r}\n"
                       f"ours: {_stderr(dm.diagnostics, ours.diagnostics)[:600]!r}")
    assert real.status == (1 if dm.failed else 0)
    if symvers is not None:
        assert result["n_E_stdout_identical"] and result["n_E_stderr_identical"]
