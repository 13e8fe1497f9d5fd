"""Consumer models on fixtures: verdicts, exact messages, and each cited rule.

The kmod and busybox models are also checked against the real binaries in
tests/test_simulate.py; the kernel, PR #270 and module-init-tools models
cannot be run here, so every rule they cite is pinned by a fixture below.
"""

from __future__ import annotations


import pytest

from kmodcompat.consumers import (CONSUMERS, KERNEL_6_13, KERNEL_6_13_DEBIAN, KERNEL_6_13_DEBIAN_FORCE, KERNEL_6_13_FORCE,
                                  KERNEL_6_14, KERNEL_6_14_DEBIAN, KERNEL_6_14_FORCE, busybox, standard)
from kmodcompat.consumers.kernel import profile_of
from kmodcompat.consumers.base import own_crcs
from kmodcompat.kmod.profile import KMOD30, KMOD34, KMOD_PR270
from kmodcompat.parse.module import parse_module

from .paths import MODULES as FIX

LONG = "_RNvXs_NtCshhMfd4mY5QU_6kernel8user_ptrNtB4_18UserSlicePtrReaderNtNtB6_9io_buffer14IoBufferReader8read_raw"


def rec(arch: str, kind: str):
    return parse_module(str(FIX / arch / f"{kind}.ko"))


# docs/formats.md §10, as verdicts. Kernel rows hold for 64-bit; 32-bit differs for varlen only.
MATRIX = {
    "none": {"kmod30": "ok", "kmod34": "ok", "kmod-pr270": "ok", "busybox": "ignores-versions", "mit": "ok",
             "kernel-6.13": "refuses", "kernel-6.13+force": "loads-tainted",
             "kernel-6.14": "refuses", "kernel-6.14+force": "loads-tainted"},
    "basic": {"kmod30": "ok", "kmod34": "ok", "kmod-pr270": "ok", "busybox": "ignores-versions", "mit": "ok",
              "kernel-6.13": "loads", "kernel-6.13+force": "loads",
              "kernel-6.14": "loads", "kernel-6.14+force": "loads"},
    "basic+ext": {"kmod30": "false-mismatch", "kmod34": "false-mismatch", "kmod-pr270": "ok",
                  "busybox": "ignores-versions", "mit": "partial",
                  "kernel-6.13": "loads-unchecked", "kernel-6.13+force": "loads-unchecked",
                  "kernel-6.14": "loads", "kernel-6.14+force": "loads"},
    "ext-only": {"kmod30": "false-mismatch", "kmod34": "false-mismatch", "kmod-pr270": "ok",
                 "busybox": "ignores-versions", "mit": "partial",
                 "kernel-6.13": "refuses", "kernel-6.13+force": "loads-tainted",
                 "kernel-6.14": "loads", "kernel-6.14+force": "loads"},
    "varlen": {"kmod30": "false-mismatch", "kmod34": "false-mismatch", "kmod-pr270": "unreadable",
               "busybox": "ignores-versions", "mit": "unreadable",
               "kernel-6.13": "refuses", "kernel-6.13+force": "refuses",
               "kernel-6.14": "refuses", "kernel-6.14+force": "refuses"},
    # The long name's record reads as a symbol "sha256": lost to kmod (its import draws depmod's false
    # "disagrees", CRC 0) and to module-init-tools (0 never disagrees); only the RFC's kernel checks it.
    "hashed": {"kmod30": "false-mismatch", "kmod34": "false-mismatch", "kmod-pr270": "false-mismatch",
               "busybox": "ignores-versions", "mit": "partial",
               "kernel-6.13": "loads-unchecked", "kernel-6.13+force": "loads-unchecked",
               "kernel-6.14": "loads-unchecked", "kernel-6.14+force": "loads-unchecked",
               "kernel-hashed-rfc": "loads"},
}
for _kind, _row in MATRIX.items():  # the RFC's kernel is a 6.13 in every other format
    _row.setdefault("kernel-hashed-rfc", _row["kernel-6.13"])
GATES = {"none": "compatible", "basic": "compatible", "basic+ext": "incompatible", "ext-only": "incompatible",
         "varlen": "incompatible", "hashed": "incompatible"}
