"""The one Module.symvers reader (kmodcompat.files.symvers) and where the kernel's files are found.

Field layouts per kernel era (modpost's write_dump()), depmod's tokenizing
rules checked against real depmod on a hostile file, ``.gz`` read in memory
with a bound (a 3 GiB gzip bomb refused), and ``diff``/``report`` finding the
kernel's Module.symvers wherever distributions install it.
"""

from __future__ import annotations

import gzip
import random
import re
import shutil
import subprocess
import sys
import tracemalloc
import zlib
from pathlib import Path

import pytest

from kmodcompat.kmod.profile import KMOD_RELEASES
from kmodcompat.depmod.kernel_symbols import load_module_symvers, symvers_symbols
from kmodcompat.depmod.tree import load_tree
from kmodcompat.diff import diff_trees, symvers_exports
from kmodcompat.files.kernel import find_kernel_files, load_kernel
from kmodcompat.files.stdio import fgets_lines
from kmodcompat.files.symvers import Symvers, parse_symvers, read_symvers, strtoull
from kmodcompat.files.bounded import MODULE_SYMVERS, InputFileError, InputKind, read_input
from kmodcompat.report import build_report

from .test_depmod import _real, crc_of, fixture_tree  # noqa: F401 - fixture_tree is a fixture
from .test_depmod import KVER as DEPMOD_KVER
from .test_diff import FIX, KVER, kernel_exports, make_tree
from .paths import REPO


#: v5.6+ (and 5.4.y stable): crc, symbol, module, export type, namespace (empty: the line ends in a tab).
MODERN = (b"0xd6551b9c\tcpu_cache_has_invalidate_memregion\tvmlinux\tEXPORT_SYMBOL_GPL\tDEVMEM\n"
          b"0x37a0cba0\tkfree\tvmlinux\tEXPORT_SYMBOL\t\n"
          b"0x8a7d1c31\tusb_stor_suspend\tdrivers/usb/storage/usb-storage\tEXPORT_SYMBOL_GPL\tUSB_STORAGE\n")
#: v2.6.18 to v5.3: four fields, export_str()'s five export types.
OLD = (b"0x00000001\tprintk\tvmlinux\tEXPORT_SYMBOL\n"
       b"0x00000002\tgpl_one\tvmlinux\tEXPORT_SYMBOL_GPL\n"
       b"0x00000003\tfuture_one\tvmlinux\tEXPORT_SYMBOL_GPL_FUTURE\n"
       b"0x00000004\tunused_one\tvmlinux\tEXPORT_UNUSED_SYMBOL\n"
       b"0x00000005\tunused_gpl\tvmlinux\tEXPORT_UNUSED_SYMBOL_GPL\n")


def read_symvers_bytes(data: bytes, path: str = "Module.symvers") -> Symvers:
    return Symvers(path, parse_symvers(data), False)


def _fields(entries):
    return [(e.symbol, e.crc, e.module, e.export_type, e.gpl_only, e.namespace, e.in_kernel) for e in entries]


def test_modern_five_fields():
    assert _fields(parse_symvers(MODERN)) == [
        ("cpu_cache_has_invalidate_memregion", 0xD6551B9C, "vmlinux", "EXPORT_SYMBOL_GPL", True, "DEVMEM", True),
        ("kfree", 0x37A0CBA0, "vmlinux", "EXPORT_SYMBOL", False, None, True),
        ("usb_stor_suspend", 0x8A7D1C31, "drivers/usb/storage/usb-storage", "EXPORT_SYMBOL_GPL", True, "USB_STORAGE",
         False),
    ]
    assert [e.line for e in parse_symvers(MODERN)] == [1, 2, 3]
    assert parse_symvers(MODERN.replace(b"\n", b"\r\n"))[1].export_type == "EXPORT_SYMBOL"  # CRLF: no '\r' kept


def test_old_four_fields_and_export_types():
    got = {e.symbol: (e.export_type, e.gpl_only, e.namespace) for e in parse_symvers(OLD)}
    assert got == {"printk": ("EXPORT_SYMBOL", False, None), "gpl_one": ("EXPORT_SYMBOL_GPL", True, None),
                   # GPL_FUTURE exports stay usable by any module (a warning only): not GPL-only.
                   "future_one": ("EXPORT_SYMBOL_GPL_FUTURE", False, None),
                   "unused_one": ("EXPORT_UNUSED_SYMBOL", False, None),
                   "unused_gpl": ("EXPORT_UNUSED_SYMBOL_GPL", True, None)}


