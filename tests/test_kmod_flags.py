"""kmod's flags in ``kmodcompat depmod`` and ``modinfo``, against real kmod 30 and 34.2 (issue 18 items 3, 4).

Each case runs the real tool of each release (tests/oracle.py: Debian's packages, unpacked) and
``kmodcompat ... --as RELEASE`` on the same arguments, and compares stdout, stderr and exit status byte for
byte; the cases that write (``-w``, ``-A``, ``-o``) compare every file written too, each tool writing into
its own copy of the tree. The options differ between the releases (kmod/getopt.py): kmod 30 ignores
``-u -q -r -m`` with a warning and has no ``-m DIR``/``-o DIR``; kmod 34 refuses the first and has the
second. The host-default cases put a real kmod 30 on PATH as the host's ``kmod``.
"""

from __future__ import annotations

import hashlib
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from kmodcompat.cli import main

from . import oracle
from .test_depmod import KVER, build_tree

RELEASES = ("kmod30", "kmod34")


@pytest.fixture(autouse=True)
def _kmods():
    for version in RELEASES:
        if not oracle.kmod_available(version):
            pytest.skip(f"{version} not available (tools/test.sh installs it)")


def _ours(argv: list[str], capsys) -> tuple[bytes, bytes, int]:
    status = main(argv)
    out = capsys.readouterr()
    return out.out.encode("utf-8", "surrogateescape"), out.err.encode("utf-8", "surrogateescape"), status


def _same(tool: str, version: str, args: list[str], capsys, ours_args: list[str] | None = None,
          swap: tuple[str, str] | None = None) -> None:
    """Real ``tool args`` and ``kmodcompat tool --as version (ours_args or args)``: equal output.
    ``swap``: (real's path, ours) where each wrote into its own copy."""
    real = oracle.run_kmod(version, tool, args)
    out, err, status = _ours([tool, "--as", version, *(args if ours_args is None else ours_args)], capsys)
    want = (real.stdout, real.stderr, real.status)
    if swap is not None:
        want = tuple(x.replace(swap[0].encode(), swap[1].encode()) if isinstance(x, bytes) else x for x in want)
    assert (out, err, status) == want, (version, args)


#: Command lines whose answer does not depend on a tree: options, versions, getopt's errors.
OPTION_CASES = [
    ["-V"], ["--version"], ["-Vn"],
    ["-q", "--map", "-u", "-n", "-b", "/nonexistent", "9.9.9"],  # 30: warnings, then its FATAL; 34: refused
    ["--root", "-n", "9.9.9"], ["-r", "9.9.9"], ["--unresolved-error"], ["--quiet"],
    ["-o", "/nonexistent-out", "9.9.9"], ["--outdir=/x", "9.9.9"], ["-nX", "9.9.9"], ["--no-such-option"],
    ["--dry", "9.9.9"], ["--s", "9.9.9"],  # a unique prefix; an ambiguous one (--show, --symvers, --symbol-prefix)
    ["-b"], ["--basedir"], ["--all=1"], ["-n", "--config"], ["-P"],
]


@pytest.mark.parametrize("args", OPTION_CASES, ids=[" ".join(a) for a in OPTION_CASES])
@pytest.mark.parametrize("version", RELEASES)
def test_depmod_options(version, args, capsys):
    if "9.9.9" in args and os.path.exists("/lib/modules/9.9.9"):
        pytest.skip("/lib/modules/9.9.9 exists here")
    _same("depmod", version, args, capsys)


@pytest.fixture()
def two_roots(tmp_path) -> tuple[Path, Path]:
    """The fixture tree twice, without its dependency cycle (depmod writes nothing then): the real depmod
    writes into the first, ours into the second."""
    roots = build_tree(tmp_path / "real"), build_tree(tmp_path / "ours")
    for root in roots:
        shutil.rmtree(root / "lib/modules" / KVER / "cycle")
    return roots


def _files(root: Path, moduledir: str = "lib/modules") -> dict[str, str]:
    d = root / moduledir / KVER
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(d.iterdir())
            if p.is_file() and p.name.startswith("modules.")}


