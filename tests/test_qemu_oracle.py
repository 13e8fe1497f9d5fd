"""The kernel-loader models against real kernels booted under QEMU (tools/qemu_oracle.py).

For each kernel, one boot runs every case (a real module, or a mutated copy)
through finit_module(2) and records its exit status and kernel log lines.
The same module files go through ``kmodcompat views --consumer MODEL``, the
model the kernel's configuration calls for (CONFIG_MODULE_FORCE_LOAD=y on
Debian: ``+force``), with vmlinux's CRCs read from the boot image
(``kmodcompat symvers --kernel-image``) and the kernel's vermagic from it too
(``views --kernel-image``: check_modinfo()). Asserted per case: the model's verdict
says loads exactly when insmod succeeded, and its messages are the kernel's
log lines (less those outside the module-version rules: OUT_OF_SCOPE).

Debian's kernels carry debian/patches/debian/module-disable-matching-missing-version-crc.patch
(check_version() refuses a symbol missing from __versions, where kernel.org's warns once and
loads): the models' Debian profile (consumers/kernel.py), which ``loadable`` picks from the
image's version string ("... Debian 6.1.192-3 (2026-11-26)"). The 7.2 kernel built here from
Debian's linux-source carries the patch without that string: it is named explicitly.
Where a kernel behaves unlike the model, the case is an xfail(strict) naming the cause, so
that the day the model learns the rule the test says so.

Kernels: Debian's bookworm 6.1 and trixie 6.12 (the ≤ 6.13 rules), and,
a 7.2 kernel built from Debian's linux-source with CONFIG_EXTENDED_MODVERSIONS
by tools/qemu/build-kernel.sh (tests/data/qemu-kernel-7.2, or KMODCOMPAT_TEST_KERNEL;
the ≥ 6.14 rules).
"""

from __future__ import annotations

import glob
import json
import os
import re
import shutil
import subprocess
import sys

import pytest

from .paths import DATA, TOOLS

pytestmark = pytest.mark.realtree

sys.path.insert(0, str(TOOLS))
import qemu_oracle as q  # noqa: E402

from kmodcompat.loadable import load_one, target_for  # noqa: E402
from kmodcompat.parse.module import parse_module_bytes  # noqa: E402

ROOT = os.environ.get("KMODCOMPAT_REALTREES") or os.environ.get("REALTREES", "/tmp/realtrees")
#: tools/qemu/build-kernel.sh's output: bzImage, config, kmc_test.ko (tests/data/qemu-kernel-7.2/README).
EXT_KERNEL = os.environ.get("KMODCOMPAT_TEST_KERNEL",
                            str(DATA / "qemu-kernel-7.2"))

#: Kernel log lines the module-version models do not speak about, with where they come from.
OUT_OF_SCOPE = (
    # kernel/module/signing.c module_sig_check(): an unsigned module on a MODULE_SIG kernel
    "module verification failed: signature and/or required key missing - tainting kernel",
    # kernel/panic.c add_taint(): any taint, once
    "Disabling lock debugging due to kernel taint",
    # kernel/module/main.c module_augment_kernel_taints(): a module without intree=Y, once
    "loading out-of-tree module taints kernel.",
    # tools/qemu/kmc_test/kmc_test.c's own pr_info, once loaded
    "kmc_test: loaded",
)

def _require_tools():
    if shutil.which(q.QEMU) is None or q._busybox() is None:
        if os.geteuid() != 0:
            pytest.skip("qemu-system-x86 / busybox-static missing and not root to install them")
        q.ensure_tools()
    if shutil.which("gcc") is None:
        pytest.skip("no gcc for the insmod helper")