def test_v5_4_namespace_third_is_read_as_depmod_reads_it():
    """v5.4/5.5 put the namespace before the module: depmod takes it for the module (why it moved)."""
    data = b"0x00000001\tplain\t\tvmlinux\tEXPORT_SYMBOL\n0x00000002\tspaced\tNS\tvmlinux\tEXPORT_SYMBOL_GPL\n"
    a, b = parse_symvers(data)
    assert (a.symbol, a.module, a.export_type, a.in_kernel) == ("plain", "vmlinux", "EXPORT_SYMBOL", True)
    assert (b.symbol, b.module, b.in_kernel) == ("spaced", "NS", False)
    assert [s[0] for s in symvers_symbols(read_symvers_bytes(data)).symbols] == ["plain"]


#: Lines depmod tokenizes oddly: every one is checked against real depmod below.
HOSTILE = (b"0x00000011\tspaces_ok vmlinux EXPORT_SYMBOL\n"  # spaces separate like tabs
           b"0x00000012\tthree_fields\tvmlinux\n"  # the '\n' stays on "vmlinux": not the kernel's
           b"short line\n"
           b"\n"
           b"0xzz\tbad_crc\tvmlinux\tEXPORT_SYMBOL\t\n"
           b"0x00000013\tcut\0here\tvmlinux\tEXPORT_SYMBOL\t\n"  # a NUL ends the line
           b"0x00000014\tafter_nul\tvmlinux\tEXPORT_SYMBOL\t\n"
           b"  +0x15\tsigned\tvmlinux\tEXPORT_SYMBOL\t\n"
           b"-1\tnegative\tvmlinux\tEXPORT_SYMBOL\t\n"
           b"0x1ffffffffffffffff\toverflow\tvmlinux\tEXPORT_SYMBOL\t\n"
           b"0x00000016\t" + b"x" * 10300 + b"\tvmlinux\tEXPORT_SYMBOL\t\n"  # read as two fgets() lines
           b"0x00000017\tcrlf\tvmlinux\tEXPORT_SYMBOL\t\r\n"
           b"0x00000018\tmodule_one\tdrivers/x/y\tEXPORT_SYMBOL\t\n"
           b"0x00000019\tlast_three\tvmlinux")  # no '\n' at the end: "vmlinux" exactly


def test_hostile_lines():
    entries = parse_symvers(HOSTILE)
    kernel = [(e.symbol, e.crc) for e in entries if e.in_kernel]
    assert kernel == [("spaces_ok", 0x11), ("bad_crc", None), ("after_nul", 0x14), ("signed", 0x15),
                      ("negative", (1 << 64) - 1), ("overflow", (1 << 64) - 1), ("crlf", 0x17), ("last_three", 0x19)]
    assert {e.symbol: e.module for e in entries}["three_fields"] == "vmlinux\n"
    assert "short" not in {e.symbol for e in entries}  # fewer than three fields: skipped
    ks = symvers_symbols(read_symvers_bytes(HOSTILE, "S"))
    assert [d.text for d in ks.diagnostics] == ["S:5 Invalid symbol version 0xzz: No such file or directory"]
    assert "bad_crc" not in {s[0] for s in ks.symbols}
    exports = symvers_exports(read_symvers_bytes(HOSTILE))
    assert "bad_crc" not in exports and "module_one" not in exports and exports["crlf"].namespace is None
    assert strtoull(b"0x12zz") == (0x12, b"zz") and strtoull(b"zz") == (0, b"zz")


def _reference(data: bytes) -> list[tuple]:
    """depmod_load_symvers() written out plainly (kmodcompat's reader before it was the one reader):
    fgets() pieces, cut at a NUL, strtok() on spaces and tabs, strtoull() on the first field."""
    out = []
    for n, line in enumerate(fgets_lines(data, 10240), 1):
        line = line.split(b"\0", 1)[0]
        toks = [t for t in re.split(rb"[ \t]+", line) if t]
        if len(toks) < 3:
            continue
        crc, rest = strtoull(toks[0])
        extra = [t.rstrip(b"\r\n").decode("utf-8", "surrogateescape") or None for t in toks[3:5]] + [None, None]
        out.append((n, toks[0].decode("utf-8", "surrogateescape"), None if rest else crc,
                    *(t.decode("utf-8", "surrogateescape") for t in toks[1:3]), *extra[:2]))
    return out


