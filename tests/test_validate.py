"""The kernel loader's checks (kmodcompat.validate) and ``kmodcompat validate``.

Every kernel check of docs/formats.md §1.5 has a ``kcheck-<code>.ko`` fixture
(fixtures/generate.py) that trips exactly that check: the errno and the
kernel's message are compared with the 6.18.y sources. Fixtures made for
other purposes get the verdict their manifest entry names, the well-formed
ones none. The realtree test validates every module of the five Debian
trees and accepts no failure at all (no false alarm on real modules).
"""

from __future__ import annotations

import errno
import functools
import json
import os
import shutil
from pathlib import Path

import pytest

from kmodcompat.cli import main
from kmodcompat.cli.validate import check_one, machine_number
from kmodcompat.errors import ModuleReadError
from kmodcompat.parse.module import parse_module
from kmodcompat.parse.scan import PARSE_TIMEOUT, map_files
from kmodcompat.validate import CHECKS, Target, Validation, validate_bytes, validate_file

from . import oracle
from .paths import FIXTURES

MANIFEST = json.loads((FIXTURES / "manifest.json").read_text())
KCHECK = {e["kind"].removeprefix("kcheck-"): e for e in MANIFEST if e["kind"].startswith("kcheck-")}
KERNEL_CODES = sorted(c for c, k in CHECKS.items() if k.source == "kernel")
#: Fixtures whose bytes kmod cannot even decompress: validate_file raises, as parse_module does.
UNREADABLE = {"decompress-failed"}

#: What the kernel prints for each kcheck fixture (6.18.y kernel/module/main.c, signing.c,
#: kernel/module_signature.c; "" where it prints nothing). Module names come from the
#: fixture's .modinfo name= (info->name) or its struct module (mod->name).
MESSAGES = {
    "sig-unsigned": "(null): loading of unsigned module is rejected",
    "sig-too-short": "",
    "sig-len-overflow": "",
    "sig-not-pkcs7": "module: not signed with expected PKCS#7 message\n"
                     "(null): loading of module with unsupported crypto is rejected",
    "sig-nonzero-params": "module: PKCS#7 signature info has unexpected non-zero params",
    "sig-pkcs7-malformed": "",
    "ehdr-len": "Invalid ELF header len 40",
    "ehdr-magic": "Invalid ELF header magic: != \x7fELF",
    "ehdr-type": "Invalid ELF header type: 2 != 1",
    "ehdr-arch": "Invalid architecture in ELF header: 183",
    "ehdr-module-arch": "Invalid module architecture in ELF header: 21",
    "sechdrs-entsize": "Invalid ELF section header size",
    "sechdrs-overflow": "Invalid ELF section header overflow",
    "sechdrs-section0": "ELF Spec violation: section 0 type(0)!=SH_NULL or non-zero len or addr",
    "sechdrs-bounds": "Invalid ELF section in module (section 4 type 1)",
    "secstrings-index": "Invalid ELF section name index: 12 || e_shstrndx (12) >= e_shnum (12)",
    "secstrings-type": "Invalid ELF section name table type: 1",
    "secstrings-empty": "empty section name table",
    "secstrings-unterminated": "ELF Spec violation: section name table isn't null terminated",
    "secstrings-name-bounds": "Invalid ELF section name in module (section 8 type 8)",
    "index-info-duplicate": "Only one .modinfo section must exist.",
    "index-mod-count": "module kmc_kcheck_index_mod_count: Exactly one .gnu.linkonce.this_module section must exist.",
    "index-mod-nobits": "module kmc_kcheck_index_mod_nobits: .gnu.linkonce.this_module section must have a size set",
    "index-mod-noalloc": "module kmc_kcheck_index_mod_noalloc: .gnu.linkonce.this_module must occupy memory during "
                         "process execution",
    "index-mod-size": "module kmc_kcheck_index_mod_size: .gnu.linkonce.this_module section size must match the "
                      "kernel's built struct module size at run time",
    "index-sym-count": "kmc_kcheck_index_sym_count: module has no symbols (stripped?)",
    "index-str-link": "Invalid ELF sh_link!=SHN_UNDEF(0) or (sh_link(0) >= hdr->e_shnum(12)",
    "index-str-type": "Invalid ELF symbol string table type: 1",
    "index-versions-presence": "extended version crc+name presence does not match",
    "index-versions-names": "more extended version crcs than names",
    "strtab-empty": "empty symbol string table",
    "strtab-leading-nul": "symbol string table missing leading NUL",
    "strtab-unterminated": "symbol string table isn't NUL terminated",
    "strtab-name-bounds": "symbol name out of bounds in string table",
    "rwx-section": "kmc_kcheck_rwx_section: section .text (index 1) has invalid WRITE|EXEC flags",
    "symbol-common": "kmc_kcheck_symbol_common: please compile with -fno-common",
    "symbol-shndx": "kmc_kcheck_symbol_shndx: Symbol kmc_helper has an invalid section index 100 (max 11)",
}