def _debian_cases(root: str) -> list[q.Case]:
    """The cases for a Debian amd64 tree, in the order of _DEBIAN."""
    def mod(rel):
        found = glob.glob(os.path.join(root, "lib/modules/*/kernel", rel + ".ko*"))
        if not found:
            pytest.skip(f"{root}: no {rel}")
        return q.module_elf(found[0])

    dummy = mod("drivers/net/dummy")
    fat = mod("fs/fat/fat")
    return [
        q.Case("real", dummy, "dummy"),
        q.Case("real-with-dependency", mod("fs/fat/vfat"), "vfat", (("fat", fat),)),
        q.Case("signature-stripped", q.strip_signature(dummy), "dummy"),
        q.Case("crc-changed", q.mutate_crc(dummy, "rtnl_unlock"), "dummy"),
        q.Case("module_layout-crc-changed", q.mutate_crc(dummy, "module_layout"), "dummy"),
        q.Case("no-__versions", q.rename_section(dummy, "__versions", "__versionz"), "dummy"),
        q.Case("module_layout-entry-missing", q.rename_entry(dummy, "module_layout", "module_layouz"), "dummy"),
        q.Case("symbol-entry-missing", q.rename_entry(dummy, "rtnl_unlock", "rtnl_unlocz"), "dummy"),
        q.Case("vermagic-release-changed", q.mutate_vermagic(dummy, "6.", "9."), "dummy"),
        q.Case("vermagic-flags-changed", q.mutate_vermagic(dummy, "mod_unload", "mod_unlozd"), "dummy"),
    ]


def _ext_cases(mod: bytes) -> list[q.Case]:
    """Cases for the self-built ≥ 6.14 kernel's kmc_test.ko (both __versions and the extended tables)."""
    no_ext = q.rename_section(q.rename_section(mod, "__version_ext_crcs", "__version_ext_crcz"),
                              "__version_ext_names", "__version_ext_namez")
    return [
        q.Case("real", mod, "kmc_test"),
        q.Case("ext-crc-changed", q.mutate_ext_crc(mod, "kfree"), "kmc_test"),
        q.Case("basic-crc-changed-ext-intact", q.mutate_crc(mod, "kfree"), "kmc_test"),
        q.Case("no-__versions", q.rename_section(mod, "__versions", "__versionz"), "kmc_test"),
        q.Case("no-ext-tables", no_ext, "kmc_test"),
        q.Case("no-ext-tables-crc-changed", q.mutate_crc(no_ext, "kfree"), "kmc_test"),
        q.Case("ext-names-only", q.rename_section(mod, "__version_ext_crcs", "__version_ext_crcz"), "kmc_test"),
        q.Case("no-tables-at-all", q.rename_section(no_ext, "__versions", "__versionz"), "kmc_test"),
        q.Case("ext-entry-missing", q.rename_ext_entry(mod, "kfree", "kfrez"), "kmc_test"),
        q.Case("no-ext-tables-entry-missing", q.rename_entry(no_ext, "kfree", "kfrez"), "kmc_test"),
    ]