def _same_writing(version: str, args: list[str], roots: tuple[Path, Path], capsys, moduledir: str = "lib/modules",
                  out: tuple[Path, Path] | None = None) -> None:
    real_root, our_root = roots
    real_args = [a.replace("ROOT", str(real_root)).replace("OUT", str(out[0]) if out else "") for a in args]
    our_args = [a.replace("ROOT", str(our_root)).replace("OUT", str(out[1]) if out else "") for a in args]
    _same("depmod", version, real_args, capsys, our_args, swap=(str(real_root.parent), str(our_root.parent)))
    where = out if out else roots
    if (where[0] / moduledir / KVER).is_dir():
        assert _files(where[0], moduledir) == _files(where[1], moduledir), (version, args)
    else:
        assert not (where[1] / moduledir / KVER).exists()


@pytest.mark.parametrize("version", RELEASES)
def test_depmod_verbose_warn(version, two_roots, tmp_path, capsys):
    cyclic = build_tree(tmp_path / "cyclic-real"), build_tree(tmp_path / "cyclic-ours")  # -v before the cycles fail
    _same_writing(version, ["-v", "-C", "/dev/null", "-b", "ROOT", KVER], cyclic, capsys)
    _same_writing(version, ["-v", "-n", "-C", "/dev/null", "-b", "ROOT", KVER], two_roots, capsys)
    _same_writing(version, ["-w", "-v", "-C", "/dev/null", "-b", "ROOT", KVER], two_roots, capsys)


@pytest.mark.parametrize("version", RELEASES)
def test_depmod_quick(version, two_roots, capsys):
    """-A: without modules.dep (its error, then the full run), up to date (nothing), a module touched after
    modules.dep (the full run), with -n (nothing at all)."""
    args = ["-A", "-C", "/dev/null", "-b", "ROOT", KVER]
    for root in two_roots:
        (root / "lib/modules" / KVER / "modules.dep").unlink(missing_ok=True)
    _same_writing(version, args, two_roots, capsys)
    _same_writing(version, args, two_roots, capsys)
    for root in two_roots:
        dep = (root / "lib/modules" / KVER / "modules.dep").stat().st_mtime
        os.utime(root / "lib/modules" / KVER / "kernel/imp/kmc_basic.ko", (dep + 5, dep + 5))
        (root / "lib/modules" / KVER / "modules.alias").unlink()  # the full run writes it again
    _same_writing(version, args, two_roots, capsys)
    assert (two_roots[1] / "lib/modules" / KVER / "modules.alias").exists()
    _same_writing(version, ["-n", *args], two_roots, capsys)


@pytest.mark.parametrize("version", RELEASES)
def test_depmod_outdir_moduledir(version, two_roots, tmp_path, capsys):
    """kmod 34's -o OUTDIR and -m DIR (kmod 30: an invalid option; -m its deprecated --map)."""
    outs = (tmp_path / "out-real", tmp_path / "out-ours")
    _same_writing(version, ["-o", "OUT", "-C", "/dev/null", "-b", "ROOT", KVER], two_roots, capsys, out=outs)
    for root in two_roots:  # the tree moved to usr/lib/modules
        (root / "usr/lib").mkdir(parents=True)
        shutil.move(str(root / "lib/modules"), str(root / "usr/lib/modules"))
    _same_writing(version, ["-m", "/usr/lib/modules", "-C", "/dev/null", "-b", "ROOT", KVER], two_roots, capsys,
                  moduledir="usr/lib/modules")
    _same_writing(version, ["-n", "--moduledir=usr/lib/modules", "-C", "/dev/null", "-b", "ROOT", KVER], two_roots,
                  capsys, moduledir="usr/lib/modules")


def test_depmod_vv_is_refused(two_roots, capsys):
    """-vv prints libkmod's INFO lines, with memory addresses: said, not imitated."""
    out, err, status = _ours(["depmod", "-vv", "-n", "-b", str(two_roots[1]), KVER], capsys)
    assert (out, status) == (b"", 2) and err.startswith(b"kmodcompat: depmod: -vv is not emulated")


MODINFO_CASES = [
    ["-V"], ["--author", "MOD"], ["--description", "MOD"], ["--license", "MOD"], ["--parameters", "MOD"],
    ["--filename", "MOD"], ["-0", "--auth", "MOD"], ["-m", "-b", "ROOT", "-k", KVER, "kmc_basic"],
    ["-m", "-b", "ROOT", "--set-version", KVER, "kmc_basic.ko"], ["--modname", "-b", "ROOT", "-k", KVER, "nosuch"],
    ["-b", "ROOT", "--set-version", KVER, "kmc_basic"], ["--bogus", "MOD"], ["-x", "MOD"], ["-F"], ["--field"],
    ["--modname=1", "x"], ["-k"],
]