for _kind, _gate in GATES.items():  # weak-modules and weak-modules2 follow depmod -e -E (module-only: no unknowns)
    MATRIX[_kind]["weak-modules"] = MATRIX[_kind]["weak-modules2"] = _gate
#: On 32-bit the fixed 60-byte name field starts inside the variable-length record's CRC,
#: so no name matches: every import is accepted unchecked (docs/formats.md §2).
VARLEN_32 = {"kernel-6.13": "loads-unchecked", "kernel-6.13+force": "loads-unchecked",
             "kernel-6.14": "loads-unchecked", "kernel-6.14+force": "loads-unchecked",
             "kernel-hashed-rfc": "loads-unchecked"}


@pytest.mark.parametrize("arch", ["x86_64", "s390x", "arm", "ppc64"])
@pytest.mark.parametrize("kind", sorted(MATRIX))
def test_verdict_matrix(arch, kind):
    r = rec(arch, kind)
    want = dict(MATRIX[kind])
    if kind == "varlen" and r.elf.elfclass == 32:
        want.update(VARLEN_32)
    if arch == "ppc64" and kind in ("basic", "basic+ext", "ext-only", "hashed"):
        # Analysis, unverified: PR #270 de-dots version names but not .symtab names (kmod.py).
        want["kmod-pr270"] = "false-mismatch"
    # Debian's kernels (module-disable-matching-missing-version-crc.patch): what kernel.org's loads with a
    # __versions entry missing, Debian's refuses; the extended tables' walk is kernel.org's.
    for c in ("kernel-6.13", "kernel-6.13+force", "kernel-6.14", "kernel-6.14+force"):
        era, force = c.split("+") if "+" in c else (c, "")
        want[f"{era}-debian{'+' + force if force else ''}"] = "refuses" if want[c] == "loads-unchecked" else want[c]
    got = {c: view(r).verdict for c, view in CONSUMERS.items()}
    assert got == want
    assert [c for c in standard() if "debian" in c] == []  # not in the default lists


def test_debian_kernel_fails_closed_on_a_name_missing_from_versions():
    # basic+ext: the Rust name too long for __versions is in the extended tables only.
    v = CONSUMERS[KERNEL_6_13_DEBIAN.id](rec("x86_64", "basic+ext"))
    assert v.verdict == "refuses"
    assert v.messages == (f"kmc_basic_ext: no symbol version for {LONG}", f"kmc_basic_ext: Unknown symbol {LONG} (err -22)")
    assert v.unchecked == (LONG,) and v.false_messages == ()
    assert CONSUMERS[KERNEL_6_14_DEBIAN.id](rec("x86_64", "basic+ext")).verdict == "loads"  # reads the ext tables
    # 32-bit varlen: no fixed-layout name matches, module_layout first: -ENOEXEC after one line.
    v = CONSUMERS[KERNEL_6_13_DEBIAN_FORCE.id](rec("arm", "varlen"))
    assert v.verdict == "refuses" and v.messages == ("kmc_varlen: no symbol version for module_layout",)


def test_debian_kernel_each_missing_name_fails():
    r = rec("x86_64", "basic")
    drop = {r.imports[0].name, r.imports[-1].name}
    entries = tuple(e for e in r.versions.entries if e.name not in drop)
    from dataclasses import replace
    r2 = replace(r, versions=replace(r.versions, entries=entries))
    v = CONSUMERS[KERNEL_6_13_DEBIAN.id](r2)
    assert v.verdict == "refuses"
    names = [i.name for i in r.imports if i.name in drop]
    assert v.messages == tuple(m for n in names for m in (f"kmc_basic: no symbol version for {n}",
                                                          f"kmc_basic: Unknown symbol {n} (err -22)"))
    assert CONSUMERS[KERNEL_6_13.id](r2).messages == (f"kmc_basic: no symbol version for {names[0]}",)  # once


