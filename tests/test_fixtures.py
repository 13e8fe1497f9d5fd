"""Every fixture module: parsed records against the manifest, tool output against real kmod.

fixtures/generate.py writes the modules, fixtures/manifest.json says what is
inside each, and fixtures/expected/ holds what real kmod 30 and kmod 34.2
printed for them (``generate.py --expected``), with the checkout's path
replaced by ``@REPO@``.
"""

from __future__ import annotations

import io
import json
import os

import pytest
from elftools.elf.elffile import ELFFile

from kmodcompat.kmod import tools
from kmodcompat.kmod.profile import KMOD_RELEASES
from kmodcompat.elf.image import ElfImage
from kmodcompat.errors import ModuleReadError
from kmodcompat.parse.module import parse_module
from kmodcompat.files.opener import read_module_bytes

from .paths import FIXTURES, REPO

MANIFEST = json.loads((FIXTURES / "manifest.json").read_text())
BY_PATH = {e["path"]: e for e in MANIFEST}
#: Findings that end the read of a file (a ModuleReadError), not a record.
READ_ERRORS = {"not-elf", "truncated", "decompress-failed", "bad-elf-header", "shstrndx-invalid", "shstrndx-undef"}
#: Findings a fixture may carry beyond what the manifest names, with the reason.
INCIDENTAL = {"symtab-missing"}  # stripped fixtures have no .symtab on purpose


def ids(entries):
    return [e["path"].removeprefix("modules/") for e in entries]


@pytest.fixture(autouse=True)
def _in_repo(monkeypatch):
    monkeypatch.chdir(REPO)  # expected outputs were recorded with paths relative to the checkout


def _rel(entry) -> str:
    return f"fixtures/{entry['path']}"


@pytest.mark.parametrize("entry", MANIFEST, ids=ids(MANIFEST))
def test_fixture_parses_as_manifest_says(entry):
    path = _rel(entry)
    expected = set(entry["findings"])
    if expected & READ_ERRORS:
        with pytest.raises(ModuleReadError) as info:
            parse_module(path)
        assert info.value.code in expected, str(info.value)
        assert str(info.value).startswith(path + ": ") and "\n" not in str(info.value)
        return
    rec = parse_module(path)
    found = {f.code for f in rec.findings}
    assert expected <= found, f"missing findings {expected - found}"
    assert not (found - expected - INCIDENTAL), f"unexpected findings {found - expected}"
    assert rec.elf.elfclass == entry["elfclass"]
    assert rec.elf.endian == entry["endian"]
    assert rec.compression == entry["compression"]
    assert [list(kv) for kv in rec.modinfo] == [[k, v] for k, v in entry["modinfo"]]
    if entry["versions"] and rec.versions is not None and rec.versions.well_formed:
        assert len(rec.versions.entries) == len(entry["versions"])
        for m, (crc, name) in zip(rec.versions.entries, entry["versions"]):
            # An unterminated name reads on past its field, as strlen() does in C readers.
            assert m.crc == crc and (m.name == name if m.terminated else m.name.startswith(name))
    if entry["versions"] and rec.varlen_versions is not None:
        assert [[m.crc, m.name] for m in rec.varlen_versions.entries] == entry["versions"]
    if entry["ext_versions"] and not expected & {"ext-fewer-names", "ext-crcs-missing", "ext-names-missing"}:
        assert [[m.crc, m.name] for m in rec.ext_versions.entries] == entry["ext_versions"]
    want_exports = sorted((x["name"], x["crc"], x["license"] == "GPL", x["namespace"]) for x in entry["exports"])
    got_exports = sorted((x.name, x.crc, x.gpl_only, x.namespace) for x in rec.exports)
    assert got_exports == want_exports
    want_imports = entry["imports"]
    assert [i.name for i in rec.imports] == want_imports
    assert (rec.signature is not None and rec.signature.kmod_accepts) == entry["signed"]
    if entry["signature"]:
        assert rec.signature.hash_algo == entry["signature"]["hash"]
        assert rec.signature.signer == entry["signature"]["signer"]


