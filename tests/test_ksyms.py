"""`kmodcompat ksyms` against the real RPM dependency generators (tests/rpm_scripts.py says where they come from).

* ``--lines script`` equals the real script's stdout, byte for byte, for SUSE's and
  RHEL 9's find-provides.ksyms and find-requires.ksyms (and, for Red Hat, rpm's own
  run of kmod.attr's Lua provides) on a package of fixtures of every architecture,
  compressed ones and the real EXTENDED_MODVERSIONS module built by modpost
  (tests/data/qemu-kernel-7.2/kmc_test.ko), with kmod 30 and kmod 34.2 as the
  scripts' modinfo and modprobe; and on every module of one real tree
  (realtree: trixie amd64, one package, as the kernel's own package would be).
* ``--lines all`` equals the same real script's stdout when its modprobe also
  prints the imports ``--dump-modversions`` drops (the extended-table entries
  whose names are not in ``__versions``, read here with pyelftools); the added
  lines are exactly the difference.
"""

from __future__ import annotations

import lzma
import os
import re
import subprocess
import sys
import zlib
from pathlib import Path

import pytest
import zstandard

from . import oracle, rpm_scripts
from .test_modversions_listing import _raw_tables
from .paths import KMC_TEST, MODULES as FIXTURES, REPO

#: A mix: absolute and __kcrctab CRCs, the kflagstab layout, both-table, extended-only and basic-only
#: imports, each compression, 32- and 64-bit, both byte orders.
FIXTURE_NAMES = ("basic.ko", "basic+ext.ko", "ext-only.ko", "exports-abs.ko", "exports-rel.ko",
                 "exports-kflagstab.ko", "basic.ko.gz", "basic+ext.ko.xz", "basic+ext.ko.zst",
                 "no-modinfo.ko")  # no .modinfo: modinfo -F vermagic prints nothing (and its error)
STYLES = [("suse", True), ("suse", False), ("redhat", True), ("redhat", False)]

pytestmark = pytest.mark.skipif(bool(rpm_scripts.missing_tools()),
                                reason=f"missing {', '.join(rpm_scripts.missing_tools())}")


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "kmodcompat", "ksyms", *args], capture_output=True, cwd=REPO,
                          env={**os.environ, "RPM_BUILD_ROOT": ""})


def _plain(path: str) -> bytes:
    data = Path(path).read_bytes()
    if path.endswith(".xz"):
        return lzma.decompress(data)
    if path.endswith(".zst"):
        return zstandard.ZstdDecompressor().decompressobj().decompress(data)
    if path.endswith(".gz"):
        return zlib.decompress(data, 47)
    return data


def dropped_imports(path: str, scratch: Path) -> bytes:
    """The imports of the extended tables whose names ``__versions`` lacks, as --dump-modversions lines."""
    plain = scratch / "plain.ko"
    plain.write_bytes(_plain(path))
    basic, ext = _raw_tables(plain)
    names = {n for _, n in basic}
    return b"".join(b"0x%08x\t%s\n" % (crc, name.encode()) for crc, name in ext if name not in names)


def complete_modprobe(workdir: Path, modules: list[str]) -> str:
    """A modprobe shim body: kmod's --dump-modversions, then that module's dropped imports."""
    d = workdir / "dropped"
    d.mkdir(parents=True, exist_ok=True)
    cases = []
    for i, m in enumerate(modules):
        extra = dropped_imports(m, workdir)
        if extra:
            (d / str(i)).write_bytes(extra)
            cases.append(f"    '{m}') cat '{d / str(i)}' ;;\n")
    # find-requires.ksyms (SUSE) passes the .ko.xz it found for a stripped name: the path as given here
    return "@MODPROBE@ \"$@\"\ncase \"${@: -1}\" in\n" + "".join(cases) + "esac\n"


def package(tmp_path: Path) -> tuple[Path, list[str]]:
    """The fixtures laid out as one package's files (the scripts read /lib/modules/ paths only)."""
    root = tmp_path / "buildroot"
    mods = []
    for arch in sorted(p.name for p in FIXTURES.iterdir()):
        d = root / "lib" / "modules" / "6.18.0-kmc-amd64" / "extra" / arch
        for name in FIXTURE_NAMES:
            src = FIXTURES / arch / name
            if src.is_file():
                d.mkdir(parents=True, exist_ok=True)
                (d / name).symlink_to(src)
                mods.append(str(d / name))
    d = root / "lib" / "modules" / "7.2.13" / "extra"
    d.mkdir(parents=True)
    (d / "kmc_test.ko").symlink_to(KMC_TEST)
    mods.append(str(d / "kmc_test.ko"))
    return root, mods


def expected(workdir: Path, style: str, provides: bool, mods: list[str], kmod: str, root: str,
             symvers: Path | None, modprobe: str | None = None) -> bytes:
    out = rpm_scripts.run(workdir, style, provides, mods, kmod, buildroot=root, symvers=symvers, modprobe=modprobe)
    if style == "redhat" and provides:
        out = rpm_scripts.rpm_kmod_provides(workdir, [m[len(root):] for m in mods]) + out
    return out