@pytest.mark.parametrize("banner,release,profile", [
    # linux_banner of Debian's bookworm amd64, trixie amd64 and trixie armmp images
    ("Linux version 6.1.0-57-amd64 (debian-kernel@lists.debian.org) (gcc-12 (Debian 12.2.0-14+deb12u1) 12.2.0, "
     "GNU ld (GNU Binutils for Debian) 2.40) #1 SMP PREEMPT_DYNAMIC Debian 6.1.192-3 (2026-11-26)", None, "debian"),
    ("Linux version 6.12.118+deb13-amd64 (debian-kernel@lists.debian.org) (x86_64-linux-gnu-gcc-14 (Debian 14.2.0-19) "
     "14.2.0, GNU ld (GNU Binutils for Debian) 2.44) #1 SMP PREEMPT_DYNAMIC Debian 6.12.118-1 (2026-11-20)", None,
     "debian"),
    ("Linux version 6.12.118+deb13-armmp (debian-kernel@lists.debian.org) (arm-linux-gnueabihf-gcc-14 (Debian 14.2.0-19)"
     " 14.2.0, GNU ld (GNU Binutils for Debian) 2.44) #1 SMP Debian 6.12.118-1 (2026-11-20)", None, "debian"),
    # tests/data/qemu-kernel-7.2: Debian's linux-source built by tools/qemu/build-kernel.sh, Debian's compiler
    ("Linux version 7.2.13 (root@vm) (gcc (Debian 12.2.0-14+deb12u1) 12.2.0, GNU ld (GNU Binutils for Debian) 2.40) "
     "#1 PREEMPT Wed Dec  2 14:52:03 UTC 2026", None, "mainline"),
    (None, "6.12.118+deb13-amd64", "debian"),
    (None, "6.1.0-57-amd64", "mainline"),  # Ubuntu's ABI names look the same: no evidence
    (None, None, "mainline"),
])
def test_kernel_profile_from_the_version_string(banner, release, profile):
    got, why = profile_of(banner, release)
    assert got == profile and why


def test_kmod_basic_ext_long_name_disagrees_falsely():
    r = rec("x86_64", "basic+ext")
    v = CONSUMERS[KMOD34.id](r, path="p.ko")
    assert v.lost == (LONG,)
    assert v.messages == (f"depmod: WARNING: p.ko disagrees about version of symbol {LONG}",)
    assert v.false_messages == v.messages
    assert CONSUMERS[KMOD_PR270.id](r).messages == ()
    assert [m.name for m in CONSUMERS[KMOD_PR270.id](r).visible][-2:] == [LONG, "module_layout"]


def test_kmod_ext_only_dump_fails_per_release():
    r = rec("x86_64", "ext-only")
    assert CONSUMERS[KMOD30.id](r, path="p.ko").messages[0] == \
        "modprobe: FATAL: could not get modversions of p.ko: No such file or directory"
    assert CONSUMERS[KMOD34.id](r, path="p.ko").messages[0] == \
        "modprobe: FATAL: could not get modversions of p.ko: No data available"
    # every versioned import "disagrees" under depmod -e -E (CRC 0 vs the exporter's);
    # module_layout is no .symtab import and, without __versions, nothing appends it
    n = len([i for i in r.imports if i.name in own_crcs(r)])
    assert len(CONSUMERS[KMOD34.id](r).false_messages) == n


def test_kmod_against_a_real_mismatch_is_not_false():
    r = rec("x86_64", "basic")
    exp = dict(own_crcs(r))
    exp["kfree"] ^= 1
    v = CONSUMERS[KMOD34.id](r, expected=exp, path="p.ko")
    assert v.messages == ("depmod: WARNING: p.ko disagrees about version of symbol kfree",)
    assert v.false_messages == ()
    assert v.verdict == "ok"


def test_kmod_unknown_symbol_only_with_a_tree():
    r = rec("x86_64", "basic")
    exp = {k: v for k, v in own_crcs(r).items() if k != "kfree"}
    assert "depmod: WARNING: p.ko needs unknown symbol kfree" in CONSUMERS[KMOD34.id](r, expected=exp, path="p.ko").messages
    assert CONSUMERS[KMOD34.id](r, path="p.ko").messages == ()


def test_pr270_propagates_bad_extended_tables():
    # 4e79a46: any error but ENODATA is returned; depmod then has no dependency symbols.
    r = rec("x86_64", "bad-ext-count")
    v = CONSUMERS[KMOD_PR270.id](r, path="p.ko")
    assert v.messages == ("modprobe: FATAL: could not get modversions of p.ko: Invalid argument",)
    assert v.verdict == "unreadable"
    assert CONSUMERS[KMOD34.id](r).verdict != "unreadable"  # released kmod never looks at the ext tables


