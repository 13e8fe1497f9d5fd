"""The real RPM ksym dependency generators, run here as the oracle of `kmodcompat ksyms`.

The scripts are not copied into this repository: they are read, at pinned
commits, from bare git clones of their public repositories under
``$KMODCOMPAT_MIRRORS`` (default ``/work/.mirror``, laid out ``OWNER+NAME/repo``;
``git clone --bare https://github.com/OWNER/NAME $KMODCOMPAT_MIRRORS/OWNER+NAME/repo``
makes one), and the tests that need one skip, saying which, when it is missing:

* openSUSE: https://github.com/openSUSE/rpm-config-SUSE (GPL-2.0, its COPYING)
  ``scripts/find-provides.ksyms``, ``scripts/find-requires.ksyms`` at
  e5bc2f4b26ed (2026-04-06). find-provides.ksyms runs the kernel's
  ``scripts/mod/ksym-provides``, which only openSUSE's kernel-source carries
  (https://github.com/openSUSE/kernel-source, GPL-2.0,
  ``patches.rpmify/Add-ksym-provides-tool.patch``): that repository is too large
  to mirror whole, so the patch file is taken from ``$KMODCOMPAT_KSYM_PROVIDES_PATCH``
  (or an ``openSUSE+kernel-source`` mirror) and its C file compiled here with libelf.
* RHEL 9: kernel-srpm-macros-1.0-13.el9 (MIT, its spec file), as OpenELA imports
  it: https://github.com/openela-main/kernel-srpm-macros at 915343be1cdb (branch
  el-9.3), ``SOURCES/find-provides.ksyms``, ``SOURCES/find-requires.ksyms``,
  ``SOURCES/kmod.attr`` (run by rpm itself), ``SOURCES/symset-table``.

The scripts call fixed paths: ``/sbin/modinfo``, ``/sbin/modprobe``,
``/usr/lib/rpm/symset-table``, ``/usr/src/kernels/$KREL/Module.symvers``. A run
copies a script with exactly those path strings replaced (each must occur: a
script that changes fails here, not silently) by shims that exec kmod 30 or kmod
34.2 (tests/oracle.py), the real symset-table, and a directory holding the
test's Module.symvers. Everything runs with ``LC_ALL=C``.
"""

from __future__ import annotations

import functools
import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests import oracle

MIRRORS = Path(os.environ.get("KMODCOMPAT_MIRRORS", "/work/.mirror"))
#: (style, file) -> (mirror, commit, path): the commit pins the bytes.
SOURCES = {
    ("suse", "find-provides.ksyms"): ("openSUSE+rpm-config-SUSE", "e5bc2f4b26ed2a6753943d651b522544f047e92b",
                                      "scripts/find-provides.ksyms"),
    ("suse", "find-requires.ksyms"): ("openSUSE+rpm-config-SUSE", "e5bc2f4b26ed2a6753943d651b522544f047e92b",
                                      "scripts/find-requires.ksyms"),
    ("redhat", "find-provides.ksyms"): ("openela-main+kernel-srpm-macros", "915343be1cdb82729a2b92c6a485bcb6176c02b4",
                                        "SOURCES/find-provides.ksyms"),
    ("redhat", "find-requires.ksyms"): ("openela-main+kernel-srpm-macros", "915343be1cdb82729a2b92c6a485bcb6176c02b4",
                                        "SOURCES/find-requires.ksyms"),
    ("redhat", "kmod.attr"): ("openela-main+kernel-srpm-macros", "915343be1cdb82729a2b92c6a485bcb6176c02b4",
                              "SOURCES/kmod.attr"),
    ("redhat", "symset-table"): ("openela-main+kernel-srpm-macros", "915343be1cdb82729a2b92c6a485bcb6176c02b4",
                                 "SOURCES/symset-table"),
}
#: openSUSE/kernel-source patches.rpmify/Add-ksym-provides-tool.patch (3771 bytes; unchanged since its 2018 commit).
KSYM_PROVIDES_PATCH_SHA256 = "3ce7912ede44e428ff106502d5c88d3b83746e0718bf6c536feda83de52e108c"
TOOLS = ("bash", "gawk", "nm", "objdump", "readelf", "join", "sort", "gcc", "rpm", "xz", "zstd", "gzip")


