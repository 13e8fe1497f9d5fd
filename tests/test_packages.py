"""files/packages.py: .deb, .rpm and .tar* of a root unpacked into one root, hostile members refused.

The .debs are built with dpkg-deb and the RPMs with rpmbuild (Debian's ``rpm`` package) from the
fixture tree; the hostile archives are written member by member with tarfile.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import stat
import subprocess
import tarfile
from contextlib import ExitStack
from pathlib import Path

import pytest

from kmodcompat.cli import main
from kmodcompat.files import packages
from tests.test_depmod import KVER, build_tree

HAVE_DPKG = shutil.which("dpkg-deb") is not None
HAVE_RPMBUILD = shutil.which("rpmbuild") is not None


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    return build_tree(tmp_path_factory.mktemp("pkgtree"))


def _tar(path: Path, members: list[tuple[tarfile.TarInfo, bytes | None]]) -> Path:
    with tarfile.open(path, "w:gz") as t:
        for info, data in members:
            if data is not None:
                info.size = len(data)
            t.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def _info(name: str, kind: bytes = tarfile.REGTYPE, linkname: str = "", mode: int = 0o644) -> tarfile.TarInfo:
    i = tarfile.TarInfo(name)
    i.type, i.linkname, i.mode = kind, linkname, mode
    return i


def test_hostile_tar_members_are_refused_and_named(tmp_path):
    """Nothing lands outside the root, nothing is written through a link, links out are refused, and
    every member left out is named with its reason."""
    outside = tmp_path / "outside"
    outside.mkdir()
    members = [
        (_info("lib/modules/1.0/kernel/a.ko"), b"module"),
        (_info("../escape"), b"x"),
        (_info("lib/modules/1.0/../../../../escape2"), b"x"),
        (_info("/abs/file"), b"inside"),  # absolute: taken relative to the root, as dpkg does
        (_info("lib/out", tarfile.SYMTYPE, str(outside)), None),  # absolute target: kept inside the root
        (_info("lib/out/planted"), b"x"),  # through that link: refused
        (_info("lib/up", tarfile.SYMTYPE, "../../.."), None),  # climbs out: refused
        (_info("lib/modules/1.0/build", tarfile.SYMTYPE, "/usr/src/linux-headers-1.0"), None),
        (_info("lib/hard", tarfile.LNKTYPE, "lib/modules/1.0/kernel/a.ko"), None),
        (_info("lib/hardout", tarfile.LNKTYPE, "/etc/passwd"), None),
        (_info("dev/null", tarfile.CHRTYPE), None),
        (_info("bin/suid", mode=0o4777), b"#!/bin/sh\n"),
    ]
    archive = _tar(tmp_path / "root.tar.gz", members)
    with ExitStack() as stack:
        s = packages.unpack([str(archive)], stack)
        root = Path(s.root)
        assert (root / "lib/modules/1.0/kernel/a.ko").read_bytes() == b"module"
        assert (root / "abs/file").read_bytes() == b"inside"
        assert os.readlink(root / "lib/modules/1.0/build") == str(root / "usr/src/linux-headers-1.0")
        assert os.readlink(root / "lib/out") == str(root / outside.relative_to("/"))
        assert os.stat(root / "lib/hard").st_ino == os.stat(root / "lib/modules/1.0/kernel/a.ko").st_ino
        assert stat.S_IMODE(os.stat(root / "bin/suid").st_mode) == 0o755
        for gone in ("lib/up", "lib/hardout", "dev/null"):
            assert not os.path.lexists(root / gone)
        notes = "\n".join(s.notes)
        for name in ("../escape", "escape2", "lib/out/planted", "lib/up", "lib/hardout", "dev/null"):
            assert name in notes
        assert str(tmp_path) not in s.display(f"{root}/lib/modules/1.0/kernel/a.ko")
        assert s.display(f"x {root}/abs/file y") == "x root.tar.gz:/abs/file y"
    assert list(outside.iterdir()) == [] and not (tmp_path / "escape").exists()
    assert not os.path.exists(s.root)  # removed with the stack


def test_sizes_are_bounded(tmp_path, monkeypatch):
    monkeypatch.setattr(packages, "MAX_TOTAL", 1000)
    archive = _tar(tmp_path / "big.tar.gz", [(_info(f"f{i}"), b"\0" * 600) for i in range(3)])
    with ExitStack() as stack, pytest.raises(packages.PackageError, match="more than 0 GiB of files|limit"):
        packages.unpack([str(archive)], stack)
    monkeypatch.setattr(packages, "MAX_ENTRIES", 2)
    monkeypatch.setattr(packages, "MAX_TOTAL", 1 << 30)
    with ExitStack() as stack, pytest.raises(packages.PackageError, match="more than 2 members"):
        packages.unpack([str(archive)], stack)


def test_corrupt_packages_are_one_line(tmp_path):
    bad = tmp_path / "bad.deb"
    bad.write_bytes(b"!<arch>\ndebian-binary   0           0     0     100644  4         `\n2.0\n" + b"junk" * 10)
    with ExitStack() as stack, pytest.raises(packages.PackageError) as e:
        packages.unpack([str(bad)], stack)
    assert str(e.value).startswith(f"{bad}: ") and "\n" not in str(e.value)
    notrpm = tmp_path / "x.rpm"
    notrpm.write_bytes(b"hello")
    with ExitStack() as stack, pytest.raises(packages.PackageError, match="not an RPM package"):
        packages.unpack([str(notrpm)], stack)


def _deb(tmp_path: Path, name: str, files: dict[str, Path | bytes], depends: str = "") -> Path:
    pkg = tmp_path / f"{name}.build"
    for rel, src in files.items():
        dst = pkg / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(src, Path) and src.is_dir():
            shutil.copytree(src, dst)
        else:
            dst.write_bytes(src if isinstance(src, bytes) else src.read_bytes())
    (pkg / "DEBIAN").mkdir(parents=True)
    (pkg / "DEBIAN" / "control").write_text(f"Package: {name}\nVersion: 1.0\nArchitecture: amd64\n"
                                            f"Maintainer: t <t@example.org>\n"
                                            + (f"Depends: {depends}\n" if depends else "")
                                            + "Description: test\n continuation line\n")
    deb = tmp_path / f"{name}_1.0_amd64.deb"
    subprocess.run(["dpkg-deb", "-Zxz", "--root-owner-group", "-b", str(pkg), str(deb)], check=True,
                   capture_output=True)
    return deb


@pytest.fixture(scope="module")
def split_debs(tree, tmp_path_factory):
    """Debian's split layout: a meta image package, the modules, and the base with modules.order."""
    if not HAVE_DPKG:
        pytest.skip("dpkg-deb not installed")
    tmp = tmp_path_factory.mktemp("debs")
    moddir = tree / "lib" / "modules" / KVER
    meta = "usr/lib/modules/" + KVER
    base = _deb(tmp, f"linux-base-{KVER}", {f"{meta}/{n}": moddir / n for n in
                                            ("modules.order", "modules.builtin", "modules.builtin.modinfo")})
    mods = {f"{meta}/{p.relative_to(moddir)}": p for p in moddir.rglob("*")
            if p.is_file() and not p.name.startswith("modules.")}
    modules = _deb(tmp, f"linux-modules-{KVER}", mods, depends=f"kmod, linux-base-{KVER} (= 1.0)")
    image = _deb(tmp, f"linux-image-{KVER}", {"usr/share/doc/x/README": b"meta"},
                 depends=f"dracut | initramfs-tools, linux-base-{KVER} (= 1.0), linux-modules-{KVER} (= 1.0)")
    return image, modules, base