@pytest.mark.parametrize("seed", range(4))
def test_random_lines_match_the_reference(seed):
    """The reader's fast paths (tab-only files, plain CRCs) against the plain algorithm, on random lines."""
    rng = random.Random(seed)
    words = [b"0x1f", b"0x0000000a", b"vmlinux", b"EXPORT_SYMBOL_GPL", b"NS", b"sym", b"-1", b"+0X2", b"0x", b"\xff",
             b"\0", b"\r", b"\n", b"\t", b"\t\t", b" " if seed % 2 else b"\t", b"0x" + b"f" * 17]
    for _ in range(200):
        data = b"".join(rng.choice(words) for _ in range(rng.randrange(60)))
        assert [tuple(e) for e in parse_symvers(data)] == _reference(data), data


@pytest.mark.parametrize("version", sorted(KMOD_RELEASES))
def test_hostile_file_as_real_depmod_reads_it(fixture_tree, tmp_path, version):  # noqa: F811
    """depmod -e -E over the hostile lines (and real CRCs for the fixture's imports): byte-identical."""
    symvers = tmp_path / "Module.symvers"
    symvers.write_bytes(b"".join(f"0x{crc_of(n):08x}\t{n}\tvmlinux\tEXPORT_SYMBOL\t\n".encode()
                                 for n in ("kfree", "kmalloc_caches", "__fentry__")) + HOSTILE)
    args = ["-C", str(fixture_tree.parent / "conf" / "default"), "-b", str(fixture_tree), "-n", "-e", "-E",
            str(symvers), DEPMOD_KVER]
    real = _real(version, args)
    ours = subprocess.run([sys.executable, "-m", "kmodcompat", "depmod", "--as", version, *args],
                          capture_output=True, cwd=REPO)
    assert b"Invalid symbol version 0xzz" in real.stderr
    assert (ours.stdout, ours.stderr, ours.returncode) == (real.stdout, real.stderr, real.status)


# -- .gz --------------------------------------------------------------------------------------------------


def test_gz_read_in_memory(tmp_path):
    plain = tmp_path / "Module.symvers"
    plain.write_bytes(MODERN)
    gz = tmp_path / "symvers-1.0.gz"
    gz.write_bytes(gzip.compress(MODERN[:40]) + gzip.compress(MODERN[40:]) + b"\0" * 8)  # two members, padding
    assert read_symvers(str(gz), gunzip=True).entries == read_symvers(str(plain)).entries
    ks, notes = load_kernel(str(gz), None)
    assert notes == [] and ks.path == str(gz) and ks.check_symvers and ks.symvers.compressed
    assert [s[0] for s in ks.symbols] == ["cpu_cache_has_invalidate_memregion", "kfree"]
    # depmod itself reads every file as it is: through load_module_symvers a .gz is bytes without lines.
    assert load_module_symvers(str(gz)).symbols == ()


@pytest.mark.parametrize("data,reason", [
    (MODERN, "not a gzip file"),
    (gzip.compress(MODERN)[:-12], "gzip stream is truncated"),
    (gzip.compress(MODERN) + b"junk", "gzip stream is followed by non-gzip bytes"),
    (gzip.compress(MODERN)[:10] + b"\xff" * 20, "corrupt gzip stream: "),
])
def test_bad_gz_is_one_line(tmp_path, data, reason):
    p = tmp_path / "symvers.gz"
    p.write_bytes(data)
    with pytest.raises(InputFileError) as e:
        read_symvers(str(p), gunzip=True)
    assert e.value.strerror.startswith(reason) and e.value.filename == str(p)
    ks, notes = load_kernel(str(p), None)
    assert ks is None and len(notes) == 1 and notes[0].startswith(f"{p}: {reason}") and "\n" not in notes[0]


def _gzip_bomb(inflated: int) -> bytes:
    """A gzip stream of ``inflated`` zero bytes (one member), built from one repeated deflate piece:
    after a full flush the compressor starts afresh, so the same input gives the same bytes."""
    mib = b"\0" * (1 << 20)
    c = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    head = c.compress(mib) + c.flush(zlib.Z_FULL_FLUSH)
    piece = c.compress(mib) + c.flush(zlib.Z_FULL_FLUSH)
    assert c.compress(mib) + c.flush(zlib.Z_FULL_FLUSH) == piece
    return head + piece * ((inflated >> 20) - 1) + c.flush()  # the trailer's CRC is wrong: never reached


def test_gzip_bomb_refused_with_bounded_memory(tmp_path):
    bomb = tmp_path / "symvers-bomb.gz"
    bomb.write_bytes(_gzip_bomb(3 << 30))
    assert bomb.stat().st_size < 8 << 20
    tracemalloc.start()
    try:
        with pytest.raises(InputFileError) as e:
            read_input(str(bomb), MODULE_SYMVERS, gzip=True)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert e.value.strerror == "gzip stream inflates past the 32 MiB limit for a Module.symvers"
    assert peak < MODULE_SYMVERS.limit + (32 << 20)
    ks, notes = load_kernel(str(bomb), None)
    assert ks is None and notes == [f"{bomb}: gzip stream inflates past the 32 MiB limit for a Module.symvers"]


