"""kmodcompat.files.kernel_image on synthetic images: every container, compression, layout; bad images."""

from __future__ import annotations

import importlib.util
import struct
import subprocess
import sys

import pytest

from kmodcompat.elf.layout import EM_AARCH64, EM_ARM, EM_S390
from kmodcompat.files.kernel_image import KernelImageError, find_image, read_kernel_image, vmlinux_bytes

from . import kernel_images as ki
from .paths import X86_64

SYMS = ki.symbols()
PREL32 = ki.Layout(True, 4, True)
HAS_LZ4 = importlib.util.find_spec("lz4") is not None


def _write(tmp_path, data: bytes, name: str = "vmlinuz") -> str:
    path = tmp_path / name
    path.write_bytes(data)
    return str(path)


def _expect(k, syms=SYMS, crcs: bool = True) -> None:
    assert k.exports is not None, k.unknown
    got = {e.name: e for e in k.exports}
    assert set(got) == {s.name for s in syms}
    for s in syms:
        e = got[s.name]
        assert e.crc == (s.crc if crcs else None), s.name
        assert e.gpl_only == s.gpl, s.name
        assert e.namespace == (s.namespace or None), s.name
        assert e.section == ("__ksymtab_gpl" if s.gpl else "__ksymtab")
    # link order: the order of the names in __ksymtab_strings, the symbols' own order here
    assert [k.exports[i].name for i in k.link_order] == [s.name for s in syms]


@pytest.mark.parametrize("layout", [ki.Layout(True, 4, True), ki.Layout(False, 8, True), ki.Layout(False, 4, True),
                                    ki.Layout(False, 8, False), ki.Layout(True, 4, False), ki.Layout(False, 4, False),
                                    ki.Layout(True, 4, True, crcs=False)],
                         ids=["prel32-le", "abs64-le", "abs32-le", "abs64-be", "prel32-be", "abs32-be", "no-crcs"])
def test_elf_vmlinux_sections(tmp_path, layout):
    k = read_kernel_image(_write(tmp_path, ki.vmlinux(SYMS, layout)))
    assert (k.container, k.compression, k.located) == ("vmlinux", None, "sections")
    _expect(k, crcs=layout.crcs)


@pytest.mark.parametrize("kind", ["gzip", "bzip2", "lzma", "xz", "zstd",
                                  pytest.param("lz4", marks=pytest.mark.skipif(not HAS_LZ4, reason="no lz4"))])
def test_bzimage_every_compression(tmp_path, kind):
    elf = ki.vmlinux(SYMS, PREL32)
    path = _write(tmp_path, ki.bzimage(ki.compress(kind, elf)))
    k = read_kernel_image(path)
    assert (k.container, k.compression, k.machine_name) == ("bzImage", kind, "x86_64")
    _expect(k)
    assert vmlinux_bytes(path) == elf


def test_bzimage_uncompressed_payload(tmp_path):
    k = read_kernel_image(_write(tmp_path, ki.bzimage(ki.vmlinux(SYMS, PREL32))))
    assert (k.container, k.compression) == ("bzImage", None)
    _expect(k)


def test_lzo_is_one_clear_line(tmp_path):
    with pytest.raises(KernelImageError) as e:
        read_kernel_image(_write(tmp_path, ki.bzimage(ki.compress("lzo", b"x"))))
    assert str(e.value).endswith("kernel image compressed with lzo: not supported (no maintained Python decoder)")
    assert e.value.code == "unsupported"


def test_lz4_without_the_package_is_one_clear_line(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "lz4", None)
    monkeypatch.setitem(sys.modules, "lz4.block", None)
    payload = b"\x02\x21\x4c\x18" + struct.pack("<I", 4) + b"abcd"
    with pytest.raises(KernelImageError) as e:
        read_kernel_image(_write(tmp_path, ki.bzimage(payload)))
    assert "compressed with lz4: not supported here (install the Python package lz4)" in str(e.value)


@pytest.mark.parametrize("big_endian", [False, True])
def test_arm64_image_by_structure(tmp_path, big_endian):
    layout = ki.Layout(True, 4, not big_endian)
    raw = ki.arm64_image(ki.raw_image(SYMS, layout, 0), big_endian)
    k = read_kernel_image(_write(tmp_path, raw))
    assert (k.container, k.machine, k.little, k.located) == ("Image", EM_AARCH64, not big_endian, "structure")
    _expect(k)


def test_arm64_image_gzip(tmp_path):
    raw = ki.arm64_image(ki.raw_image(SYMS, PREL32, 0))
    k = read_kernel_image(_write(tmp_path, ki.compress("gzip", raw)[:-4]))
    assert (k.container, k.compression) == ("Image", "gzip")
    _expect(k)