def _path(entry: dict) -> str:
    return str(FIXTURES / entry["path"])


def _target(entry: dict) -> Target:
    return Target(**(entry["validate_target"] or {}))


def test_every_kernel_check_has_a_fixture_and_a_message():
    assert sorted(KCHECK) == KERNEL_CODES
    assert sorted(MESSAGES) == KERNEL_CODES


@pytest.mark.parametrize("code", KERNEL_CODES)
def test_fixture_trips_exactly_its_check(code):
    entry = KCHECK[code]
    v = validate_file(_path(entry), _target(entry))
    kernel = [f for f in v.failures if f.source == "kernel"]
    assert [f.code for f in kernel] == [code]
    (f,) = kernel
    assert f.check == CHECKS[code].function
    # With sig_enforce an ENODATA / ENOPKG signature ends in -EKEYREJECTED ("... is rejected").
    enforced = code in ("sig-unsigned", "sig-not-pkcs7")
    assert f.errno == (errno.EKEYREJECTED if enforced else CHECKS[code].errno)
    assert f.message == MESSAGES[code]
    assert f.fatal and f.detail and not v.valid and v.kernel_refuses
    # what kmod makes of the same file is recorded beside it
    assert [x.code for x in v.failures if x.source == "kmod"] == [c for c in entry["validate"] if c != code]


@pytest.mark.parametrize("entry", MANIFEST, ids=[e["path"].removeprefix("modules/") for e in MANIFEST])
def test_every_fixture_gets_the_verdict_its_manifest_names(entry):
    if set(entry["findings"]) & UNREADABLE:
        with pytest.raises(ModuleReadError):
            validate_file(_path(entry), _target(entry))
        return
    v = validate_file(_path(entry), _target(entry))
    assert list(v.codes) == entry["validate"]
    if not entry["validate"]:
        assert v.valid and not v.kernel_refuses


@pytest.mark.parametrize("code, default_codes", [
    ("ehdr-arch", []),  # a module is checked against the machine it claims unless told otherwise
    ("index-mod-size", []),  # sizeof(struct module) is checked only when given
    ("sig-unsigned", []),  # an unsigned module loads (and taints) unless signatures are enforced
    ("sig-not-pkcs7", ["sig-not-pkcs7"]),  # -ENOPKG is reported, but is not fatal
])
def test_checks_that_need_the_running_kernel_wait_for_its_values(code, default_codes):
    v = validate_file(_path(KCHECK[code]))
    assert list(v.codes) == default_codes
    assert v.valid
    if default_codes:
        assert v.failures[0].errno == errno.ENOPKG and not v.failures[0].fatal


def test_ppc64_abi_level_against_each_kernel_abi():
    basic = FIXTURES / "modules/ppc64/basic.ko"  # e_flags 1: ELFv1
    assert validate_file(basic, Target(ppc64_elfv2=False)).valid
    assert validate_file(basic, Target(ppc64_elfv2=True)).codes == ("ehdr-module-arch",)
    assert validate_file(basic, Target(machine=62)).codes == ("ehdr-arch",)