def missing_tools() -> list[str]:
    missing = [t for t in TOOLS if shutil.which(t) is None]
    if not Path("/usr/include/gelf.h").exists():
        missing.append("libelf-dev (gelf.h)")
    return missing


@functools.cache
def source(style: str, name: str) -> bytes | None:
    """A script's bytes at its pinned commit, None without the mirror."""
    mirror, commit, path = SOURCES[(style, name)]
    git_dir = MIRRORS / mirror / "repo"
    if not git_dir.is_dir():
        return None
    p = subprocess.run(["git", "--git-dir", str(git_dir), "show", f"{commit}:{path}"], capture_output=True)
    return p.stdout if p.returncode == 0 else None


def need(style: str, *names: str) -> dict[str, bytes]:
    """The named sources of ``style``, or skip the test saying which mirror is missing."""
    out = {}
    for name in names:
        text = source(style, name)
        if text is None:
            mirror, commit, path = SOURCES[(style, name)]
            pytest.skip(f"{MIRRORS / mirror / 'repo'}: no {path} at {commit[:12]} (see tests/rpm_scripts.py)")
        out[name] = text
    return out


@functools.cache
def ksym_provides_patch() -> bytes | None:
    env = os.environ.get("KMODCOMPAT_KSYM_PROVIDES_PATCH")
    if env:
        return Path(env).read_bytes() if Path(env).is_file() else None
    git_dir = MIRRORS / "openSUSE+kernel-source" / "repo"
    if git_dir.is_dir():
        p = subprocess.run(["git", "--git-dir", str(git_dir), "show", "HEAD:patches.rpmify/Add-ksym-provides-tool.patch"],
                           capture_output=True)
        return p.stdout if p.returncode == 0 else None
    return None


def ksym_provides(workdir: Path) -> Path:
    """openSUSE's scripts/mod/ksym-provides, compiled from patches.rpmify/Add-ksym-provides-tool.patch."""
    tool = workdir / "ksym-provides"
    if tool.exists():
        return tool
    patch = ksym_provides_patch()
    if patch is None:
        pytest.skip("openSUSE's ksym-provides: set KMODCOMPAT_KSYM_PROVIDES_PATCH to openSUSE/kernel-source's "
                    "patches.rpmify/Add-ksym-provides-tool.patch (see tests/rpm_scripts.py)")
    assert hashlib.sha256(patch).hexdigest() == KSYM_PROVIDES_PATCH_SHA256, "another Add-ksym-provides-tool.patch"
    text = patch.decode()
    body = text.split("+++ b/scripts/mod/ksym-provides.c\n", 1)[1].split("\n", 1)[1]  # after the @@ line
    c_source = "".join(line[1:] + "\n" for line in body.splitlines() if line.startswith("+"))
    (workdir / "ksym-provides.c").write_text(c_source)
    subprocess.run(["gcc", "-O2", "-o", str(tool), str(workdir / "ksym-provides.c"), "-lelf"], check=True,
                   capture_output=True)
    return tool


def _shims(workdir: Path, kmod: str, modprobe: str | None) -> Path:
    d = workdir / f"shims-{kmod}{'-' + hashlib.sha256(modprobe.encode()).hexdigest()[:8] if modprobe else ''}"
    d.mkdir(exist_ok=True)
    for tool in ("modinfo", "modprobe"):
        argv = " ".join(f"'{a}'" for a in oracle.kmod_argv(kmod, tool))
        body = f"exec {argv} \"$@\"\n"
        if tool == "modprobe" and modprobe:
            body = modprobe.replace("@MODPROBE@", argv)
        (d / tool).write_text("#!/bin/bash\n" + body)
        (d / tool).chmod(0o755)
    return d


def _prepared(workdir: Path, style: str, provides: bool, shims: Path, kernels: Path) -> Path:
    name = "find-provides.ksyms" if provides else "find-requires.ksyms"
    text = need(style, name)[name].decode("utf-8", "surrogateescape")
    kmod_tools = {"/sbin/modinfo": f"{shims}/modinfo", "/sbin/modprobe": f"{shims}/modprobe"}
    if style == "suse" and provides:
        repl = {"/sbin/modinfo": kmod_tools["/sbin/modinfo"]}
    elif style == "suse":
        symset = workdir / "symset-table"
        symset.write_bytes(need("redhat", "symset-table")["symset-table"])
        symset.chmod(0o755)
        repl = {**kmod_tools, "/usr/lib/rpm/symset-table": str(symset)}
    elif provides:
        repl = {}  # nm, objdump and readelf only
    else:
        repl = {**kmod_tools, "/usr/src/kernels/": f"{kernels}/"}
    for old, new in repl.items():
        assert old in text, f"{style} {name}: no {old} to redirect"
        text = text.replace(old, new)
    out = workdir / f"{style}-{name}-{shims.name}.sh"
    out.write_text(text, errors="surrogateescape")
    out.chmod(0o755)
    return out


