"""The 2024 RFC's hashed long names in ``__versions`` (docs/formats.md §2.5), end to end.

Recognition (what is hashed and what only looks like it), the round trip simulate → parse on the
fixtures and on real modules, the kernel models (the RFC's loader checks long names, the others do
not), and real kmod 30 and 34.2 on real Debian modules rewritten in the hashed format: their
``--dump-modversions``, ``modinfo`` and ``depmod -e -E`` must be what the models say.

No Debian module imports a name of 56+ characters (their kernels are basic-only builds, where
modpost refuses one), so the real-module cases give a sample of real modules long imports first:
the names are appended to a copy of ``.strtab`` at the end of the file and the undefined symbols'
``st_name`` point there; every other byte is the module's own. The exporters' Module.symvers gains
the same names with the CRCs of the symbols they replace.
"""

from __future__ import annotations

import hashlib
import os
import struct
from dataclasses import replace
from pathlib import Path

import pytest

from kmodcompat.consumers import CONSUMERS, KERNEL_6_13, KERNEL_6_14, KERNEL_HASHED_RFC, MIT
from kmodcompat.consumers.base import own_crcs
from kmodcompat.depmod.kernel_symbols import load_module_symvers
from kmodcompat.elf.image import struct_for
from kmodcompat.elf.layout import SHDR, SHDR_SIZE, SHN_UNDEF, SHT_SYMTAB, SYM
from kmodcompat.files.opener import read_module_bytes
from kmodcompat.kmod import tools
from kmodcompat.kmod.profile import KMOD30, KMOD34, KMOD_PR270, KMOD_RELEASES
from kmodcompat.modversions import hashed
from kmodcompat.parse.module import parse_module, parse_module_bytes
from kmodcompat.parse.signature import unsigned_length
from kmodcompat.simulate import BuildError, import_versions, simulate, simulate_record

from . import oracle
from .paths import MODULES as FIX

ARCHES = ("x86_64", "s390x", "arm", "ppc", "ppc64")
TREES = ("bookworm-amd64", "trixie-amd64", "trixie-armmp", "trixie-s390x")
KVER = "9.9.9"
PER_TREE = 4
#: Lengths around both MODULE_NAME_LEN (56 on 64-bit, 60 on 32-bit) and far past them.
LENGTHS = (55, 56, 59, 60, 61, 97)


def _fixture(arch: str, kind: str = "hashed"):
    return parse_module(str(FIX / arch / f"{kind}.ko"))


# --- recognition ------------------------------------------------------------------------------

@pytest.mark.parametrize("arch", ARCHES)
def test_fixture_hashed_records_resolve_to_the_long_import(arch):
    rec = _fixture(arch)
    h = rec.hashed_versions
    assert rec.modversions_format == "hashed" and h is not None
    longs = [i.name for i in rec.imports if hashed.is_hashed_name(i.name, rec.elf.elfclass)]
    assert [e.name for e in h.entries] == longs and longs
    for i, d, e in zip(h.indices, h.digests, h.entries):
        assert rec.versions.entries[i].name == "sha256"  # what every C-string reader sees
        assert rec.versions.entries[i].crc == e.crc
        assert bytes.fromhex(d) == hashlib.sha256(e.name.removeprefix(".").encode()).digest()
    assert [f.code for f in rec.findings if f.code.startswith("versions-hash")] == ["versions-hashed"]
    # own_crcs: the long import is versioned, no import "sha256" is invented
    own = own_crcs(rec)
    assert "sha256" not in own and all(own[e.name] == e.crc for e in h.entries)


def _edit_field(rec, data: bytes, index: int, field: bytes) -> bytes:
    """``data`` with the name field of ``__versions`` entry ``index`` replaced (zero-filled)."""
    sec = next(s for s in rec.sections if s.name == "__versions")
    crc_len = rec.elf.elfclass // 8
    at = sec.offset + index * 64 + crc_len
    out = bytearray(data)
    out[at:at + 64 - crc_len] = field.ljust(64 - crc_len, b"\0")
    return bytes(out)


