#!/usr/bin/env python3
"""The real kernel as the oracle: boot a kernel under QEMU, insmod one module, report what it said.

    python3 tools/qemu_oracle.py --kernel ROOT/boot/vmlinuz-KVER --module CASE.ko [--dep DEP.ko]... [--json]

Each run boots ``qemu-system-x86_64`` (KVM when /dev/kvm opens, TCG otherwise)
with a serial console and an initramfs written here: Debian's static busybox,
the dependencies and the module (decompressed: busybox insmod hands the bytes
to init_module(2), which takes ELF only). /init loads the dependencies,
clears the kernel log, runs ``insmod`` on the module and prints its exit
status, its stderr and the kernel log lines it caused between markers, then
powers off. One boot per module: ``pr_warn_once()`` messages and
TAINT_FORCED_MODULE's "kernel tainted" line are once per boot, so a module
loaded after another would not print them.

Mutations (``mutate_*``) make the test cases from real modules: a CRC
changed in ``__versions``, ``__versions`` renamed away, an entry's name
changed, vermagic changed. Editing a signed module breaks its signature,
which the kernel rejects with EKEYREJECTED before any version check
(kernel/module/signing.c module_sig_check(): only a missing signature is
tolerated without CONFIG_MODULE_SIG_FORCE), so every mutation strips the
signature first; ``strip_signature`` alone is a case too (loads, tainted
"module verification failed").

Needs root for ``apt-get install qemu-system-x86 busybox-static`` when they
are missing (:func:`ensure_tools`).
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from typing import NamedTuple

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from kmodcompat.elf.image import ElfImage  # noqa: E402
from kmodcompat.files.opener import read_module_bytes  # noqa: E402
from kmodcompat.parse.signature import unsigned_length  # noqa: E402

QEMU = "qemu-system-x86_64"
BOOT_TIMEOUT = 120  # seconds per boot; a Debian kernel answers in ~7 s under TCG
_MARK = "@@KMC"
_FLUSH = "kmc-oracle: end of case"  # written to /dev/kmsg after each case, dropped from the results


class Outcome(NamedTuple):
    status: int | None  # insmod's exit status; None when the run never got there
    insmod: tuple[str, ...]  # insmod's stderr lines
    dmesg: tuple[str, ...]  # kernel log lines printed while insmod ran, without timestamps
    console: str  # the whole serial console, for diagnosis


def ensure_tools() -> None:
    """qemu-system-x86 and busybox-static from Debian, installed when missing (as root)."""
    missing = [pkg for pkg, path in (("qemu-system-x86", shutil.which(QEMU)), ("busybox-static", _busybox()))
               if path is None]
    if missing:
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        subprocess.run(["apt-get", "install", "-y", "-q", "--no-install-recommends", *missing], check=True,
                       env=env, stdout=subprocess.DEVNULL)


def _busybox() -> str | None:
    for path in ("/bin/busybox", "/usr/bin/busybox"):
        if os.path.isfile(path):
            with open(path, "rb") as f:
                head = f.read(4096)
            # A static busybox has no PT_INTERP: no "/lib64/ld-linux" path in its first page.
            if head[:4] == b"\x7fELF" and b"ld-linux" not in head:
                return path
    return None


# --- initramfs ----------------------------------------------------------------------------------


_HELPER_SOURCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "qemu", "kmc-insmod.c")


def insmod_helper() -> str:
    """tools/qemu/kmc-insmod.c built static, once (cached by the source's mtime).

    Not busybox's insmod: it calls finit_module() and, when that fails, init_module()
    on the same bytes (modutils.c bb_init_module), so the kernel checks a refused
    module twice and prints each message twice. kmod's insmod calls finit_module()
    once; so does this helper.
    """
    cache = os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "kmodcompat")
    out = os.path.join(cache, f"kmc-insmod-{int(os.stat(_HELPER_SOURCE).st_mtime)}")
    if not os.path.exists(out):
        os.makedirs(cache, exist_ok=True)
        subprocess.run(["gcc", "-static", "-Os", "-o", out + ".tmp", _HELPER_SOURCE], check=True)
        os.replace(out + ".tmp", out)
    return out


def _cpio_entry(name: str, mode: int, data: bytes = b"", ino: int = 1) -> bytes:
    """One cpio "newc" record (usr/gen_init_cpio.c, the format the kernel unpacks)."""
    name_b = name.encode() + b"\0"
    fields = [ino, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(name_b), 0]
    head = b"070701" + b"".join(b"%08X" % f for f in fields)
    out = head + name_b
    out += b"\0" * (-len(out) % 4)
    out += data
    out += b"\0" * (-len(out) % 4)
    return out


def build_initramfs(files: dict[str, bytes], init: str) -> bytes:
    """A gzip'd newc archive with /bin/busybox, /init and ``files`` (path -> bytes)."""
    bb = _busybox()
    if bb is None:
        raise SystemExit("qemu_oracle: no static busybox (apt-get install busybox-static)")
    with open(bb, "rb") as f:
        busybox = f.read()
    parts = []
    ino = 1
    dirs = {"bin", "proc", "sys", "dev", "m", "tmp"}
    for d in sorted(dirs):
        parts.append(_cpio_entry(d, 0o040755, ino=ino))
        ino += 1
    parts.append(_cpio_entry("bin/busybox", 0o100755, busybox, ino))
    ino += 1
    with open(insmod_helper(), "rb") as f:
        parts.append(_cpio_entry("bin/kmc-insmod", 0o100755, f.read(), ino))
    ino += 1
    parts.append(_cpio_entry("init", 0o100755, init.encode(), ino))
    ino += 1
    for path, data in files.items():
        parts.append(_cpio_entry(path, 0o100644, data, ino))
        ino += 1
    parts.append(_cpio_entry("TRAILER!!!", 0, ino=0))
    return gzip.compress(b"".join(parts), 6)


class Case(NamedTuple):
    name: str  # the case's name, unique in a boot
    module: bytes  # ELF bytes handed to insmod
    modname: str  # the module's name (for rmmod)
    deps: tuple[tuple[str, bytes], ...] = ()  # (module name, ELF bytes), loaded first, in order


def _init_script(cases: list[Case]) -> str:
    """/init: each case in turn, its dependencies loaded first and everything unloaded after.

    Once-per-boot kernel messages (pr_warn_once "no symbol version", the first
    TAINT_FORCED_MODULE "kernel tainted", the first unsigned module's
    "module verification failed") appear only in the first case that causes
    them: callers put at most one case per boot that needs each (tests/test_qemu_oracle.py).
    """
    lines = ["#!/bin/busybox sh", "/bin/busybox --install -s /bin", "mount -t proc proc /proc",
             "mount -t sysfs sys /sys", "mount -t devtmpfs dev /dev", "dmesg -n 1",
             "echo; echo"]  # the firmware's last terminal escapes end on a line of their own
    for i, case in enumerate(cases):
        for j in range(len(case.deps)):
            lines.append(f"insmod /m/{i}-dep{j}.ko >/dev/null 2>&1")
        lines += ["dmesg -c >/dev/null",
                  f"echo {_MARK} CASE {case.name}",
                  f"kmc-insmod /m/{i}.ko 2>/tmp/err; st=$?",
                  f"echo {_MARK} STATUS $st",
                  f"sed 's/^/{_MARK} INSMOD /' /tmp/err",
                  # A message without a newline (6.14's "extended version crc+name presence does
                  # not match" is a pr_err without one) is held until the next record: write one.
                  f"echo '{_FLUSH}' > /dev/kmsg",
                  f"dmesg -c | sed 's/^/{_MARK} DMESG /'",
                  f"rmmod {case.modname} >/dev/null 2>&1"]
        lines += [f"rmmod {dep} >/dev/null 2>&1" for dep, _ in reversed(case.deps)]
        lines.append("dmesg -c >/dev/null")
    lines += [f"echo {_MARK} END", "poweroff -f"]
    return "\n".join(lines) + "\n"


# --- booting ------------------------------------------------------------------------------------


def _accel() -> list[str]:
    """TCG: the same on every machine. KVM here is nested and refuses -cpu host's MSRs (a
    failed assertion in qemu's kvm_buf_set_msrs), and a Debian kernel boots under TCG in
    seconds; KMODCOMPAT_QEMU_ACCEL=kvm asks for KVM where it works."""
    accel = os.environ.get("KMODCOMPAT_QEMU_ACCEL", "tcg")
    return ["-accel", accel, "-cpu", "qemu64" if accel == "tcg" else "host"]


def run(kernel: str, cases: list[Case], timeout: int = BOOT_TIMEOUT) -> dict[str, Outcome]:
    """Boot ``kernel`` once and run ``cases`` in order: each case's outcome by name.

    ``kernel`` is a bzImage or an ELF vmlinux. A bzImage is booted as the ELF
    vmlinux inside it (kmodcompat.files.kernel_image unpacks it), through the
    PVH entry Debian's x86 kernels have (CONFIG_PVH): this skips the in-guest
    decompression, which under TCG takes longer than the boot itself (40 s against
    19 s for bookworm's xz image on a loaded 2-core machine).
    """
    files = {}
    for i, case in enumerate(cases):
        files[f"m/{i}.ko"] = case.module
        for j, (_, data) in enumerate(case.deps):
            files[f"m/{i}-dep{j}.ko"] = data
    initrd = build_initramfs(files, _init_script(cases))
    with tempfile.TemporaryDirectory(prefix="kmc-qemu-") as tmp:
        path = os.path.join(tmp, "initrd.gz")
        with open(path, "wb") as f:
            f.write(initrd)
        image = _bootable(kernel, tmp)
        cmd = [QEMU, *_accel(), "-m", "512", "-nodefaults", "-nographic", "-no-reboot", "-serial", "stdio",
               "-monitor", "none", "-display", "none", "-kernel", image, "-initrd", path,
               "-append", "console=ttyS0 panic=-1 rdinit=/init loglevel=1 quiet mitigations=off"]
        try:
            p = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               timeout=timeout)
            console = p.stdout.decode("utf-8", "replace")
        except subprocess.TimeoutExpired as e:
            console = (e.stdout or b"").decode("utf-8", "replace") + f"\n[timeout after {timeout} s]"
    return parse_console(console)