@pytest.mark.parametrize("kind", ["xz", "gzip", "lzma"])
def test_zimage_absolute_pointers(tmp_path, kind):
    raw = ki.raw_image(SYMS, ki.Layout(False, 4, True), 0xC0008000)
    k = read_kernel_image(_write(tmp_path, ki.zimage(raw, kind)))
    assert (k.container, k.compression, k.machine, k.elfclass) == ("zImage", kind, EM_ARM, 32)
    _expect(k)


def test_s390_absolute_big_endian(tmp_path):
    raw = ki.raw_image(SYMS, ki.Layout(False, 8, False), 0x100000)
    k = read_kernel_image(_write(tmp_path, ki.s390_image(raw)))
    assert (k.container, k.machine, k.little, k.elfclass) == ("s390", EM_S390, False, 64)
    _expect(k)


def test_raw_without_crcs(tmp_path):
    raw = ki.arm64_image(ki.raw_image(SYMS, ki.Layout(True, 4, True, crcs=False), 0))
    _expect(read_kernel_image(_write(tmp_path, raw)), crcs=False)


# --- honest unknowns and bad images ---------------------------------------------------------------


def test_crc_table_one_short_is_unknown_not_partial(tmp_path):
    """A raw image whose CRC array does not close on the strings: nothing is accepted."""
    raw = bytearray(ki.raw_image(SYMS, PREL32, 0))
    body, off = ki.tables(SYMS, PREL32, 0x8000, 0)
    # Drop the last CRC: the strings now begin 4 bytes early, where the arithmetic no longer closes.
    crc_end = 0x8000 + off["__ksymtab_strings"]
    del raw[crc_end - 4:crc_end]
    k = read_kernel_image(_write(tmp_path, ki.arm64_image(bytes(raw))))
    assert k.exports is None and k.unknown
    assert k.located == ""


def test_unsorted_table_is_unknown(tmp_path):
    """Entries out of name order are no export table the loader could search."""
    data = bytearray(ki.vmlinux(SYMS, PREL32))
    # swap two entries of __ksymtab (their offsets are relative: move the fields' targets too)
    from kmodcompat.elf.image import ElfImage

    sec = ElfImage(bytes(data)).section("__ksymtab")
    a, b = sec.offset, sec.offset + 12
    ea = struct.unpack_from("<iii", data, a)
    eb = struct.unpack_from("<iii", data, b)
    struct.pack_into("<iii", data, a, *(v + 12 for v in eb))
    struct.pack_into("<iii", data, b, *(v - 12 for v in ea))
    k = read_kernel_image(_write(tmp_path, bytes(data)))
    assert k.exports is None
    assert "not sorted by name" in k.unknown


def test_raw_image_without_tables_is_unknown(tmp_path):
    import random

    rng = random.Random(5)
    k = read_kernel_image(_write(tmp_path, ki.arm64_image(bytes(rng.getrandbits(8) for _ in range(1 << 16)))))
    assert k.exports is None
    assert k.unknown == "no region of exported names found in the image"