def test_what_only_looks_hashed_is_not():
    src = FIX / "x86_64" / "hashed.ko"
    rec = parse_module(str(src))
    data = src.read_bytes()
    i = rec.hashed_versions.indices[0]
    body = rec.hashed_versions.digests[0]
    # a real import of the kernel's sha256(): the prefix and zeros
    plain = parse_module_bytes(_edit_field(rec, data, i, b"sha256"))
    assert plain.hashed_versions is None and plain.modversions_format == "basic"
    # bytes after the digest: not the RFC's field
    junk = parse_module_bytes(_edit_field(rec, data, i, b"sha256\0" + bytes.fromhex(body) + b"x"))
    assert junk.hashed_versions is None
    # another hash name
    other = parse_module_bytes(_edit_field(rec, data, i, b"sha512\0" + bytes.fromhex(body)))
    assert other.hashed_versions is None
    # the RFC's field for a name no import has: recognised, unresolved, said so
    stray = parse_module_bytes(_edit_field(rec, data, i, hashed.hashed_field("x" * 70)))
    assert stray.modversions_format == "hashed" and stray.hashed_versions.entries[0].name == ""
    assert "versions-hash-unresolved" in {f.code for f in stray.findings}
    assert own_crcs(stray).keys() == own_crcs(rec).keys() - {rec.hashed_versions.entries[0].name}


@pytest.mark.parametrize("arch", ARCHES)
def test_fixture_round_trip_in_every_word_size(arch):
    src = FIX / arch / "basic+ext.ko"  # its Rust name is long on both word sizes
    rec = parse_module(str(src))
    out = simulate(rec, read_module_bytes(str(src)).data, "hashed")
    sim = parse_module_bytes(out)
    assert sim.modversions_format == "hashed"
    assert import_versions(sim) == import_versions(rec)  # every import, the long ones through their digest
    assert simulate_record(rec, "hashed").hashed_versions == sim.hashed_versions
    limit = hashed.module_name_len(rec.elf.elfclass)
    assert all(len(e.name) >= limit for e in sim.hashed_versions.entries)
    # the written field is the RFC's, byte for byte: "sha256\0", the digest, zeros
    sec = next(s for s in sim.sections if s.name == "__versions")
    crc_len = sim.elf.elfclass // 8
    for i, e in zip(sim.hashed_versions.indices, sim.hashed_versions.entries):
        field = out[sec.offset + i * 64 + crc_len:sec.offset + (i + 1) * 64]
        assert field == hashed.hashed_field(e.name).ljust(64 - crc_len, b"\0")


# --- the models ---------------------------------------------------------------------------------

def test_only_the_rfc_kernel_checks_a_long_name():
    rec = _fixture("x86_64")
    long_name = rec.hashed_versions.entries[0].name
    for kernel in (KERNEL_6_13, KERNEL_6_14):
        v = CONSUMERS[kernel.id](rec)
        assert v.verdict == "loads-unchecked" and long_name in v.unchecked
        assert f"kmc_hashed: no symbol version for {long_name}" in v.messages
    v = CONSUMERS[KERNEL_HASHED_RFC.id](rec)
    assert v.verdict == "loads" and not v.unchecked
    drift = {**own_crcs(rec), long_name: own_crcs(rec)[long_name] ^ 1}
    v = CONSUMERS[KERNEL_HASHED_RFC.id](rec, expected=drift)
    assert v.verdict == "refuses" and f"kmc_hashed: disagrees about version of symbol {long_name}" in v.messages
    assert CONSUMERS[KERNEL_6_13.id](rec, expected=drift).verdict == "loads-unchecked"  # it cannot tell


def test_an_import_of_sha256_meets_the_hashed_record_first():
    # symcmp(): a short name is strcmp()ed against every field, and a hashed field's C string is
    # "sha256". A module importing sha256() after its long import has its first "sha256" entry
    # hashed: on every kernel, the RFC's too, sha256's CRC is compared with the long import's.
    rec = _fixture("x86_64")
    imports = rec.imports + (rec.imports[0]._replace(name="sha256"),)
    crc = 0x5A5A5A5A
    v = rec.versions
    both = replace(rec, imports=imports, versions=replace(
        v, entries=v.entries + (v.entries[0]._replace(crc=crc, name="sha256"),), size=v.size + 64))
    expected = {**own_crcs(rec), "sha256": crc}
    for kernel in (KERNEL_6_13, KERNEL_HASHED_RFC):
        view = CONSUMERS[kernel.id](both, expected=expected)
        assert view.verdict == "refuses"
        assert "kmc_hashed: disagrees about version of symbol sha256" in view.messages