def _bootable(kernel: str, tmp: str) -> str:
    with open(kernel, "rb") as f:
        head = f.read(0x210)
    if head[0x202:0x206] != b"HdrS":
        return kernel
    from kmodcompat.files.kernel_image import vmlinux_bytes

    path = os.path.join(tmp, "vmlinux")
    with open(path, "wb") as f:
        f.write(vmlinux_bytes(kernel))
    return path


_STAMP = re.compile(r"^\[\s*\d+\.\d+\] ")


def parse_console(console: str) -> dict[str, Outcome]:
    """The marked lines of a console: one Outcome per case, in order."""
    out: dict[str, Outcome] = {}
    name = None
    status = None
    insmod: list[str] = []
    dmesg: list[str] = []

    def close():
        if name is not None:
            out[name] = Outcome(status, tuple(insmod), tuple(dmesg), console)

    for line in console.replace("\r", "").splitlines():
        at = line.find(_MARK + " ")  # the first may follow the firmware's terminal escapes
        if at < 0:
            continue
        kind, _, rest = line[at + len(_MARK) + 1:].partition(" ")
        if kind in ("CASE", "END"):
            close()
            name, status, insmod, dmesg = rest, None, [], []
        elif kind == "STATUS":
            status = int(rest)
        elif kind == "INSMOD":
            insmod.append(rest)
        elif kind == "DMESG":
            line = _STAMP.sub("", rest)
            if line != _FLUSH:
                dmesg.append(line)
    return out


