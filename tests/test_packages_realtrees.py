"""Packages of real kernels: a diff of two sets of real Debian packages is the diff of the same trees
unpacked, and an RPM built here (rpmbuild, a kernel-modules-style spec) from part of a real tree gives
the report of that tree.

The .debs are the ones the real trees were unpacked from ($REALTREES/debs, fetched by
../shared/tools/get-tree.sh with the trees); tests skip when they are not there.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from kmodcompat.cli import main

from . import oracle

pytestmark = pytest.mark.realtree

DEBS = oracle.REALTREES / "debs"


def _tree_and_debs(name: str) -> tuple[Path, list[str]]:
    root = oracle.tree_root(name, fetch=False)
    if root is None:
        pytest.skip(f"tree {name} not under {oracle.REALTREES}")
    info = dict(line.split("=", 1) for line in (root / "TREE-INFO").read_text().splitlines() if "=" in line
                and not line.startswith("deb="))
    debs = [line.split("=", 1)[1].split()[0] for line in (root / "TREE-INFO").read_text().splitlines()
            if line.startswith("deb=")]
    paths = [str(DEBS / d) for d in debs]
    if not debs or not all(Path(p).is_file() for p in paths):
        pytest.skip(f"the .debs of {name} ({info.get('krel')}) are not under {DEBS}")
    return root, paths


def _diff(argv: list[str], capsys) -> tuple[int, dict, str]:
    status = main(["diff", "--format", "json", *argv])
    out = capsys.readouterr()
    return status, json.loads(out.out), out.err


def test_diff_of_real_debian_package_sets_is_the_diff_of_the_trees(capsys):
    """bookworm (image + headers) against sid (meta image + modules + base + binary + headers): the
    split set combined is the tree unpacked from it."""
    old_root, old_debs = _tree_and_debs("bookworm-amd64")
    new_root, new_debs = _tree_and_debs("sid-amd64")
    s_trees, trees, _ = _diff([str(old_root), str(new_root)], capsys)
    s_pkgs, pkgs, err = _diff(["--old", *old_debs, "--new", *new_debs], capsys)
    assert s_trees == s_pkgs == 12
    assert pkgs["totals"] == trees["totals"] and pkgs["headlines"] == trees["headlines"]
    assert pkgs["kabi"]["changes"] == trees["kabi"]["changes"]
    text = json.dumps(pkgs) + err
    assert "kmodcompat-packages" not in text and "/tmp/" not in text
    assert pkgs["new"]["label"].startswith("linux-image-") and "linux-modules-" in pkgs["new"]["label"]


def test_sid_meta_package_alone_names_the_modules_package(capsys):
    root, debs = _tree_and_debs("sid-amd64")
    meta = next(d for d in debs if Path(d).name.startswith("linux-image-"))
    krel = oracle.tree_krel(root)
    assert main(["views", meta]) == 2
    assert capsys.readouterr().err == (f"kmodcompat: linux-image-{krel}: no modules found (linux-image-{krel} is a "
                                       f"meta package: its modules are in linux-modules-{krel})\n")


@pytest.mark.skipif(shutil.which("rpmbuild") is None, reason="rpmbuild (Debian's rpm package) not installed")
def test_rpm_built_from_a_real_tree_gives_its_report(tmp_path, capsys):
    """kernel/fs and kernel/crypto of trixie amd64 (a few hundred modules, with the tree's
    modules.order and modules.builtin*) as a kernel-modules RPM, zstd payload as Fedora's."""
    root = oracle.tree_root("trixie-amd64", fetch=False)
    if root is None:
        pytest.skip("trixie-amd64 not under $REALTREES")
    krel = oracle.tree_krel(root)
    src = root / "lib" / "modules" / krel
    part = tmp_path / "tree" / "lib" / "modules" / krel
    for sub in ("kernel/fs", "kernel/crypto"):
        shutil.copytree(src / sub, part / sub)
    for name in ("modules.order", "modules.builtin", "modules.builtin.modinfo"):
        shutil.copyfile(src / name, part / name)
    top = tmp_path / "rpmbuild"
    spec = tmp_path / "kernel-modules.spec"
    spec.write_text(f"""Name: kernel-modules
Version: {krel.split('-')[0].split('+')[0]}
Release: 1
Summary: kernel modules
License: GPL-2.0-only
Requires: kernel-core
%description
Part of Debian trixie's amd64 modules, packaged as Fedora packages kernel-modules.
%install
mkdir -p %{{buildroot}}/lib/modules
cp -a {part} %{{buildroot}}/lib/modules/
%files
/lib/modules/{krel}
""")
    subprocess.run(["rpmbuild", "-bb", "--define", f"_topdir {top}", "--define", "_binary_payload w3.zstdio",
                    "--define", "__os_install_post %{nil}", "--define", "_build_id_links none",
                    "--define", "debug_package %{nil}", str(spec)], check=True, capture_output=True)
    rpm = next((top / "RPMS").rglob("*.rpm"))
    out = tmp_path / "reports"
    for name, operand in (("tree", tmp_path / "tree"), ("rpm", rpm)):
        assert main(["report", "--no-cache", "--out", str(out / name), str(operand)]) == 0
    capsys.readouterr()
    texts = [(out / n / "report.json").read_text() for n in ("tree", "rpm")]
    assert json.loads(texts[1])["counts"]["modules"] > 100
    assert texts[0].replace(str(tmp_path / "tree"), "kernel-modules:") == texts[1]