@pytest.mark.parametrize("args", MODINFO_CASES, ids=[" ".join(a) for a in MODINFO_CASES])
@pytest.mark.parametrize("version", RELEASES)
def test_modinfo_options(version, args, tmp_path_factory, capsys):
    root = build_tree(tmp_path_factory.mktemp("modinfo"))
    module = root / "lib/modules" / KVER / "kernel/imp/kmc_basic.ko"
    args = [str(module) if a == "MOD" else str(root) if a == "ROOT" else a for a in args]
    _same("modinfo", version, args, capsys)


def _host_with(tmp_path: Path, version: str | None) -> dict[str, str]:
    """An environment whose PATH has the real kmod ``version`` as ``kmod`` (None: no kmod at all)."""
    bindir = tmp_path / f"bin-{version}"
    bindir.mkdir()
    if version is not None:
        argv = oracle.kmod_argv(version, "kmod")
        (bindir / "kmod").write_text(f"#!/bin/sh\nexec {shlex.join(argv)} \"$@\"\n")
        (bindir / "kmod").chmod(0o755)
    path = [str(bindir)] + [d for d in os.environ.get("PATH", "").split(":") if d and not os.path.exists(f"{d}/kmod")]
    return {**os.environ, "PATH": ":".join(path)}


@pytest.mark.parametrize("version", [*RELEASES, None])
def test_host_kmod_is_the_default(version, tmp_path):
    """Without --as, depmod emulates the host's kmod (kmod 34 on a host without one), and --version says so."""
    if version is None and any(os.path.exists(p) for p in ("/usr/bin/kmod", "/bin/kmod", "/usr/sbin/kmod",
                                                           "/sbin/kmod")):
        pytest.skip("this host has a kmod outside PATH")
    env = _host_with(tmp_path, version)
    root = build_tree(tmp_path)
    shutil.rmtree(root / "lib/modules" / KVER / "cycle")  # a cycle leaves stdout empty
    cli = [sys.executable, "-m", "kmodcompat"]
    said = subprocess.run([*cli, "--version"], env=env, capture_output=True, text=True).stdout
    expected = {"kmod30": "30", "kmod34": "34.2", None: "34.2"}[version]
    assert f"emulates kmod {expected} when --as is not given" in said, said
    args = ["-n", "-w", "-C", "/dev/null", "-b", str(root), KVER]
    ours = subprocess.run([*cli, "depmod", *args], env=env, capture_output=True)
    real = oracle.run_kmod(version or "kmod34", "depmod", args)
    assert (ours.stdout, ours.stderr, ours.returncode) == (real.stdout, real.stderr, real.status)
    # kmod 30 and 34 differ on this tree (modules.weakdep, modules.order's duplicate line): the default matters
    other = oracle.run_kmod("kmod30" if expected != "30" else "kmod34", "depmod", args)
    assert (other.stdout, other.stderr) != (real.stdout, real.stderr)


@pytest.mark.realtree
@pytest.mark.parametrize("version", RELEASES)
def test_depmod_verbose_warn_real_tree(version, tmp_path, capsys):
    """-v -n (3.7 MB of "needs" lines on bookworm amd64) and -w (its duplicate aliases) on a real tree."""
    root = oracle.tree_root("bookworm-amd64", fetch=os.environ.get("KMODCOMPAT_FETCH_TREES") == "1")
    if root is None:
        pytest.skip("bookworm-amd64 not under $REALTREES")
    krel = oracle.tree_krel(root)
    scratch = tmp_path / "real" / "root", tmp_path / "ours" / "root"
    for s in scratch:
        oracle.depmod_scratch_root(root, s)
    real_args = ["-C", "/dev/null", "-b", str(scratch[0]), krel]
    our_args = ["-C", "/dev/null", "-b", str(scratch[1]), krel]
    swap = (str(scratch[0].parent), str(scratch[1].parent))
    _same("depmod", version, ["-v", "-n", *real_args], capsys, ["-v", "-n", *our_args], swap=swap)
    real = oracle.run_kmod(version, "depmod", ["-w", *real_args])
    assert b"duplicate module alias" in real.stderr  # the case is not empty
    _same("depmod", version, ["-w", *real_args], capsys, ["-w", *our_args], swap=swap)