EXPECTED = sorted(p for p in (FIXTURES / "expected").rglob("*")
                  if p.is_file() and p.name.split(".")[-2].startswith(("modinfo", "dump-modversions", "show-exports")))


def _modinfo_flags(argv: list[str]) -> tuple[str | None, str]:
    """(field, separator) from a recorded modinfo argv (kmod 34's starts with the wrapper script)."""
    pos = next(i for i, a in enumerate(argv) if a == "modinfo" or a.endswith("/modinfo"))
    flags = argv[pos + 1:-1]
    field, sep = None, "\n"
    for i, f in enumerate(flags):
        if f == "-p":
            field = "parm"
        elif f == "-0":
            sep = "\0"
        elif f == "-F":
            field = flags[i + 1]
    return field, sep


@pytest.mark.parametrize("expected_file", EXPECTED, ids=[str(p.relative_to(FIXTURES / "expected")) for p in EXPECTED])
def test_fixture_output_identical_to_real_kmod(expected_file):
    want = json.loads(expected_file.read_text())
    tool, version = expected_file.name.split(".")[-2:]
    kmod = KMOD_RELEASES[version]
    path = want["argv"][-1]
    if tool.startswith("modinfo"):
        result = tools.modinfo_arg(kmod, path, *_modinfo_flags(want["argv"]))
    elif tool == "show-exports":
        result = tools.show_exports(kmod, path)
    else:
        result = tools.dump_modversions(kmod, path)

    def real(s: str) -> bytes:
        return s.replace("@REPO@", str(REPO)).encode("utf-8", "surrogateescape")

    assert result.stdout == real(want["stdout"])
    assert result.stderr == real(want["stderr"])
    assert result.status == want["status"]


#: pyelftools builds every SHT_SYMTAB when it lists sections and refuses one whose sh_link is no string table.
PYELFTOOLS_UNREADABLE = {"kcheck-index-str-link", "kcheck-index-str-type"}
ELF_FIXTURES = [e for e in MANIFEST if not set(e["findings"]) & READ_ERRORS and e["kind"] not in PYELFTOOLS_UNREADABLE]


@pytest.mark.parametrize("entry", ELF_FIXTURES, ids=ids(ELF_FIXTURES))
def test_section_table_agrees_with_pyelftools(entry):
    data = read_module_bytes(_rel(entry)).data
    ours = ElfImage(data)
    theirs = ELFFile(io.BytesIO(data))
    assert ours.header.machine == {v: k for k, v in __import__("elftools.elf.enums", fromlist=["x"])
                                   .ENUM_E_MACHINE.items()}.get(theirs["e_machine"], ours.header.machine) \
        or theirs["e_machine"] == ours.header.machine
    rows = [(s.name, s["sh_type"], s["sh_flags"], s["sh_offset"], s["sh_size"], s["sh_addralign"], s["sh_entsize"])
            for s in theirs.iter_sections()]
    assert [(s.name, s.type, s.flags, s.offset, s.size, s.addralign, s.entsize) for s in ours.sections] == [
        (n, t if isinstance(t, int) else _sh_type(t), f, o, z, a, e) for n, t, f, o, z, a, e in rows]


def _sh_type(name: str) -> int:
    from elftools.elf.enums import ENUM_SH_TYPE_BASE

    return ENUM_SH_TYPE_BASE[name]


def test_manifest_covers_every_format_and_word_size():
    kinds = {(e["arch"], e["kind"]) for e in MANIFEST}
    for arch in ("x86_64", "s390x", "arm", "ppc"):
        for kind in ("none", "basic", "basic+ext", "ext-only", "varlen", "exports-abs", "exports-rel",
                     "exports-kflagstab", "exports-nocrc"):
            assert (arch, kind) in kinds, (arch, kind)
    assert {(e["elfclass"], e["endian"]) for e in MANIFEST if e["elfclass"]} == {(64, "little"), (64, "big"), (32, "little"),
                                                                 (32, "big")}
    assert {e["compression"] for e in MANIFEST} >= {None, "gzip", "xz", "zstd"}
    assert any(e["signed"] for e in MANIFEST)
    assert os.path.exists(FIXTURES / "generate.py")