def test_plain_file_past_the_cap(tmp_path):
    p = tmp_path / "Module.symvers"
    p.write_bytes(MODERN * 100)
    assert read_input(str(p), InputKind("Module.symvers", len(MODERN) * 100)) == MODERN * 100
    with pytest.raises(InputFileError, match="larger than the 299-byte limit for a Module.symvers"):
        read_symvers(str(p), kind=InputKind("Module.symvers", 299))
    with pytest.raises(InputFileError) as e:
        read_input(str(tmp_path / "missing"), MODULE_SYMVERS)
    assert e.value.strerror == "No such file or directory"


# -- where the kernel's files are --------------------------------------------------------------------------


def _place(root: Path, where: str, kver: str) -> Path:
    """Move ROOT's Module.symvers (make_tree puts it in the linux-headers package) to ``where``."""
    src = root / "usr" / "src" / f"linux-headers-{kver}" / "Module.symvers"
    moddir = root / "lib" / "modules" / kver
    dst = {"headers": src, "build": moddir / "build" / "Module.symvers",
           "boot": root / "boot" / f"symvers-{kver}.gz", "usrlib": root / "usr" / "lib" / "modules" / kver / "symvers.gz"
           }[where]
    if dst != src:
        dst.parent.mkdir(parents=True, exist_ok=True)
        data = src.read_bytes()
        dst.write_bytes(gzip.compress(data) if dst.suffix == ".gz" else data)
        shutil.rmtree(src.parent)
    return dst


@pytest.mark.parametrize("where", ["headers", "build", "boot", "usrlib"])
def test_diff_finds_the_kernel_files(tmp_path, where):
    """Old and new kernels whose exports differ only in vmlinux: one made GPL-only and namespaced, one
    re-versioned. Found wherever distributions put Module.symvers, plain or gzipped."""
    ks = kernel_exports()
    files = {"basic.ko": (FIX / "basic.ko").read_bytes()}
    old, new = make_tree(tmp_path / "old", files, ks), make_tree(tmp_path / "new", files, ks)
    changed = {"kfree": (ks["kfree"], "EXPORT_SYMBOL_GPL", "NEW_NS"), "printk": (0x12345678, "EXPORT_SYMBOL", "")}
    (new / "usr" / "src" / f"linux-headers-{KVER}" / "Module.symvers").write_text("".join(
        "0x{:08x}\t{}\tvmlinux\t{}\t{}\n".format(changed.get(n, (crc,))[0], n, *changed.get(n, (crc, "EXPORT_SYMBOL", ""))[1:])
        for n, crc in ks.items()))
    paths = [_place(t, where, KVER) for t in (old, new)]
    otree, ntree = load_tree(str(old), KVER, parse=False), load_tree(str(new), KVER, parse=False)
    assert [find_kernel_files(t)["symvers"] for t in (otree, ntree)] == [str(p) for p in paths]
    d = diff_trees(load_tree(str(old), KVER), load_tree(str(new), KVER), jobs=1)
    assert (d.old.symvers, d.new.symvers) == (str(paths[0]), str(paths[1])) and d.kabi.kernel_compared
    got = {c.name: (c.kind, c.fields, c.exporter, c.incompatible) for c in d.kabi.changes}
    assert got == {"kfree": ("changed", ("gpl_only", "namespace"), "vmlinux", True),
                   "printk": ("changed", ("crc",), "vmlinux", True)}
    assert {c.name: c.failing_now for c in d.kabi.changes}["printk"] == ("basic",)


def test_report_finds_a_gzipped_symvers(tmp_path):
    root = make_tree(tmp_path / "t", {"basic.ko": (FIX / "basic.ko").read_bytes()}, kernel_exports())
    gz = _place(root, "boot", KVER)
    doc = build_report(load_tree(str(root), KVER), jobs=1)
    ke = doc["tree"]["kernel_exports"]
    assert (ke["source"], ke["path"], ke["symvers"], ke["system_map"], ke["notes"]) == (
        "Module.symvers", str(gz), str(gz), None, [])
    # Every kernel import resolved against the inflated file; only the exporter module's two are missing.
    assert {x["symbol"] for x in doc["graph"]["unresolved"]["symbols"]} == {"short_sym", "ns_sym"}