@pytest.mark.parametrize("filler", [b"\0", b"a\0", b"ab\0" * 5 + b"\xff"], ids=["zeros", "tiny-names", "cut-names"])
def test_raw_image_of_degenerate_bytes(tmp_path, filler):
    """Hostile raw images: zeros, a table of one-letter names, names cut by other bytes: unknown, no traceback."""
    data = ki.arm64_image(b"\0" * 64 + filler * ((1 << 20) // len(filler)))
    k = read_kernel_image(_write(tmp_path, data))
    assert k.exports is None and k.unknown


def test_truncated_bzimage(tmp_path):
    img = ki.bzimage(ki.compress("xz", ki.vmlinux(SYMS, PREL32)))
    with pytest.raises(KernelImageError) as e:
        read_kernel_image(_write(tmp_path, img[:len(img) // 2]))
    assert e.value.code == "truncated"
    assert "runs past the end of the file" in str(e.value)


def test_truncated_stream_inside(tmp_path):
    stream = ki.compress("xz", ki.vmlinux(SYMS, PREL32))
    with pytest.raises(KernelImageError) as e:
        read_kernel_image(_write(tmp_path, ki.bzimage(stream[:len(stream) // 2])))
    assert e.value.code in ("truncated", "corrupt")


def test_payload_not_a_kernel(tmp_path):
    with pytest.raises(KernelImageError) as e:
        read_kernel_image(_write(tmp_path, ki.bzimage(ki.compress("gzip", b"hello " * 1000))))
    assert str(e.value).endswith("bzImage gzip payload is not an ELF vmlinux")


def test_module_is_not_a_kernel(tmp_path):
    data = bytearray(ki.vmlinux(SYMS, PREL32))
    data[16:18] = struct.pack("<H", 1)  # ET_REL: a module
    with pytest.raises(KernelImageError) as e:
        read_kernel_image(_write(tmp_path, bytes(data)))
    assert "ELF type 1 is not an executable vmlinux" in str(e.value)


def test_not_an_image(tmp_path):
    with pytest.raises(KernelImageError) as e:
        read_kernel_image(_write(tmp_path, b"The real System.map is in the linux-image-<version>-dbg package\n" * 4))
    assert e.value.code == "not-a-kernel"


def test_too_large_payload_is_capped(tmp_path):
    elf = ki.vmlinux(SYMS, PREL32)
    with pytest.raises(KernelImageError) as e:
        read_kernel_image(_write(tmp_path, ki.bzimage(ki.compress("xz", elf))), max_size=len(elf) - 1)
    assert "inflates past the" in str(e.value)


def test_zimage_without_a_stream(tmp_path):
    data = ki.zimage(b"", "xz")[:0x2200]
    with pytest.raises(KernelImageError) as e:
        read_kernel_image(_write(tmp_path, data))
    assert e.value.code == "not-a-kernel"


def test_find_image_places(tmp_path):
    (tmp_path / "lib/modules/7.2.0").mkdir(parents=True)
    assert find_image(str(tmp_path), "7.2.0") is None
    (tmp_path / "lib/modules/7.2.0/vmlinuz").write_bytes(b"x")
    assert find_image(str(tmp_path), "7.2.0").endswith("lib/modules/7.2.0/vmlinuz")
    (tmp_path / "boot").mkdir()
    (tmp_path / "boot/vmlinuz-7.2.0").write_bytes(b"x")
    assert find_image(str(tmp_path), "7.2.0").endswith("boot/vmlinuz-7.2.0")


# --- the symvers command --------------------------------------------------------------------------


def _symvers(*args):
    return subprocess.run([sys.executable, "-m", "kmodcompat", "symvers", *args], capture_output=True, text=True)


def test_symvers_bad_image_exit_2(tmp_path):
    path = _write(tmp_path, b"\0" * 100)
    p = _symvers("--kernel-image", path, "--moddir", str(tmp_path))
    assert p.returncode == 2
    assert p.stderr.count("\n") == 1 and path in p.stderr and not p.stdout


def test_symvers_unknown_exports_exit_2(tmp_path):
    import random

    rng = random.Random(5)
    path = _write(tmp_path, ki.arm64_image(bytes(rng.getrandbits(8) for _ in range(1 << 16))))
    p = _symvers("--kernel-image", path, "--moddir", str(tmp_path))
    assert p.returncode == 2
    assert p.stderr == f"kmodcompat: {path}: kernel exports unknown: no region of exported names found in the image\n"


def test_symvers_vmlinux_lines(tmp_path):
    path = _write(tmp_path, ki.bzimage(ki.compress("gzip", ki.vmlinux(SYMS, PREL32))))
    moddir = tmp_path / "lib/modules/1.0"
    moddir.mkdir(parents=True)
    p = _symvers("--kernel-image", path, "--moddir", str(moddir))
    assert p.returncode == 0, p.stderr
    want = [f"0x{s.crc:08x}\t{s.name}\tvmlinux\tEXPORT_SYMBOL{'_GPL' if s.gpl else ''}\t{s.namespace}" for s in SYMS]
    assert p.stdout.splitlines() == want


def test_symvers_no_image_found(tmp_path):
    moddir = tmp_path / "lib/modules/1.0"
    moddir.mkdir(parents=True)
    # neither half, no module and no image: nothing to write is an input error, not an empty result
    p = _symvers("-b", str(tmp_path), "1.0")
    assert (p.returncode, p.stdout, p.stderr) == (2, "", f"kmodcompat: {moddir}: no modules found\n")
    exporter = X86_64 / "exports-rel.ko"
    (moddir / "exp.ko").write_bytes(exporter.read_bytes())
    p = _symvers("-b", str(tmp_path), "1.0")
    assert p.returncode == 0 and "\texp\tEXPORT_SYMBOL" in p.stdout
    assert p.stderr.startswith("kmodcompat: no boot image for 1.0 (looked at ")
    assert p.stderr.endswith(": vmlinux's lines left out; give --kernel-image FILE\n")


def test_symvers_image_found_in_tree(tmp_path):
    (tmp_path / "lib/modules/1.0").mkdir(parents=True)
    (tmp_path / "boot").mkdir()
    (tmp_path / "boot/vmlinuz-1.0").write_bytes(ki.bzimage(ki.compress("xz", ki.vmlinux(SYMS, PREL32))))
    p = _symvers("-b", str(tmp_path), "1.0")
    assert p.returncode == 0, p.stderr
    assert len(p.stdout.splitlines()) == len(SYMS) and p.stderr == ""


def test_symvers_bad_image_in_tree_exit_2(tmp_path):
    (tmp_path / "lib/modules/1.0").mkdir(parents=True)
    (tmp_path / "boot").mkdir()
    (tmp_path / "boot/vmlinuz-1.0").write_bytes(b"ffffffffffffffff B The real System.map is elsewhere\n")
    p = _symvers("-b", str(tmp_path), "1.0")
    assert p.returncode == 2 and p.stdout == ""
    assert p.stderr.count("\n") == 1 and "file too short for a kernel image (52 bytes)" in p.stderr