# --- modules and mutations -----------------------------------------------------------------------


def module_elf(path: str) -> bytes:
    """A module file's ELF bytes (decompressed), signature included."""
    return read_module_bytes(path).data


def strip_signature(elf: bytes) -> bytes:
    return elf[:unsigned_length(elf)]


def _section(elf: bytes, name: str):
    img = ElfImage(elf)
    sec = img.section(name)
    if sec is None:
        raise ValueError(f"module has no {name}")
    return img, sec


def _versions(elf: bytes) -> tuple[int, int, list[tuple[int, int, str]]]:
    """(entry size, CRC width, [(offset, crc, name)]) of ``__versions`` (struct modversion_info)."""
    img, sec = _section(elf, "__versions")
    width = 8 if img.elfclass == 64 else 4
    entsize = 64
    out = []
    for off in range(sec.offset, sec.offset + sec.size, entsize):
        crc = int.from_bytes(elf[off:off + width], "little" if img.little else "big")
        raw = elf[off + width:off + entsize]
        out.append((off, crc, raw.split(b"\0", 1)[0].decode()))
    return entsize, width, out


def mutate_crc(elf: bytes, symbol: str) -> bytes:
    """``symbol``'s CRC in ``__versions`` changed (all bits flipped); signature stripped."""
    elf = bytearray(strip_signature(elf))
    img = ElfImage(bytes(elf))
    _entsize, width, entries = _versions(bytes(elf))
    for off, crc, name in entries:
        if name == symbol:
            new = (crc ^ 0xFFFFFFFF) & 0xFFFFFFFF
            elf[off:off + width] = new.to_bytes(width, "little" if img.little else "big")
            return bytes(elf)
    raise ValueError(f"no __versions entry for {symbol}")