def _json(argv, capsys) -> tuple[int, dict, str]:
    status = main(argv)
    out = capsys.readouterr()
    return status, json.loads(out.out) if out.out.strip() else {}, out.err


def test_split_debian_set_equals_the_unpacked_tree(tree, split_debs, capsys):
    image, modules, base = (str(p) for p in split_debs)
    s_tree, tree_doc, _ = _json(["views", "--format", "json", str(tree)], capsys)
    s_set, set_doc, err = _json(["views", "--format", "json", image, modules, base], capsys)
    assert s_tree == s_set == 0 and tree_doc["totals"] == set_doc["totals"]
    assert set_doc["input"] == f"linux-image-{KVER} + linux-modules-{KVER} + linux-base-{KVER}"
    assert "kmodcompat-packages" not in json.dumps(set_doc) + err
    status, _, err = _json(["views", "--format", "json", image], capsys)
    assert status == 2 and err == (f"kmodcompat: linux-image-{KVER}: no modules found (linux-image-{KVER} is a "
                                   f"meta package: its modules are in linux-modules-{KVER})\n")
    status, doc, err = _json(["views", "--format", "json", modules], capsys)
    assert status == 0 and f"no modules.order in these packages; it may be in linux-base-{KVER}" in err


def test_every_command_takes_the_set(tree, split_debs, capsys):
    sets = [str(p) for p in split_debs]
    for cmd in (["exports", "--format", "json"], ["graph", "--format", "json"], ["symvers", "--modules-only"],
                ["depmod", "-n"], ["validate", "--format", "json"]):
        assert main([*cmd, str(tree) if cmd[0] != "depmod" else "--moddir=" + str(tree / "lib/modules" / KVER)]) \
            in (0, 1)
        from_tree = capsys.readouterr().out
        assert main([*cmd, *sets]) in (0, 1)
        out = capsys.readouterr()
        assert "kmodcompat-packages" not in out.out + out.err, cmd
        if cmd[0] in ("exports", "graph", "symvers", "depmod"):
            assert out.out == from_tree, cmd