def test_kernel_613_basic_ext_warns_once_and_skips_long_names():
    v = CONSUMERS[KERNEL_6_13.id](rec("x86_64", "basic+ext"))
    assert v.messages == (f"kmc_basic_ext: no symbol version for {LONG}",)
    assert v.unchecked == (LONG,)


def test_kernel_614_ext_only_needs_exact_vermagic():
    v = CONSUMERS[KERNEL_6_14.id](rec("x86_64", "ext-only"))
    assert v.verdict == "loads" and v.messages == ()
    assert any("vermagic" in n for n in v.notes)


def test_kernel_force_load_taints_once():
    v = CONSUMERS[KERNEL_6_13_FORCE.id](rec("x86_64", "none"))
    assert v.messages == ("kmc_none: module_layout: kernel tainted.",)
    assert "module_layout" in v.unchecked
    assert CONSUMERS[KERNEL_6_13.id](rec("x86_64", "none")).messages == ()  # -ENOEXEC without a word


@pytest.mark.parametrize("kind,message", [
    ("bad-ext-only-crcs", "extended version crc+name presence does not match"),
    ("bad-ext-only-names", "extended version crc+name presence does not match"),
    ("bad-ext-count", "more extended version crcs than names"),
    ("bad-ext-nonul", "more extended version crcs than names"),
])
def test_kernel_614_rejects_inconsistent_ext_tables(kind, message):
    r = rec("x86_64", kind)
    assert CONSUMERS[KERNEL_6_14.id](r).verdict == "refuses"
    assert CONSUMERS[KERNEL_6_14.id](r).messages == (message,)
    assert CONSUMERS[KERNEL_6_14_FORCE.id](r).verdict == "refuses"  # before any force-load path
    assert CONSUMERS[KERNEL_6_13.id](r).verdict == "loads-unchecked"  # 6.13 never looks at them: long name unchecked


def test_kernel_614_tolerates_extra_names():
    assert CONSUMERS[KERNEL_6_14.id](rec("x86_64", "ext-extra-names")).verdict == "loads"


def test_kernel_ignores_versions_without_alloc_but_kmod_reads_them():
    r = rec("x86_64", "noalloc-versions")
    assert CONSUMERS[KERNEL_6_13.id](r).verdict == "refuses"  # find_sec() skips non-ALLOC sections
    assert CONSUMERS[KMOD34.id](r).verdict == "ok" and CONSUMERS[KMOD34.id](r).visible  # kmod ignores flags


def test_kernel_varlen_misread_64bit():
    v = CONSUMERS[KERNEL_6_13.id](rec("x86_64", "varlen"))
    assert v.messages[0] == "kmc_varlen: no symbol version for module_layout"
    assert v.messages[1].startswith("kmc_varlen: disagrees about version of symbol ")
    assert v.misread and v.misread[0].crc >> 32  # next and crc read as one unsigned long


def test_kernel_detects_a_real_mismatch():
    r = rec("s390x", "basic")
    exp = {k: v for k, v in own_crcs(r).items()}
    exp["printk"] ^= 0x10
    v = CONSUMERS[KERNEL_6_14.id](r, expected=exp)
    assert v.verdict == "refuses"
    assert "disagrees about version of symbol printk" in v.messages[0] and v.false_messages == ()


def test_mit_rules():
    v = CONSUMERS["mit"](rec("x86_64", "none"), path="p.ko")
    assert v.messages == ("WARNING: p.ko is built without modversions",)
    v = CONSUMERS["mit"](rec("x86_64", "varlen"), path="p.ko")
    assert v.messages == ("Wrong section size in 'p.ko'", "WARNING: invalid __versions section size in p.ko")
    v = CONSUMERS["mit"](rec("x86_64", "ext-only"), path="p.ko")  # CRC 0 is never compared
    assert not [m for m in v.messages if "disagrees" in m]
    assert CONSUMERS["mit"](parse_module(str(FIX / "x86_64" / "basic+ext.ko.xz"))).verdict == "unreadable"