def test_elf_checks_see_the_image_without_its_signature():
    path = FIXTURES / "modules/x86_64/signed-sha256.ko"
    v = validate_file(path, Target(sig_enforce=True))
    assert v.valid and v.failures == ()
    assert v.elf_size == parse_module(path).signature.offset < v.image_size


def test_kmod_release_decides_the_name_check():
    path = FIXTURES / "modules/x86_64/bad-versions-nonul.ko"
    assert validate_file(path, Target(kmod="kmod34")).codes == ("kmod-modversions",)
    assert validate_file(path, Target(kmod="kmod30")).codes == ()


def test_every_prefix_of_a_module_gets_a_verdict():
    data = (FIXTURES / "modules/x86_64/basic+ext.ko").read_bytes()
    codes = set()
    for n in range(len(data) + 1):
        v = validate_bytes(data[:n])
        assert isinstance(v, Validation) and v.image_size == n
        codes.update(v.codes)
    assert not validate_bytes(data).failures
    assert {"ehdr-len", "sechdrs-overflow", "kmod-elf-new"} <= codes


def test_machine_names():
    assert machine_number("x86_64") == machine_number("amd64") == machine_number("EM_X86_64") == 62
    assert machine_number("s390x") == 22 and machine_number("183") == 183


# -- the command ----------------------------------------------------------------------------------

def _run(capsys, *argv: str) -> tuple[int, str, str]:
    status = main(["validate", *argv])
    out, err = capsys.readouterr()
    return status, out, err


def test_cli_exit_status_and_text(capsys):
    ok = str(FIXTURES / "modules/x86_64/basic.ko")
    bad = _path(KCHECK["ehdr-type"])
    assert _run(capsys, ok)[0] == 0
    status, out, _ = _run(capsys, ok, bad)
    assert status == 1
    assert f"{bad}: FAIL kernel elf_validity_ehdr [ENOEXEC] Invalid ELF header type: 2 != 1" in out
    assert out.endswith("2 module file(s): 1 pass, 1 fail a check, 0 unreadable\n")
    status, _, err = _run(capsys, "/nonexistent/x.ko")
    assert status == 2 and "no such file or directory" in err
    status, out, err = _run(capsys, "--machine", "no-such-arch", ok)
    assert (status, out) == (2, "") and err == ("kmodcompat: validate: argument --machine: unknown machine "
                                                "'no-such-arch' (see kmodcompat validate --help)\n")


def test_cli_warning_alone_passes_and_target_options(capsys):
    legacy = str(FIXTURES / "modules/x86_64/signed-legacy-x509.ko")
    status, out, _ = _run(capsys, legacy)
    assert status == 0 and "WARN kernel mod_check_sig [ENOPKG]" in out
    assert _run(capsys, "--sig-enforce", legacy)[0] == 1
    size = _path(KCHECK["index-mod-size"])
    assert _run(capsys, size)[0] == 0
    assert _run(capsys, "--struct-module-size", "1280", size)[0] == 1
    rwx = _path(KCHECK["rwx-section"])
    assert _run(capsys, rwx)[0] == 1
    assert _run(capsys, "--no-strict-module-rwx", rwx)[0] == 0


def _tree_with_trouble(root: Path) -> tuple[list[str], dict[str, str]]:
    """A module tree of healthy fixtures plus every kind of trouble; (healthy paths, trouble path -> what)."""
    kernel = root / "kernel"
    healthy = []
    for i, name in enumerate(("basic.ko", "basic+ext.ko", "none.ko", "exports-rel.ko", "basic+ext.ko.xz")):
        sub = kernel / f"d{i % 2}"
        sub.mkdir(parents=True, exist_ok=True)
        shutil.copy(FIXTURES / "modules/x86_64" / name, sub / name)
        healthy.append(str(sub / name))
    trouble = {
        str(kernel / "corrupt.ko.xz"): "unreadable",
        str(kernel / "gone.ko"): "unreadable",  # dangling link
        str(kernel / "loop.ko"): "unreadable",  # a link to itself
        str(kernel / "fifo.ko"): "unreadable",
        str(kernel / "notelf.ko"): "fail",
        str(kernel / "kcheck-strtab-leading-nul.ko"): "fail",
    }
    shutil.copy(FIXTURES / "modules/x86_64/corrupt.ko.xz", kernel / "corrupt.ko.xz")
    os.symlink("nowhere.ko", kernel / "gone.ko")
    os.symlink("loop.ko", kernel / "loop.ko")
    os.mkfifo(kernel / "fifo.ko")
    shutil.copy(FIXTURES / "modules/x86_64/notelf.ko", kernel / "notelf.ko")
    shutil.copy(_path(KCHECK["strtab-leading-nul"]), kernel / "kcheck-strtab-leading-nul.ko")
    os.symlink("..", kernel / "d0" / "up")  # a directory loop: walked once, listed as skipped
    (root / "build").symlink_to("/")  # depmod skips build and source; so do we
    return healthy, trouble