def rename_entry(elf: bytes, symbol: str, new: str) -> bytes:
    """``symbol``'s ``__versions`` entry renamed to ``new`` (so the symbol has no version); unsigned."""
    elf = bytearray(strip_signature(elf))
    _entsize, width, entries = _versions(bytes(elf))
    for off, _crc, name in entries:
        if name == symbol:
            field = new.encode().ljust(64 - width, b"\0")
            elf[off + width:off + 64] = field
            return bytes(elf)
    raise ValueError(f"no __versions entry for {symbol}")


def mutate_ext_crc(elf: bytes, symbol: str) -> bytes:
    """``symbol``'s CRC in ``__version_ext_crcs`` changed (6.14+: the i-th CRC pairs with the i-th
    name of ``__version_ext_names``); signature stripped."""
    elf = bytearray(strip_signature(elf))
    img, names = _section(bytes(elf), "__version_ext_names")
    _, crcs = _section(bytes(elf), "__version_ext_crcs")
    listed = bytes(elf[names.offset:names.offset + names.size]).split(b"\0")
    if symbol.encode() not in listed:
        raise ValueError(f"no extended version for {symbol}")
    at = crcs.offset + 4 * listed.index(symbol.encode())
    order = "little" if img.little else "big"
    elf[at:at + 4] = (int.from_bytes(elf[at:at + 4], order) ^ 0xFFFFFFFF).to_bytes(4, order)
    return bytes(elf)


def _replaced(elf: bytes, start: int, end: int, old: str, new: str, whole: bool, missing: str) -> bytes:
    """An unsigned copy of ``elf`` with ``old`` replaced by ``new`` (same length) in ``elf[start:end]``;
    ``whole``: only as a whole NUL-terminated string of that table."""
    if len(new) != len(old):
        raise ValueError("the replacement must be as long as the original")
    elf = bytearray(strip_signature(elf))
    if whole:
        at = (b"\0" + elf[start:end]).find(b"\0" + old.encode() + b"\0")
        at = at + start if at >= 0 else -1
    else:
        at = elf.find(old.encode(), start, end)
    if at < 0:
        raise ValueError(missing)
    elf[at:at + len(old)] = new.encode()
    return bytes(elf)


def rename_ext_entry(elf: bytes, symbol: str, new: str) -> bytes:
    """``symbol``'s name in ``__version_ext_names`` changed to ``new`` (same length); unsigned."""
    _img, names = _section(elf, "__version_ext_names")
    return _replaced(elf, names.offset, names.offset + names.size, symbol, new, True,
                     f"no extended version for {symbol}")


def rename_section(elf: bytes, name: str, new: str) -> bytes:
    """Section ``name`` renamed in the section name table (same length): the loader's find_sec() misses it."""
    img = ElfImage(elf)
    shstr = img.sections[img.header.shstrndx]
    return _replaced(elf, shstr.offset, shstr.offset + shstr.size, name, new, True, f"no section {name}")


def mutate_vermagic(elf: bytes, old: str, new: str) -> bytes:
    """``old`` replaced by ``new`` (same length) in the modinfo ``vermagic=`` value; signature stripped."""
    _img, sec = _section(elf, ".modinfo")
    at = elf.find(b"vermagic=", sec.offset, sec.offset + sec.size)
    if at < 0:
        raise ValueError("module has no vermagic")
    return _replaced(elf, at, elf.find(b"\0", at), old, new, False, f"no {old!r} in the module's vermagic")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kernel", required=True, help="the boot image (bzImage or ELF vmlinux)")
    ap.add_argument("--module", required=True, action="append", help="a module to insmod (repeatable)")
    ap.add_argument("--dep", action="append", default=[], help="a module to load first (repeatable, in order)")
    ap.add_argument("--timeout", type=int, default=BOOT_TIMEOUT)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    ensure_tools()
    deps = tuple((_modname(d), module_elf(d)) for d in args.dep)
    cases = [Case(m, module_elf(m), _modname(m), deps) for m in args.module]
    outcomes = run(args.kernel, cases, timeout=args.timeout)
    if args.json:
        print(json.dumps({n: {"status": o.status, "insmod": o.insmod, "dmesg": o.dmesg}
                          for n, o in outcomes.items()}, indent=1))
    else:
        for n, o in outcomes.items():
            print(f"{n}: insmod status {o.status}")
            for line in o.insmod:
                print(f"  insmod: {line}")
            for line in o.dmesg:
                print(f"  dmesg: {line}")
    return 0 if len(outcomes) == len(cases) and all(o.status is not None for o in outcomes.values()) else 1


def _modname(path: str) -> str:
    """kmod's modname: the file name without suffixes, '-' read as '_'."""
    return re.sub(r"\.ko(\.\w+)?$", "", os.path.basename(path)).replace("-", "_")


if __name__ == "__main__":
    sys.exit(main())