def _model(files: list[str], consumer: str, symvers: str, image: str) -> dict[str, dict]:
    """``kmodcompat views``: vmlinux's CRCs from ``symvers``, the kernel's vermagic from its boot image."""
    p = subprocess.run([sys.executable, "-m", "kmodcompat", "views", *files, "--consumer", consumer, "-E", symvers,
                        "--kernel-image", image, "--modules", "--format", "json", "--no-cache"],
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    data = json.loads(p.stdout)
    assert data["kernel_vermagic"]["vermagic"] is not None, data["kernel_vermagic"]
    return {m["path"]: m["formats"]["as-is"][consumer] for m in data["per_module"]}


def _image_symvers(image: str, tmp: str) -> str:
    """vmlinux's Module.symvers lines from the boot image alone (no headers needed)."""
    empty = os.path.join(tmp, "no-modules")
    os.makedirs(empty, exist_ok=True)
    p = subprocess.run([sys.executable, "-m", "kmodcompat", "symvers", "--kernel-image", image, "--moddir", empty],
                       capture_output=True)
    assert p.returncode == 0, p.stderr
    path = os.path.join(tmp, "vmlinux.symvers")
    with open(path, "wb") as f:
        f.write(p.stdout)
    return path


class Oracle:
    def __init__(self, kernel: str, cases: list[q.Case], names: list, symvers: str | None, tmp: str,
                 profile: str | None = None):
        assert [c.name for c in cases] == [n for n, _ in names]  # the parametrized names are the cases booted
        # kmodcompat loadable's target: exports, vermagic, CONFIG_MODULE_FORCE_LOAD and the loader's profile
        # read from the image and its config alone; its model is the one views runs.
        target = target_for(kernel, profile)
        self.target = target
        consumer = target.model.id
        self.outcomes = q.run(kernel, cases)
        symvers = symvers or _image_symvers(kernel, tmp)
        files = []
        for i, c in enumerate(cases):
            path = os.path.join(tmp, f"{i}-{c.name}.ko")
            with open(path, "wb") as f:
                f.write(c.module)
            files.append(path)
        by_path = _model(files, consumer, symvers, kernel)
        self.views = {c.name: by_path[path] for c, path in zip(cases, files)}
        self.modules = {c.name: {c.modname, *(dep for dep, _ in c.deps)} for c in cases}
        # kmodcompat loadable's answer for each case: the module with its dependencies, into this kernel.
        self.loadable = {}
        for c, path in zip(cases, files):
            deps = [parse_module_bytes(data, dep) for dep, data in c.deps]
            rec = parse_module_bytes(c.module, path)
            self.loadable[c.name] = load_one(path, rec, target, [*deps, rec])


def _debian_oracle(tree: str, tmp_path_factory) -> Oracle:
    root = os.path.join(ROOT, tree)
    kernels = glob.glob(os.path.join(root, "boot/vmlinuz-*"))
    if not kernels:
        pytest.skip(f"{root} not present")
    _require_tools()
    config = open(glob.glob(os.path.join(root, "boot/config-*"))[0]).read()
    consumer = "kernel-6.13-debian+force" if "CONFIG_MODULE_FORCE_LOAD=y" in config else "kernel-6.13-debian"
    tmp = str(tmp_path_factory.mktemp(tree))
    oracle = Oracle(kernels[0], _debian_cases(root), _DEBIAN, None, tmp)
    assert oracle.target.profile == "debian", oracle.target.profile_why  # found from the image alone
    assert oracle.target.model.id == consumer
    return oracle


@pytest.fixture(scope="module")
def bookworm(tmp_path_factory):
    return _debian_oracle("bookworm-amd64", tmp_path_factory)


@pytest.fixture(scope="module")
def trixie(tmp_path_factory):
    return _debian_oracle("trixie-amd64", tmp_path_factory)


@pytest.fixture(scope="module")
def extended(tmp_path_factory):
    image = os.path.join(EXT_KERNEL, "bzImage")
    if not os.path.exists(image):
        pytest.skip(f"no self-built >= 6.14 kernel at {EXT_KERNEL} (tools/qemu/build-kernel.sh)")
    _require_tools()
    config = open(os.path.join(EXT_KERNEL, "config")).read()
    assert "CONFIG_EXTENDED_MODVERSIONS=y" in config
    consumer = "kernel-6.14-debian+force" if "CONFIG_MODULE_FORCE_LOAD=y" in config else "kernel-6.14-debian"
    with open(os.path.join(EXT_KERNEL, "kmc_test.ko"), "rb") as f:
        mod = f.read()
    tmp = str(tmp_path_factory.mktemp("ext"))
    # Debian's linux-source-7.2 carries the patch; a kernel built from it by anyone else says so nowhere
    # (its version string ends in a build date): the profile is named, as `loadable --kernel-profile debian`.
    assert target_for(image).profile == "mainline"
    oracle = Oracle(image, _ext_cases(mod), _EXT, None, tmp, profile="debian")
    assert oracle.target.model.id == consumer
    return oracle


def _kernel_lines(oracle: Oracle, case: str) -> tuple[int, list[str]]:
    out = oracle.outcomes.get(case)
    assert out is not None and out.status is not None, (
        f"{case}: no result from the boot; console ends: {next(iter(oracle.outcomes.values())).console[-3000:]}"
        if oracle.outcomes else f"{case}: the boot gave no result at all")
    return out.status, [line for line in out.dmesg
                        if not any(line.endswith(s) for s in OUT_OF_SCOPE)
                        and not _other_subsystem(line, oracle.modules[case])]


def _check(oracle: Oracle, case: str):
    status, kernel_lines = _kernel_lines(oracle, case)
    view = oracle.views[case]
    assert (view["verdict"] != "refuses") == (status == 0), (view["verdict"], status, kernel_lines)
    assert list(view["messages"]) == kernel_lines


def _check_loadable(oracle: Oracle, case: str):
    """``kmodcompat loadable``: refused exactly when insmod failed, and the kernel's own log lines."""
    status, kernel_lines = _kernel_lines(oracle, case)
    res = oracle.loadable[case]
    assert res.loads == (status == 0), (res.verdict, res.reasons, status, kernel_lines)
    assert list(res.messages) == kernel_lines


#: "clocksource: Switched to clocksource tsc": a "subsystem: " prefix. The loader prefixes each of its
#: version and vermagic messages with the module's name (kernel/module/version.c check_version(),
#: kernel/module/main.c check_modinfo()), so a line prefixed with any other word was printed meanwhile by
#: another part of the kernel (the TSC watchdog switches clocksource seconds after boot, at any moment).
_PREFIX = re.compile(r"([\w.-]+): ")


def _other_subsystem(line: str, modules: set[str]) -> bool:
    m = _PREFIX.match(line)
    return m is not None and m.group(1) not in modules


def _params(cases_of):
    # the case names and marks, without reading any tree at collection time
    return [pytest.param(name, marks=marks, id=name) for name, marks in cases_of]


_DEBIAN = [("real", ()), ("real-with-dependency", ()), ("signature-stripped", ()), ("crc-changed", ()),
           ("module_layout-crc-changed", ()), ("no-__versions", ()),
           ("module_layout-entry-missing", ()), ("symbol-entry-missing", ()),
           ("vermagic-release-changed", ()),  # same_magic(): the release is skipped with __versions
           ("vermagic-flags-changed", ())]
_EXT = [("real", ()), ("ext-crc-changed", ()), ("basic-crc-changed-ext-intact", ()), ("no-__versions", ()),
        ("no-ext-tables", ()), ("no-ext-tables-crc-changed", ()), ("ext-names-only", ()), ("no-tables-at-all", ()),
        # Debian's patch changes only the __versions path: a name missing from the extended
        # tables still warns once and loads (linux-source-7.2 kernel/module/version.c).
        ("ext-entry-missing", ()), ("no-ext-tables-entry-missing", ())]


@pytest.mark.parametrize("case", _params(_DEBIAN))
def test_bookworm_6_1(bookworm, case):
    _check(bookworm, case)


@pytest.mark.parametrize("case", _params(_DEBIAN))
def test_trixie_6_12(trixie, case):
    _check(trixie, case)


@pytest.mark.parametrize("case", _params(_EXT))
def test_extended_modversions_kernel(extended, case):
    _check(extended, case)


@pytest.mark.parametrize("case", _params(_DEBIAN))
def test_loadable_bookworm_6_1(bookworm, case):
    _check_loadable(bookworm, case)


@pytest.mark.parametrize("case", _params(_DEBIAN))
def test_loadable_trixie_6_12(trixie, case):
    _check_loadable(trixie, case)


@pytest.mark.parametrize("case", _params(_EXT))
def test_loadable_extended_modversions_kernel(extended, case):
    _check_loadable(extended, case)
