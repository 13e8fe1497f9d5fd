"""``kmodcompat loadable``: the load matrix on fixture modules and kernel images made to the kernel's layout.

The real kernel is the oracle in tests/test_qemu_oracle.py (the same cases as the
kernel models, through loadable: Debian's 6.1 and 6.12, a 7.2 with
EXTENDED_MODVERSIONS). Here each rule of kmodcompat/loadable.py on its own:
symbols missing, modules given together, a CRC changed, a namespace not
imported, a GPL-only export and a non-GPL module, vermagic, exit statuses.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from kmodcompat.consumers import CONSUMERS
from kmodcompat.loadable import load_matrix, load_one, same_magic, target_for
from kmodcompat.parse.module import parse_module, parse_module_bytes

from . import kernel_images as ki
from . import oracle
from .paths import REPO, TOOLS, X86_64 as FIX

sys.path.insert(0, str(TOOLS))
import qemu_oracle as q  # noqa: E402  (the oracle's module mutators)

VERMAGIC = "6.1.0-kmc-amd64 SMP preempt mod_unload modversions "


def _kernel(tmp_path: Path, changes: dict | None = None, config: str = "CONFIG_MODVERSIONS=y\n",
            version: bytes = b"#1") -> str:
    """A bzImage exporting what basic.ko imports from the kernel, with basic.ko's CRCs (``changes``: name ->
    (crc, gpl, namespace)), its banner (UTS_VERSION ``version``) and vermagic, and a config beside it."""
    rec = parse_module(str(FIX / "basic.ko"))
    crcs = {e.name: e.crc for e in rec.versions.entries}
    syms = [ki.Sym(n, crcs[n], False, "") for n in ("module_layout", "__fentry__", "printk", "kmalloc_caches", "kfree")]
    syms = [ki.Sym(s.name, *(changes or {}).get(s.name, (s.crc, s.gpl, s.namespace))) for s in syms]
    vmlinux = ki.vmlinux(syms, ki.Layout(True, 4, True)) + (
        b"Linux version 6.1.0-kmc-amd64 (kmc@test) " + version + b"\n\0\0" + VERMAGIC.encode() + b"\0")
    path = tmp_path / "vmlinuz-6.1.0-kmc-amd64"
    path.write_bytes(ki.bzimage(ki.compress("gzip", vmlinux)))
    (tmp_path / "config-6.1.0-kmc-amd64").write_text(config)
    return str(path)


def _load(kernel: str, *modules: tuple[str, bytes]):
    target = target_for(kernel)
    recs = [(name, parse_module_bytes(data, name)) for name, data in modules]
    return load_one(recs[0][0], recs[0][1], target, [r for _, r in recs])


BASIC = ("basic.ko", (FIX / "basic.ko").read_bytes())
EXPORTER = ("exports-rel.ko", (FIX / "exports-rel.ko").read_bytes())


def test_the_image_gives_exports_vermagic_and_config(tmp_path):
    t = target_for(_kernel(tmp_path))
    assert (t.release, t.vermagic, t.force_load, t.modversions, t.model.id) == (
        "6.1.0-kmc-amd64", VERMAGIC, False, True, "kernel-6.13")
    assert t.source.kind == "boot image" and t.source.crcs


def test_symbols_no_module_given_exports_are_missing(tmp_path):
    r = _load(_kernel(tmp_path), BASIC)
    assert r.verdict == "refused"
    assert [(x.check, x.symbol) for x in r.reasons] == [("missing", "short_sym"), ("missing", "ns_sym")]
    assert list(r.messages) == ["kmc_basic: Unknown symbol short_sym (err -2)", "kmc_basic: Unknown symbol ns_sym (err -2)"]


def test_modules_given_together_satisfy_each_other(tmp_path):
    r = _load(_kernel(tmp_path), BASIC, EXPORTER)
    assert (r.verdict, r.reasons, r.messages) == ("loads", (), ())
    assert r.weak_modules == {"weak-modules": "compatible", "weak-modules2": "compatible"}


def test_a_crc_the_kernel_changed_refuses_with_the_kernels_lines(tmp_path):
    crc = parse_module(str(FIX / "basic.ko")).versions.entries
    kfree = next(e.crc for e in crc if e.name == "kfree")
    r = _load(_kernel(tmp_path, {"kfree": (kfree ^ 1, False, "")}), BASIC, EXPORTER)
    assert r.verdict == "refused" and [(x.check, x.symbol) for x in r.reasons] == [("crc", "kfree")]
    assert list(r.messages) == ["kmc_basic: disagrees about version of symbol kfree", "kmc_basic: Unknown symbol kfree (err -22)"]
    assert r.weak_modules["weak-modules"] == "incompatible"


def test_namespace_not_imported_and_gpl_only_for_a_non_gpl_module(tmp_path):
    kfree = next(e.crc for e in parse_module(str(FIX / "basic.ko")).versions.entries if e.name == "kfree")
    kernel = _kernel(tmp_path, {"kfree": (kfree, True, "OTHER_NS")})
    r = _load(kernel, BASIC, EXPORTER)
    assert [(x.check, x.symbol) for x in r.reasons] == [("namespace", "kfree")]
    assert list(r.messages) == ["kmc_basic: module uses symbol (kfree) from namespace OTHER_NS, but does not import it.",
                                "kmc_basic: Unknown symbol kfree (err -22)"]
    proprietary = (BASIC[0], BASIC[1].replace(b"license=GPL\0", b"license=Foo\0"))
    r = _load(kernel, proprietary, EXPORTER)
    assert [(x.check, x.symbol) for x in r.reasons] == [("gpl-only", "kfree")]
    assert list(r.messages) == ["kmc_basic: Unknown symbol kfree (err -2)"]


def test_vermagic_after_the_release_when_versioned(tmp_path):
    assert same_magic("6.2 SMP mod_unload ", "6.1 SMP mod_unload ", True)
    assert not same_magic("6.2 SMP mod_unload ", "6.1 SMP mod_unload ", False)
    kernel = _kernel(tmp_path)
    flags = (BASIC[0], BASIC[1].replace(b"preempt mod_unload", b"preempt mod_unlozd"))
    r = _load(kernel, flags, EXPORTER)
    assert r.verdict == "refused" and [x.check for x in r.reasons] == ["vermagic"]
    assert list(r.messages) == [f"kmc_basic: version magic '{VERMAGIC.replace('mod_unload', 'mod_unlozd')}' should be "
                                f"'{VERMAGIC}'"]
    release = (BASIC[0], BASIC[1].replace(b"vermagic=6.1.0", b"vermagic=9.1.0"))
    assert _load(kernel, release, EXPORTER).verdict == "loads"  # __versions: the release is not compared


def test_the_loader_models_check_vermagic_as_loadable_does(tmp_path):
    """consumers/kernel.py check_modinfo() is loadable's rule and the models': the same lines, once the kernel's
    vermagic is known; unknown, the models do not compare it."""
    kernel = _kernel(tmp_path)
    target = target_for(kernel)
    assert target.vermagic == VERMAGIC
    flags = (BASIC[0], BASIC[1].replace(b"preempt mod_unload", b"preempt mod_unlozd"))
    release = (BASIC[0], BASIC[1].replace(b"vermagic=6.1.0", b"vermagic=9.1.0"))
    for module, verdict in ((BASIC, "loads"), (flags, "refuses"), (release, "loads")):
        rec = parse_module_bytes(module[1], module[0])
        for model in ("kernel-6.13", "kernel-6.14+force", "kernel-6.13-debian+force"):
            view = CONSUMERS[model](rec, vermagic=target.vermagic)
            assert view.verdict == verdict, (model, view)
            if verdict == "refuses":
                assert list(view.messages) == list(_load(kernel, module, EXPORTER).messages)
            assert CONSUMERS[model](rec).verdict == "loads"  # the kernel's vermagic unknown: not compared
    # Without __versions the release counts too (same_magic has_crcs 0); a module without vermagic is
    # try_to_force_load()'s: refused, or tainted with CONFIG_MODULE_FORCE_LOAD (once per boot: after
    # module_layout's own taint, no second line).
    bare = parse_module(str(FIX / "ext-only.ko"))
    other = next(v for k, v in bare.modinfo if k == "vermagic").replace("6.", "9.", 1)
    view = CONSUMERS["kernel-6.14"](bare, vermagic=other)
    assert view.verdict == "refuses" and view.messages[-1].endswith(f"should be '{other}'")
    none = parse_module(str(FIX / "no-modinfo.ko"))
    assert CONSUMERS["kernel-6.13"](none, vermagic=VERMAGIC).verdict == "refuses"
    forced = CONSUMERS["kernel-6.13+force"](none, vermagic=VERMAGIC)
    assert forced.verdict == "loads-tainted" and "no vermagic" in forced.notes[0]


#: UTS_VERSION as Debian's bookworm kernel has it (consumers/kernel.py profile_of).
DEBIAN_VERSION = b"#1 SMP PREEMPT_DYNAMIC Debian 6.1.192-3 (2026-11-26)"


def test_debian_kernel_refuses_a_symbol_missing_from_versions(tmp_path):
    # module-disable-matching-missing-version-crc.patch: check_version() returns 0, resolve_symbol() -EINVAL.
    missing = (BASIC[0], q.rename_entry(BASIC[1], "kfree", "kfrez"))
    debian = _kernel(tmp_path, version=DEBIAN_VERSION)
    t = target_for(debian)
    assert (t.profile, t.model.id) == ("debian", "kernel-6.13-debian") and "Debian 6.1.192-3" in t.profile_why
    r = _load(debian, missing, EXPORTER)
    assert r.verdict == "refused" and [(x.check, x.symbol) for x in r.reasons] == [("version-missing", "kfree")]
    assert list(r.messages) == ["kmc_basic: no symbol version for kfree", "kmc_basic: Unknown symbol kfree (err -22)"]
    assert _load(debian, BASIC, EXPORTER).verdict == "loads"
    # The same image read as kernel.org's: warned once, loaded.
    mainline = load_one(missing[0], parse_module_bytes(missing[1], missing[0]), target_for(debian, "mainline"),
                        [parse_module_bytes(EXPORTER[1], EXPORTER[0])])
    assert mainline.verdict == "loads-unchecked" and list(mainline.messages) == ["kmc_basic: no symbol version for kfree"]
    # module_layout missing: check_modstruct_version() fails, nothing else runs.
    layout = (BASIC[0], q.rename_entry(BASIC[1], "module_layout", "module_layouz"))
    r = _load(debian, layout, EXPORTER)
    assert r.verdict == "refused" and list(r.messages) == ["kmc_basic: no symbol version for module_layout"]
    assert target_for(_kernel(tmp_path)).profile == "mainline"  # "#1": no Debian version string


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "kmodcompat", "loadable", *args], capture_output=True, text=True,
                          cwd=REPO, env=oracle.ENV, timeout=120)


def test_cli_exit_status_table_and_json(tmp_path):
    kernel = _kernel(tmp_path)
    mods = tmp_path / "mods"
    mods.mkdir()
    (mods / "basic.ko").write_bytes(BASIC[1])
    (mods / "exports-rel.ko").write_bytes(EXPORTER[1])
    ok = _cli(str(mods), "--kernel", kernel)
    assert ok.returncode == 0, ok.stderr
    assert "kernel exports from boot image" in ok.stderr and ok.stdout.count(" loads ") == 2
    refused = _cli(str(mods / "basic.ko"), "--kernel", kernel, "--format", "json")
    assert refused.returncode == 1
    doc = json.loads(refused.stdout)
    assert doc["kernels"][0]["vermagic"] == VERMAGIC and doc["results"][0]["verdict"] == "refused"
    assert doc["kernels"][0]["profile"] == "mainline" and doc["kernels"][0]["model"] == "kernel-6.13"
    assert "loader model kernel-6.13 (kernel ≤ 6.13): no Debian package version" in refused.stderr
    debian = _cli(str(mods / "basic.ko"), "--kernel", kernel, "--kernel-profile", "debian", "--format", "json")
    assert debian.returncode == 1 and json.loads(debian.stdout)["kernels"][0]["model"] == "kernel-6.13-debian"
    assert "loader model kernel-6.13-debian (Debian kernel ≤ 6.13, no FORCE_LOAD): as asked" in debian.stderr
    bad = _cli(str(mods), "--kernel", str(mods / "basic.ko"))
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "is not an executable vmlinux" in bad.stderr


@pytest.mark.parametrize("force, verdict, flipped", [(False, "refused", "loads-tainted with"),
                                                     (True, "loads-tainted", "refused without")])
def test_no_versions_and_what_force_load_changes(tmp_path, force, verdict, flipped):
    kernel = _kernel(tmp_path, config="CONFIG_MODVERSIONS=y\n" + ("CONFIG_MODULE_FORCE_LOAD=y\n" if force else ""))
    unversioned = BASIC[1].replace(b"__versions\0", b"__versionz\0")
    target = target_for(kernel)
    assert target.force_load == force
    mods = [("basic.ko", parse_module_bytes(unversioned, "basic.ko")),
            ("exports-rel.ko", parse_module_bytes(EXPORTER[1], "exports-rel.ko"))]
    r = load_matrix(mods, [target])[0]
    assert (r.verdict, r.force_load) == (verdict, f"{flipped} CONFIG_MODULE_FORCE_LOAD")