def test_cli_tree_names_every_module_it_could_not_check(tmp_path, capsys):
    healthy, trouble = _tree_with_trouble(tmp_path)
    status, out, _ = _run(capsys, "--format", "json", "-j", "2", str(tmp_path))
    doc = json.loads(out)
    assert status == 1
    verdict = {m["path"]: ("pass" if m["valid"] else "fail") for m in doc["modules"]}
    verdict.update({u["path"]: "unreadable" for u in doc["unreadable"]})
    assert {p: verdict.get(p) for p in healthy} == {p: "pass" for p in healthy}
    assert {p: verdict.get(p) for p in trouble} == trouble
    assert all(u["reason"] for u in doc["unreadable"])
    assert doc["totals"] == {"modules": len(healthy) + len(trouble), "pass": len(healthy), "fail": 2,
                             "unreadable": 4}
    assert [s["path"] for s in doc["skipped"]] == [str(tmp_path / "kernel/d0/up")]


def test_cli_time_bound_per_module():
    res = check_one(str(FIXTURES / "modules/x86_64/basic+ext.ko.xz"), Target(), timeout=1e-6)
    assert isinstance(res, ModuleReadError) and res.code == "timeout" and res.errno == errno.ETIMEDOUT


# -- real trees ---------------------------------------------------------------------------------

@pytest.mark.realtree
@pytest.mark.parametrize("tree", sorted(oracle.TREES))
def test_no_false_alarm_on_real_modules(tree):
    root = oracle.tree_root(tree, fetch=os.environ.get("KMODCOMPAT_FETCH_TREES") == "1")
    if root is None:
        pytest.skip(f"{tree} not downloaded (KMODCOMPAT_FETCH_TREES=1 fetches it)")
    mods = oracle.tree_modules(root)
    results = map_files(functools.partial(check_one, target=Target(), timeout=PARSE_TIMEOUT), mods)
    unreadable = [str(r) for r in results if isinstance(r, ModuleReadError)]
    alarms = [(r.path, r.codes) for r in results if isinstance(r, Validation) and r.failures]
    assert len(mods) > 1000
    assert unreadable == [] and alarms == []
    # signed with the distribution's key: every ELF check saw the image without its trailer
    assert all(r.elf_size < r.image_size for r in results)


@pytest.mark.parametrize("kmod", ["kmod30", "kmod34"])
def test_kmod_abort_is_reported_as_the_real_tool_aborts(kmod):
    """e_shstrndx past the table: real kmod does not refuse the file, it fails an assert() and dies of SIGABRT;
    validate says so with the assertion line the real modinfo prints (not an errno it never returns)."""
    if not oracle.kmod_available(kmod):
        pytest.skip(f"{kmod} is not available")
    path = FIXTURES / KCHECK["secstrings-index"]["path"]
    v = validate_file(path, Target(kmod=kmod))
    (f,) = [f for f in v.failures if f.source == "kmod"]
    assert (f.code, f.errno_name, f.check) == ("kmod-abort", "SIGABRT", "kmod_elf_new")
    real = oracle.run_kmod(kmod, "modinfo", [str(path)])
    assert real.status in (-6, 134)
    assert f"modinfo: {f.message}" in real.stderr.decode().splitlines()