def test_kmod_and_mit_read_a_symbol_named_sha256():
    rec = _fixture("x86_64")
    h = rec.hashed_versions
    for kmod in (KMOD30, KMOD34, KMOD_PR270):
        v = CONSUMERS[kmod.id](rec, path="m.ko")
        assert [m.name for m in v.misread] == ["sha256"] * len(h.entries)
        assert [e.name for e in h.entries] == list(v.lost)
    v = CONSUMERS[MIT.id](rec, path="m.ko")
    assert [m.name for m in v.misread] == ["sha256"] * len(h.entries) and v.verdict == "partial"


# --- real modules, real kmod ----------------------------------------------------------------------

def with_long_imports(rec, data: bytes, renames: dict[str, str]) -> bytes:
    """The module image with the undefined symbols named in ``renames`` renamed: the new names go
    into a copy of ``.strtab`` appended to the file, whose section header then points there."""
    e = rec.elf
    data = data[:unsigned_length(data)]
    bo = "<" if e.little_endian else ">"
    symtab = next(s for s in rec.sections if s.type == SHT_SYMTAB)
    strtab = rec.sections[symtab.link]
    old = data[strtab.offset:strtab.offset + strtab.size]
    new = bytearray(old)
    at = {}
    for name in renames.values():
        at[name] = len(new)
        new += name.encode() + b"\0"
    out = bytearray(data)
    sym = SYM[e.elfclass]
    for off in range(symtab.offset, symtab.offset + symtab.size - sym.size + 1, sym.size):
        (st_name,) = struct.unpack_from(bo + "I", data, off)
        (shndx,) = struct.unpack_from(bo + "H", data, off + sym.shndx)
        name = old[st_name:old.index(b"\0", st_name)].decode()
        if shndx == SHN_UNDEF and name in renames:
            struct.pack_into(bo + "I", out, off, at[renames[name]])
    shdr = struct_for(SHDR[e.elfclass], e.little_endian)
    where = e.shoff + strtab.index * SHDR_SIZE[e.elfclass]
    fields = list(shdr.unpack_from(out, where))
    fields[4], fields[5] = len(out), len(new)  # sh_offset, sh_size
    shdr.pack_into(out, where, *fields)
    return bytes(out + new)


def _long_name(name: str, length: int) -> str:
    """A Rust-looking name of ``length`` characters (at least), ending in the one it replaces."""
    head = "_RNvNtCs1cdwasc6FUb_6kernel"
    return head + "x" * max(0, length - len(head) - len(name)) + name