def _rpm(tmp_path: Path, tree: Path, payload: str) -> Path:
    """A kernel-modules-style RPM of the fixture tree (rpmbuild, payload ``payload``: gz, xz, zst)."""
    top = tmp_path / f"rpm-{payload}"
    spec = top / "kernel-modules.spec"
    top.mkdir()
    spec.write_text(f"""Name: kernel-modules-kmc
Version: 1.0
Release: 1
Summary: modules
License: GPL-2.0-only
BuildArch: noarch
Requires: kernel-core-kmc
%description
Modules of the kmodcompat fixture tree.
%install
mkdir -p %{{buildroot}}/lib/modules
cp -a {tree}/lib/modules/{KVER} %{{buildroot}}/lib/modules/
%files
/lib/modules/{KVER}
""")
    subprocess.run(["rpmbuild", "-bb", "--define", f"_topdir {top}", "--define", f"_binary_payload w3.{payload}dio",
                    "--define", "__os_install_post %{nil}", "--define", "_build_id_links none", str(spec)],
                   check=True, capture_output=True)
    return next((top / "RPMS" / "noarch").glob("*.rpm"))


@pytest.mark.skipif(not HAVE_RPMBUILD, reason="rpmbuild (Debian's rpm package) not installed")
@pytest.mark.parametrize("payload,compressor", [("gz", b"gzip"), ("xz", b"xz"), ("zst", b"zstd")])
def test_rpm_gives_the_tree_report(tree, tmp_path, payload, compressor, capsys):
    import rpmfile

    rpm = _rpm(tmp_path, tree, payload)
    assert rpmfile.open(str(rpm)).headers["archive_compression"] == compressor
    _, tree_doc, _ = _json(["views", "--format", "json", str(tree)], capsys)
    _, rpm_doc, err = _json(["views", "--format", "json", str(rpm)], capsys)
    assert rpm_doc["totals"] == tree_doc["totals"] and rpm_doc["input"] == "kernel-modules-kmc"
    out = tmp_path / "reports"
    for name, operand in (("tree", tree), ("rpm", rpm)):
        assert main(["report", "--no-cache", "--fail-on", "none", "--out", str(out / name), str(operand)]) == 0
    texts = [(out / n / "report.json").read_text() for n in ("tree", "rpm")]
    # The same report, every path named after the package instead of the directory.
    assert json.loads(texts[1])["tree"]["path"] == f"kernel-modules-kmc:/lib/modules/{KVER}"
    assert texts[0].replace(str(tree), "kernel-modules-kmc:") == texts[1]
