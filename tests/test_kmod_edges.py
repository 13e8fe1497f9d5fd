"""Issue 15, emulation: zstd skippable frames, cut zstd frames, gzip members, and the inputs on which real
kmod aborts.

Each input is built here from a fixture and given to the real kmod 30 and 34.2
tools (the oracle) and to the emulation; stdout, stderr and status must agree
byte for byte. A tool that aborts (an assert() of libkmod-elf.c fails, SIGABRT)
shows status 134 in the emulation, with the assertion line the real one prints.
"""

from __future__ import annotations

import gzip
import struct
import subprocess
import sys
from pathlib import Path

import pytest
import zstandard

from kmodcompat.kmod import tools
from kmodcompat.kmod.profile import KMOD_RELEASES

from . import oracle
from .fuzzing import _Elf
from .paths import REPO, X86_64 as FIXTURES


def _skippable(size: int, magic: int = 0x184D2A50) -> bytes:
    return struct.pack("<II", magic, size) + bytes(range(size % 256))[:size].ljust(size, b"s")


def _streams() -> dict[str, bytes]:
    image = (FIXTURES / "basic.ko").read_bytes()
    half = len(image) // 2
    sized = zstandard.ZstdCompressor(level=3, write_content_size=True).compress(image)
    unsized = zstandard.ZstdCompressor(level=3, write_content_size=False).compress(image)
    # bytes after the section headers are no part of the ELF: 300 KB of them make a frame of several blocks
    noise = bytes((i * 2654435761 >> 13) & 0xFF for i in range(300_000))
    padded = zstandard.ZstdCompressor(level=3, write_checksum=True).compress(image + noise)
    return {
        "skip-before.ko.zst": _skippable(8) + sized,
        "skip-after.ko.zst": sized + _skippable(8, 0x184D2A5F),
        "skip-after-empty.ko.zst": sized + _skippable(0),
        "skip-after-cut.ko.zst": sized + _skippable(100)[:20],
        "skip-after-unsized.ko.zst": unsized + _skippable(8),
        "skip-between.ko.zst": sized + _skippable(3) + sized,
        "two-frames.ko.zst": zstandard.ZstdCompressor().compress(image[:half])
        + zstandard.ZstdCompressor().compress(image[half:]),
        "zeros-after.ko.zst": sized + bytes(16),
        # Cut short: kmod 30 streams and keeps the blocks decoded before the cut (nothing here: ENOEXEC;
        # the checksum alone: the whole module); v34.2's ZSTD_decompress() says srcSize_wrong or
        # checksum_wrong. A file under 6 bytes never reaches a decoder (kmod_file_open's magic read).
        "cut-5.ko.zst": sized[:5],
        "cut-header.ko.zst": sized[:8],
        "cut-block.ko.zst": sized[:len(sized) // 2],
        "cut-checksum.ko.zst": sized[:-4],
        "cut-checksum-1.ko.zst": sized[:-1],
        "cut-second-block.ko.zst": padded[:len(padded) * 3 // 4],
        "two-members.ko": gzip.compress(image[:half], mtime=0) + gzip.compress(image[half:], mtime=0),
        "two-members.ko.gz": gzip.compress(image[:half], mtime=0) + gzip.compress(image[half:], mtime=0),
    }


def _aborting() -> dict[str, bytes]:
    """Images kmod_elf_new() or kmod_elf_resolve_crc() hand a bad section index to an assert()."""
    base = (FIXTURES / "exports-rel.ko").read_bytes()
    out = {}
    for name, field, value in (("shstrndx-undef.ko", "e_shstrndx", 0), ("shstrndx-past.ko", "e_shstrndx", 63),
                               ("shnum-zero.ko", "e_shnum", 0)):
        buf = bytearray(base)
        _Elf(buf).ehdr(field, value)
        out[name] = bytes(buf)
    buf = bytearray(base)
    elf = _Elf(buf)
    symtab, strtab = elf.sections[elf.named(".symtab")], elf.sections[elf.named(".strtab")]
    for off in range(symtab[4] + 24, symtab[4] + symtab[5], 24):
        st_name = struct.unpack_from("<I", buf, off)[0]
        if buf[strtab[4] + st_name:].startswith(b"__crc_"):
            struct.pack_into("<H", buf, off + 6, 0xFFF0)  # st_shndx past the section table
            break
    else:
        raise AssertionError("exports-rel.ko has no __crc_ symbol")
    out["crc-no-section.ko"] = bytes(buf)
    return out


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    top = tmp_path_factory.mktemp("kmod-edges")
    out = {}
    for name, data in {**_streams(), **_aborting()}.items():
        (top / name).write_bytes(data)
        out[name] = top / name
    return out


def _real(version: str, tool: str, args: list[str]) -> tuple[bytes, bytes, int]:
    run = oracle.run_kmod(version, tool, args)
    return run.stdout, run.stderr, 128 - run.status if run.status < 0 else run.status  # -6: SIGABRT -> 134


CASES = [(name, tool, version) for name in sorted({**_streams(), **_aborting()})
         for tool in ("modinfo", "dump-modversions", "show-exports") for version in KMOD_RELEASES]


@pytest.mark.parametrize("name,tool,version", CASES)
def test_emulation_equals_real_kmod(files, name, tool, version):
    if not oracle.kmod_available(version):
        pytest.skip(f"{version} not installed")
    kmod = KMOD_RELEASES[version]
    path = str(files[name])
    if tool == "modinfo":
        ours = tools.modinfo_arg(kmod, path, None, "\n", "/nonexistent")
        real = _real(version, "modinfo", [path])
    elif tool == "dump-modversions":
        ours = tools.dump_modversions(kmod, path)
        real = _real(version, "modprobe", ["--dump-modversions", path])
    else:
        ours = tools.show_exports(kmod, path)
        real = _real(version, "modprobe", ["--show-exports", path])
    assert tuple(ours) == real


def test_aborts_are_called_aborts(files):
    """The CLI says the emulated tool would abort, after the assertion line the real tool prints."""
    p = subprocess.run([sys.executable, "-m", "kmodcompat", "modinfo", "--as", "kmod30", str(files["shstrndx-past.ko"])],
                       capture_output=True, cwd=REPO)
    assert p.returncode == 134 and p.stdout == b""
    assert p.stderr.decode().splitlines() == [
        "modinfo: ../libkmod/libkmod-elf.c:214: elf_get_section_header: Assertion `idx < elf->header.section.count' "
        "failed.", "kmodcompat: the emulated tool would abort here (SIGABRT, status 134): libkmod's assert() above fails"]


@pytest.mark.parametrize("version", KMOD_RELEASES)
@pytest.mark.parametrize("name", sorted(_aborting()))
def test_depmod_aborts_as_real_depmod(files, tmp_path, version, name):
    if not oracle.kmod_available(version):
        pytest.skip(f"{version} not installed")
    kernel = tmp_path / "lib" / "modules" / "6.1.0-edge" / "kernel"
    kernel.mkdir(parents=True)
    (kernel / "basic.ko").write_bytes((FIXTURES / "basic.ko").read_bytes())
    (kernel / name).write_bytes(files[name].read_bytes())
    args = ["-b", str(tmp_path), "-n", "6.1.0-edge"]
    real = _real(version, "depmod", args)
    p = subprocess.run([sys.executable, "-m", "kmodcompat", "depmod", "--as", version, *args], capture_output=True,
                       cwd=REPO, env=oracle.ENV)
    assert (p.stdout, p.stderr, p.returncode) == real