def test_busybox_ignores_format_and_drops_gpl_prefixed_exports():
    r = rec("x86_64", "exports-rel")
    assert busybox.exported_symbols(r) == {x.name for x in r.exports} - {"gpl_sym"}
    assert busybox.depends(rec("x86_64", "basic")) == busybox.depends(rec("x86_64", "ext-only"))


def test_weak_modules_gates_reject_on_false_depmod_warnings():
    r = rec("x86_64", "ext-only")
    v = CONSUMERS["weak-modules"](r, path="p.ko")
    assert v.verdict == "incompatible" and v.messages == v.false_messages and v.notes
    assert CONSUMERS[KERNEL_6_14.id](r).verdict == "loads"  # what the gate's rejection costs
    assert CONSUMERS["weak-modules2"](rec("x86_64", "basic")).verdict == "compatible"


def test_weak_modules_redhat_loop_and_suse_whole_kmp():
    from kmodcompat.consumers import weak_modules

    exporter = rec("x86_64", "exports-rel")
    importer = rec("x86_64", "basic")
    kernel = {k: v for k, v in own_crcs(importer).items() if k not in {x.name for x in exporter.exports}}
    bad_exporter = parse_module(str(FIX / "x86_64" / "exports-rel.ko"))
    kernel_without_printk = {k: v for k, v in kernel.items() if k != "printk"}  # the exporter needs printk
    mods = [("exp.ko", bad_exporter), ("imp.ko", importer)]
    assert weak_modules.redhat_weak_links(mods, kernel) == {"exp.ko", "imp.ko"}
    # exporter dropped for an unknown symbol, then the importer loses its exports: both links go
    assert weak_modules.redhat_weak_links(mods, kernel_without_printk) == set()
    assert weak_modules.suse_kmp_compatible(mods, kernel) is True
    assert weak_modules.suse_kmp_compatible(mods, kernel_without_printk) is False


def test_tree_crcs_follow_depmod_ownership():
    from kmodcompat.consumers.base import tree_crcs

    with_crc = rec("x86_64", "exports-rel")
    without = rec("x86_64", "exports-nocrc")  # same names, no MODVERSIONS
    kernel = {"short_sym": 1, "printk": 2}
    assert tree_crcs(kernel, [with_crc])["short_sym"] == next(x.crc for x in with_crc.exports if x.name == "short_sym")
    assert tree_crcs(kernel, [with_crc, without])["short_sym"] == 0  # the last module wins; no CRC counts as 0
    assert tree_crcs(kernel, [without])["printk"] == 2


def test_cli_as_kmod_pr270_reads_the_extended_tables(tmp_path):
    import subprocess
    import sys

    def cli(*args):
        return subprocess.run([sys.executable, "-m", "kmodcompat", *args], capture_output=True, text=True)

    ext_only = str(FIX / "x86_64" / "ext-only.ko")
    p = cli("dump-modversions", "--as", "kmod-pr270", ext_only)
    assert p.returncode == 0 and p.stdout.splitlines()[-1].endswith("\tmodule_layout")
    assert LONG in p.stdout  # the long name, which no released kmod can show
    assert cli("dump-modversions", "--as", "kmod34", ext_only).returncode == 1
    moddir = tmp_path / "lib" / "modules" / "1.2.3" / "kernel"
    moddir.mkdir(parents=True)
    (moddir / "kmc_exports_rel.ko").write_bytes((FIX / "x86_64" / "exports-rel.ko").read_bytes())
    (moddir / "ext-only.ko").write_bytes((FIX / "x86_64" / "ext-only.ko").read_bytes())
    out = {}
    for kmod in ("kmod34", "kmod-pr270"):
        p = cli("depmod", "--as", kmod, "-b", str(tmp_path), "-n", "-e", "-F", "/dev/null", "1.2.3")
        out[kmod] = p.stderr
    # -F never compares CRCs; what differs is only which imports PR #270 reports (module_layout from ext)
    assert "ext-only.ko needs unknown symbol module_layout" in out["kmod-pr270"]
    assert "ext-only.ko needs unknown symbol module_layout" not in out["kmod34"]