def ours(style: str, provides: bool, mods: list[str], kmod: str, root: str, symvers: Path | None,
         lines: str) -> subprocess.CompletedProcess:
    args = ["--provides" if provides else "--requires", "--style", style, "--lines", lines, "--as", kmod]
    if style == "redhat":
        args += ["--buildroot", root]
    if symvers is not None:
        args += ["--symvers", str(symvers)]
    return cli(*args, *mods)


@pytest.mark.parametrize("kmod", ["kmod30", "kmod34"])
@pytest.mark.parametrize("style,provides", STYLES, ids=[f"{s}-{'provides' if p else 'requires'}" for s, p in STYLES])
def test_fixture_package_equals_real_script(tmp_path, style, provides, kmod):
    if not oracle.kmod_available(kmod):
        pytest.skip(f"{kmod} is not runnable here")
    root, mods = package(tmp_path)
    symvers = None
    if style == "redhat" and not provides:
        # The kernel's Module.symvers: half of each fixture's imports with their CRCs (kernel()), half not.
        symvers = tmp_path / "Module.symvers"
        rows = sorted({line for m in mods for line in oracle.run_kmod(kmod, "modprobe", ["--dump-modversions", m])
                       .stdout.splitlines()})
        symvers.write_bytes(b"".join(line + b"\tvmlinux\tEXPORT_SYMBOL\t\n" for line in rows[::2]))
    want = expected(tmp_path / "work", style, provides, mods, kmod, str(root), symvers)
    p = ours(style, provides, mods, kmod, str(root), symvers, "script")
    assert p.returncode == 0, p.stderr
    assert p.stdout == want
    assert want.count(b"\n") > 8

    # What the script prints once it sees the imports --dump-modversions drops: --lines all, in its order.
    complete = complete_modprobe(tmp_path / "work", mods)
    want_all = expected(tmp_path / "work", style, provides, mods, kmod, str(root), symvers, complete)
    p_all = ours(style, provides, mods, kmod, str(root), symvers, "all")
    assert p_all.stdout == want_all
    added = ours(style, provides, mods, kmod, str(root), symvers, "added").stdout
    assert set(added.splitlines()) == set(want_all.splitlines()) - set(want.splitlines())
    if provides:
        assert not added  # every export keeps its __crc_ symbol, whatever the name's length
    else:
        # the fixtures' extended-only imports (the same few names on every architecture: sort -u keeps one)
        dropped = {line.split(b"\t")[1] for m in mods for line in dropped_imports(m, tmp_path).splitlines()}
        assert added and {re.sub(rb"^\w+\((\w+:)?(.*)\) = .*", rb"\2", line) for line in added.splitlines()} <= dropped
        assert b"lines come from imports --dump-modversions does not list" in p_all.stderr


def test_paths_the_scripts_skip(tmp_path):
    """Outside */lib/modules/ the scripts read nothing: neither does ksyms, and it says so."""
    p = cli("--requires", str(FIXTURES / "x86_64" / "basic.ko"))
    assert p.returncode == 0 and p.stdout == b""
    assert b"basic.ko: not under */lib/modules/" in p.stderr


def test_unreadable_module_named_exit_2(tmp_path):
    d = tmp_path / "lib" / "modules" / "6.1.0-1-amd64"
    d.mkdir(parents=True)
    (d / "bad.ko").write_bytes(b"\x7fELF")
    (d / "good.ko").symlink_to(FIXTURES / "x86_64" / "basic.ko")
    p = cli("--requires", str(d / "bad.ko"), str(d / "good.ko"))
    assert p.returncode == 2
    assert p.stderr.startswith(b"kmodcompat: " + str(d / "bad.ko").encode() + b": ")
    assert p.stdout.startswith(b"ksym(amd64:")  # the other module's requirements are still printed


@pytest.mark.realtree
@pytest.mark.parametrize("style,provides", STYLES, ids=[f"{s}-{'provides' if p else 'requires'}" for s, p in STYLES])
def test_real_tree_equals_real_script(tmp_path, style, provides):
    root = oracle.tree_root("trixie-amd64", fetch=bool(os.environ.get("KMODCOMPAT_FETCH_TREES")))
    if root is None:
        pytest.skip(f"tree trixie-amd64 not under {oracle.REALTREES}")
    mods = oracle.tree_modules(root)
    _, symvers = oracle.kernel_symbol_files(root)
    if style == "redhat" and not provides:
        assert symvers is not None
    else:
        symvers = None
    want = expected(tmp_path / "work", style, provides, mods, "kmod30", str(root), symvers)
    p = ours(style, provides, mods, "kmod30", str(root), symvers, "all")
    assert p.returncode == 0, p.stderr[-2000:]
    # A 6.12 tree has no extended tables: nothing is dropped, and the lines are the script's.
    assert p.stdout == want
    assert b"do not list" not in p.stderr
    assert want.count(b"\n") > 10000
