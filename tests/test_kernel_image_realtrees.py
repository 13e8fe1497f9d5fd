"""Kernel exports from real Debian boot images against the headers package's Module.symvers.

For each tree under $KMODCOMPAT_REALTREES or $REALTREES (default /tmp/realtrees) that has a
boot image and ``usr/src/linux-headers-KVER/Module.symvers`` (tools/debian_archive.py tree -H):
every vmlinux line must be recovered from the image alone, with its CRC,
GPL-only flag and namespace. Trees missing here are skipped. The numbers
measured (exports recovered / expected, all equal) are in the docstring of
docs/kernel-images.md.
"""

from __future__ import annotations

import glob
import os
import subprocess
import sys

import pytest

from kmodcompat.files.kernel_image import _from_elf, find_image, read_kernel_image, vmlinux_bytes, _locate

pytestmark = pytest.mark.realtree

ROOT = os.environ.get("KMODCOMPAT_REALTREES") or os.environ.get("REALTREES", "/tmp/realtrees")
TREES = ["bookworm-amd64", "trixie-amd64", "sid-amd64", "bookworm-686-pae", "bookworm-arm64", "trixie-arm64",
         "bookworm-armmp", "trixie-armmp", "bookworm-powerpc64le", "bookworm-s390x", "trixie-s390x"]
#: What each tree's image is and how its tables are found.
SHAPE = {"amd64": ("bzImage", "sections"), "686-pae": ("bzImage", "sections"), "arm64": ("Image", "structure"),
         "armmp": ("zImage", "structure"), "powerpc64le": ("vmlinux", "sections"), "s390x": ("s390", "structure")}


def _tree(name: str) -> tuple[str, str, str, str]:
    root = os.path.join(ROOT, name)
    info = os.path.join(root, "TREE-INFO")
    if not os.path.exists(info):
        pytest.skip(f"{root} not present")
    kver = next(line.split("=", 1)[1].strip() for line in open(info) if line.startswith("krel="))
    symvers = glob.glob(os.path.join(root, "usr/src/linux-headers-*/Module.symvers"))
    image = find_image(root, kver)
    if not symvers or image is None:
        pytest.skip(f"{root}: no headers' Module.symvers or no boot image")
    return root, kver, image, symvers[0]


def _vmlinux_lines(symvers: str) -> dict[str, tuple[int, bool, str | None]]:
    out = {}
    with open(symvers, "rb") as f:
        for line in f:
            crc, name, module, kind, ns = line.rstrip(b"\n").split(b"\t")
            if module == b"vmlinux":
                out[name.decode("utf-8", "surrogateescape")] = (int(crc, 16), kind == b"EXPORT_SYMBOL_GPL",
                                                                ns.decode() or None)
    return out


@pytest.mark.parametrize("name", TREES)
def test_exports_from_image_equal_module_symvers(name):
    _root, _kver, image, symvers = _tree(name)
    want = _vmlinux_lines(symvers)
    k = read_kernel_image(image)
    assert k.exports is not None, k.unknown
    assert (k.container, k.located) == SHAPE[name.split("-", 1)[1]]
    got = {e.name: e for e in k.exports}
    assert len(got) == len(k.exports)  # each name once
    assert set(got) == set(want)
    modversions = any(crc for crc, _, _ in want.values())
    for sym, (crc, gpl, ns) in want.items():
        e = got[sym]
        assert (e.crc if modversions else 0) == crc, sym
        assert e.gpl_only == gpl, sym
        assert e.namespace == ns, sym


@pytest.mark.parametrize("name", ["trixie-amd64", "bookworm-powerpc64le"])
def test_structure_search_agrees_with_sections(name):
    """The raw-image search, run on vmlinux laid out by address without its section headers, finds the
    same tables as the section headers do (x86_64 PREL32, ppc64el 64-bit absolute pointers)."""
    _root, _kver, image, _symvers = _tree(name)
    from kmodcompat.elf.image import ElfImage

    elf_bytes = vmlinux_bytes(image)
    elf = ElfImage(elf_bytes)
    secs = [s for s in elf.sections if s.flags & 2 and s.type != 8 and s.size and s.name.startswith(("__k", ".rodata"))]
    lo = min(s.addr for s in secs)
    hi = max(s.addr + s.size for s in secs)
    raw = bytearray(hi - lo)
    for s in secs:
        raw[s.addr - lo:s.addr - lo + s.size] = elf.section_bytes(s)
    by_sections = _from_elf(image, "vmlinux", None, elf_bytes)
    found = _locate(bytes(raw), elf.header.machine, elf.little, 8)
    assert not isinstance(found, str), found
    exports, _order = found
    assert [e[:5] for e in exports] == [e[:5] for e in by_sections.exports]


@pytest.mark.parametrize("name", ["trixie-amd64", "bookworm-armmp", "trixie-s390x"])
def test_symvers_command_equals_headers_file(name, tmp_path):
    """`kmodcompat symvers` on the installed tree: the headers' file, line for line once sorted; the
    modules' lines in the headers' order exactly."""
    root, kver, _image, symvers = _tree(name)
    p = subprocess.run([sys.executable, "-m", "kmodcompat", "symvers", "-b", root, kver], capture_output=True)
    assert p.returncode == 0, p.stderr
    ours = p.stdout.splitlines(keepends=True)
    with open(symvers, "rb") as f:
        theirs = f.readlines()
    assert sorted(ours) == sorted(theirs)
    assert [line for line in ours if b"\tvmlinux\t" not in line] == [line for line in theirs
                                                                       if b"\tvmlinux\t" not in line]
    assert all(b"\tvmlinux\t" in line for line in ours[:sum(b"\tvmlinux\t" in x for x in ours)])