def run(workdir: Path, style: str, provides: bool, modules: list[str], kmod: str = "kmod30", *,
        buildroot: str = "", symvers: Path | None = None, package: str = "kmp-test",
        modprobe: str | None = None) -> bytes:
    """The script's stdout for ``modules`` (fed on stdin, one path a line, as rpm feeds them).

    ``modprobe``: a bash body for the modprobe shim instead of exec'ing kmod's (``@MODPROBE@`` is
    kmod's modprobe argv), to show the script what ``--dump-modversions`` does not list."""
    workdir.mkdir(parents=True, exist_ok=True)
    kernels = workdir / "kernels"
    kernels.mkdir(exist_ok=True)
    env = {**oracle.ENV, "LC_ALL": "C", "RPM_BUILD_ROOT": buildroot, "TMPDIR": str(workdir)}
    env.pop("LANG", None)
    shims = _shims(workdir, kmod, modprobe)
    if style == "suse" and provides:
        # The script looks for the tool in {,$RPM_BUILD_ROOT}{/usr,}/lib/modules/$version/build: a build root
        # of its own holds it for every kernel release the modules name that has it (4.10 and later: before,
        # the script reads nm's absolute __crc_ symbols, as kmodcompat.ksyms models).
        root = workdir / "suse-buildroot"
        tool = ksym_provides(workdir)
        for m in modules:
            for krel in _krels(m, kmod):
                if not _has_ksym_provides(krel):
                    continue
                d = root / "lib" / "modules" / krel / "build" / "scripts" / "mod"
                d.mkdir(parents=True, exist_ok=True)
                if not (d / "ksym-provides").exists():
                    os.symlink(tool, d / "ksym-provides")
        env["RPM_BUILD_ROOT"] = str(root)
    if symvers is not None and modules:
        krel = _krels(modules[0], kmod)[:1]
        if krel:
            (kernels / krel[0]).mkdir(exist_ok=True)
            link = kernels / krel[0] / "Module.symvers"
            if link.is_symlink() or link.exists():
                link.unlink()
            os.symlink(symvers, link)
    script = _prepared(workdir, style, provides, shims, kernels)
    p = subprocess.run(["bash", str(script), package], input="".join(m + "\n" for m in modules).encode(),
                       capture_output=True, env=env, timeout=3600)
    assert p.returncode == 0, (script, p.returncode, p.stderr[-2000:])
    return p.stdout


def _has_ksym_provides(krel: str) -> bool:
    major, _, rest = krel.partition(".")
    sub = rest.partition(".")[0]
    return major.isdigit() and (int(major) > 4 or (int(major) == 4 and sub.isdigit() and int(sub) >= 10))


@functools.cache
def _krels(module: str, kmod: str) -> list[str]:
    out = oracle.run_kmod(kmod, "modinfo", ["-F", "vermagic", module]).stdout.decode("utf-8", "surrogateescape")
    return [line.split(" ", 1)[0] for line in out.splitlines() if line.split(" ", 1)[0]]


def rpm_kmod_provides(workdir: Path, modules: list[str]) -> bytes:
    """kmod.attr's Lua %__kmod_provides, run by rpm itself, for each module path (one rpm run)."""
    attr = workdir / "kmod.attr"
    attr.write_bytes(need("redhat", "kmod.attr")["kmod.attr"])
    out = b""
    # rpm --eval takes several expressions; a marker line between them tells each file's output apart
    exprs = [e for m in modules for e in (f"%{{__kmod_provides {m}}}", "@@END@@")]
    p = subprocess.run(["rpm", "--load", str(attr), *(a for e in exprs for a in ("--eval", e))], capture_output=True,
                       env={**oracle.ENV, "LC_ALL": "C"}, check=True)
    for chunk in p.stdout.split(b"@@END@@\n")[:-1]:
        out += b"".join(tok + b"\n" for tok in chunk.split())
    return out