@pytest.fixture(scope="module", params=TREES)
def hashed_tree(request, tmp_path_factory):
    name = request.param
    root = oracle.tree_root(name, fetch=os.environ.get("KMODCOMPAT_FETCH_TREES") == "1")
    if root is None:
        pytest.skip(f"tree {name} not available")
    for v in KMOD_RELEASES:
        if not oracle.kmod_available(v):
            pytest.skip(f"{v} is not runnable here")
    _, symvers_path = oracle.kernel_symbol_files(root)
    symvers = {n: crc for n, crc, _ in load_module_symvers(str(symvers_path)).symbols}
    base = tmp_path_factory.mktemp(f"hashed-{name}")
    moddir = base / "lib" / "modules" / KVER / "kernel"
    moddir.mkdir(parents=True)
    made = []  # (path, source path, parsed, truth, long names)
    added: dict[str, int] = {}
    mods = oracle.tree_modules(root)
    for src in mods[:: max(1, len(mods) // 300)]:
        rec = parse_module(src)
        names = [i.name for i in rec.imports if i.name in symvers]
        if rec.versions is None or len(names) < 3 or len(names) != len(rec.imports):
            continue
        k = len(made)
        renames = {n: _long_name(n, LENGTHS[(k + j) % len(LENGTHS)]) for j, n in enumerate(names[::2])}
        long_data = with_long_imports(rec, read_module_bytes(src).data, renames)
        long_rec = parse_module_bytes(long_data)
        assert [i.name for i in long_rec.imports] == [renames.get(i.name, i.name) for i in rec.imports]
        crcs = {renames.get(n, n): c for n, c in own_crcs(rec).items()}
        try:
            out = simulate(long_rec, long_data, "hashed", extra=crcs)
        except BuildError:
            continue
        path = moddir / f"{rec.name}-hashed.ko"
        path.write_bytes(out)
        sim = parse_module(str(path))
        # the round trip: the hashed records give back the long names and their CRCs
        assert import_versions(sim) == import_versions(long_rec, crcs)
        assert simulate_record(long_rec, "hashed", crcs).hashed_versions == sim.hashed_versions
        longs = {n for n in renames.values() if hashed.is_hashed_name(n, sim.elf.elfclass)}
        assert {e.name for e in (sim.hashed_versions.entries if sim.hashed_versions else ())} == longs
        added.update({renames[n]: symvers[n] for n in renames})
        made.append((str(path), src, sim, crcs, longs))
        if len(made) == PER_TREE:
            break
    assert made and any(m[4] for m in made)
    symvers_long = base / "Module.symvers"
    symvers_long.write_bytes(Path(symvers_path).read_bytes() + "".join(
        f"0x{crc:08x}\t{n}\tvmlinux\tEXPORT_SYMBOL\t\n" for n, crc in added.items()).encode())
    return name, base, symvers_long, {**symvers, **added}, made


@pytest.mark.realtree
@pytest.mark.parametrize("version", sorted(KMOD_RELEASES))
def test_real_kmod_dump_and_modinfo_of_hashed_real_modules(hashed_tree, version):
    _, _, _, _, made = hashed_tree
    kmod = KMOD_RELEASES[version]
    for path, _, rec, _, longs in made:
        real = oracle.run_kmod(version, "modprobe", ["--dump-modversions", path])
        assert tuple(tools.dump_modversions(kmod, path, rec)) == (real.stdout, real.stderr, real.status), path
        shown = [line.split("\t") for line in real.stdout.decode().splitlines()]
        assert sum(n == "sha256" for _, n in shown) == len(longs)  # the RFC's own example, on real kmod
        view = CONSUMERS[kmod.id](rec, path=path)
        assert [(f"0x{m.crc:08x}", m.name) for m in view.visible] == [tuple(s) for s in shown]
        assert len(view.misread) == len(longs) and set(view.lost) == longs
        real = oracle.run_kmod(version, "modinfo", [path])
        assert tuple(tools.modinfo_file(kmod, path, opened=rec)) == (real.stdout, real.stderr, real.status), path


@pytest.mark.realtree
@pytest.mark.parametrize("version", sorted(KMOD_RELEASES))
def test_real_depmod_on_hashed_real_modules(hashed_tree, version, tmp_path):
    _, base, symvers_path, symvers, made = hashed_tree
    by_module = oracle.real_depmod_crc_warnings(version, base, symvers_path, KVER, tmp_path)
    kmod = KMOD_RELEASES[version]
    for path, _, rec, truth, longs in made:
        view = CONSUMERS[kmod.id](rec, expected=symvers, truth=truth, path=path)
        ours = [m for m in view.messages if m.startswith("depmod: ")]
        assert ours == by_module.get(path, []), path
        # each long import draws a false "disagrees" (CRC 0: no entry of its name), and so does
        # each hashed record, a "sha256" the module never imports; nothing else is said
        about = {m.rsplit(" ", 1)[1] for m in ours}
        assert about == (longs | {"sha256"} if longs else set()), path
        assert view.false_messages == tuple(ours)
        # the RFC's kernel checks every import; the others leave the long ones unchecked
        assert CONSUMERS[KERNEL_HASHED_RFC.id](rec, expected=symvers, path=path).verdict == "loads"
        v = CONSUMERS[KERNEL_6_13.id](rec, expected=symvers, path=path)
        assert set(v.unchecked) == longs and v.verdict == ("loads-unchecked" if longs else "loads")


def test_diff_names_the_long_import_not_sha256():
    from kmodcompat.diff.module import diff_versions
    old, new = _fixture("x86_64", "basic+ext"), _fixture("x86_64")
    long_name = new.hashed_versions.entries[0].name
    changes = {c.name: c for c in diff_versions(old, new)}
    assert "sha256" not in changes
    assert changes[long_name].kind == "moved" and dict(changes[long_name].new) == {"basic": own_crcs(new)[long_name]}
