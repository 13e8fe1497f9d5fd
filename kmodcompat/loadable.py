"""Would this kernel's loader accept this module, and why not: the load matrix behind ``kmodcompat loadable``.

The module-version rules are the kernel consumer models' (consumers/kernel.py,
≤ 6.13 and ≥ 6.14, with and without CONFIG_MODULE_FORCE_LOAD, kernel.org's or
Debian's profile: consumers/kernel.py profile_of() reads which from the boot
image's version string, unless the caller names it), fed the
kernel's own CRCs (files/kernel.py: its Module.symvers or boot image) and
those of the modules given with it. Around them, what load_module() checks
besides (kernel/module/main.c, v6.1 to v7.2), in its order:

1. ``check_modstruct_version()``: module_layout's CRC (the model's first
   symbol); a failure ends the load there;
2. ``check_modinfo()``: no vermagic is ``try_to_force_load(mod, "bad
   vermagic")``; ``same_magic(modmagic, vermagic, info->index.vers)``
   (kernel/module/version.c) compares the strings after their first space
   (the release) when the module has ``__versions``, whole otherwise, and
   refuses with "version magic '%s' should be '%s'" (the rule is the models':
   consumers/kernel.py check_modinfo);
3. ``simplify_symbols()`` → ``resolve_symbol()`` for each undefined symbol in
   .symtab order: ``find_symbol()`` searches vmlinux, then the modules loaded
   (a GPL-only export is invisible to a module whose license is not
   GPL-compatible: ``fsa.gplok``); then ``check_version()`` (the model); then
   ``verify_namespace_is_imported()`` ("module uses symbol (%s) from namespace
   %s, but does not import it."). Every symbol that fails prints "Unknown symbol
   %s (err %d)" (-ENOENT not found, -EINVAL otherwise) and the walk goes on; a
   weak symbol not found is fine.

Signatures are out of scope (Debian does not enforce them; a stripped or
foreign signature only taints).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from .consumers import CONSUMERS, Consumer, kernel_model, of_kind
from .consumers.kernel import DEBIAN, PROFILES, VERMAGIC_UNKNOWN, check_modinfo, module_name, profile_of, same_magic
from .consumers.base import LOADS_TAINTED, REFUSES
from .diff.kabi import GPL_COMPATIBLE
from .files.bounded import InputFileError, InputKind, read_input
from .files.kernel import KernelSource, base_of, kernel_source
from .files.kernel_image import KernelImageError, find_image, vmlinux_bytes
from .records import Export, ModuleRecord

__all__ = ["KernelTarget", "LoadResult", "load_matrix", "same_magic", "target_for"]

REFUSED = "refused"
_CONFIG = InputKind("kernel config", 4 << 20)
#: The symbol a model message is about (consumers/kernel.py prints the kernel's lines).
_MESSAGE_SYMBOL = re.compile(r"(?:symbol|version for) (\S+)(?: \(err -?\d+\))?$")


@dataclass(frozen=True)
class KernelTarget:
    """One kernel to load into: its exports, vermagic and the loader model its release and config call for."""

    label: str
    release: str | None
    vermagic: str | None  # VERMAGIC_STRING, as the kernel holds it (None: unknown)
    source: KernelSource
    force_load: bool  # CONFIG_MODULE_FORCE_LOAD (False when no config says so)
    modversions: bool  # CONFIG_MODVERSIONS: check_version() exists at all
    notes: tuple[str, ...] = ()
    profile: str = "mainline"  # the loader's profile (consumers/kernel.py PROFILES)
    profile_why: str = ""  # how it was chosen, in one phrase

    @property
    def model(self) -> Consumer:
        return _model(self.release, self.force_load, self.profile)


def _model(release: str | None, force: bool, profile: str) -> Consumer:
    """The registry's kernel loader model for a release (≥ 6.14 reads the extended tables), FORCE_LOAD and
    profile."""
    m = re.match(r"(\d+)\.(\d+)", release or "")
    newer = m is not None and (int(m.group(1)), int(m.group(2))) >= (6, 14)
    return kernel_model(newer, force, profile)


@dataclass(frozen=True)
class Reason:
    check: str  # "module_layout", "vermagic", "crc", "version-missing", "missing", "gpl-only", "namespace",
    # "versions"
    symbol: str | None
    detail: str

    def as_dict(self) -> dict:
        return {"check": self.check, "symbol": self.symbol, "detail": self.detail}


@dataclass(frozen=True)
class LoadResult:
    module: str
    kernel: str
    verdict: str  # "loads", "loads-unchecked", "loads-tainted", "refused"
    reasons: tuple[Reason, ...]
    messages: tuple[str, ...]  # the kernel log lines the loader prints, in order
    force_load: str | None  # the verdict with CONFIG_MODULE_FORCE_LOAD flipped, when it differs
    weak_modules: dict[str, str] = field(default_factory=dict)

    @property
    def loads(self) -> bool:
        return self.verdict != REFUSED

    def as_dict(self) -> dict:
        return {"module": self.module, "kernel": self.kernel, "verdict": self.verdict, "loads": self.loads,
                "reasons": [r.as_dict() for r in self.reasons], "messages": list(self.messages),
                "with_force_load_flipped": self.force_load, "weak_modules": self.weak_modules}


# -- kernels ----------------------------------------------------------------------------------------

def image_vermagic(path: str) -> tuple[str | None, str | None]:
    """(release, VERMAGIC_STRING) read from a boot image (see :func:`image_identity`)."""
    return image_identity(path)[:2]


def image_identity(path: str) -> tuple[str | None, str | None, str | None]:
    """(release, VERMAGIC_STRING, linux_banner) read from a boot image: ``linux_banner``'s release, then the
    NUL-terminated string that starts with it and a space (include/linux/vermagic.h: every part ends in a
    space). The banner is the last "Linux version" line that has a build number (init/version-timestamp.c
    linux_banner; the image also holds the template without it)."""
    try:
        data = vmlinux_bytes(path)
    except KernelImageError:
        return None, None, None
    m = re.search(rb"Linux version (\S+) \(", data)
    if m is None:
        return None, None, None
    release = m.group(1)
    v = re.search(rb"\0(" + re.escape(release) + rb" (?:[A-Za-z0-9_.-]+ )*)\0", data)
    text = lambda b: b.decode("utf-8", "surrogateescape")  # noqa: E731
    banners = [b for b in re.findall(rb"Linux version " + re.escape(release) + rb" [^\n\0]{0,512}", data)
               if re.search(rb"\) #\d", b)]
    return text(release), (text(v.group(1)) if v else None), (text(banners[-1]) if banners else None)


def kernel_vermagic(image: str | None) -> tuple[str | None, str]:
    """(VERMAGIC_STRING, the one line saying where it came from) of the kernel in boot image ``image``
    (None: no image), as :func:`image_identity` reads it; (None, :data:`VERMAGIC_UNKNOWN`) when none holds it."""
    vermagic = image_identity(image)[1] if image else None
    if vermagic is None:
        return None, VERMAGIC_UNKNOWN
    return vermagic, f"the kernel's vermagic '{vermagic}' (from {image}): each module's is compared with it"


def _config(paths: Sequence[str]) -> tuple[dict[str, str], str | None]:
    for p in paths:
        if os.path.isfile(p):
            try:
                data = read_input(p, _CONFIG).decode("utf-8", "replace")
            except InputFileError:
                continue
            return {m.group(1): m.group(2) for m in re.finditer(r"^(CONFIG_\w+)=(.*)$", data, re.M)}, p
    return {}, None


def target_for(operand: str, profile: str | None = None) -> KernelTarget:
    """A ``--kernel`` operand: a boot image file, a module directory, or a KVER of /lib/modules; ``profile``
    the loader's (consumers/kernel.py PROFILES), None: as the kernel's version string says (profile_of).
    Raises KernelSourceError / OSError with a one-line reason."""
    if profile is not None and profile not in PROFILES:
        raise ValueError(f"unknown kernel profile {profile!r}; known: {', '.join(PROFILES)}")
    if os.path.isfile(operand):
        source = kernel_source(None, None, image=operand)
        release, vermagic, banner = image_identity(operand)
        d = os.path.dirname(operand)
        config, cpath = _config([os.path.join(d, f"config-{release}"), os.path.join(d, "config")])
    else:
        moddir = operand if os.path.isdir(operand) else os.path.join("/lib/modules", operand)
        if not os.path.isdir(moddir):
            raise FileNotFoundError(f"{operand}: not a boot image, module directory or installed KVER")
        kver = os.path.basename(moddir.rstrip("/"))
        release = kver
        source = kernel_source(moddir, kver)
        base = base_of(moddir, kver)
        image = find_image(base, kver)
        vermagic, banner = image_identity(image)[1:] if image else (None, None)
        config, cpath = _config([os.path.join(base, "boot", f"config-{kver}"), os.path.join(moddir, "build",
                                                                                            ".config")])
    notes = [] if cpath else ["no kernel config found: CONFIG_MODULE_FORCE_LOAD taken as unset"]
    if vermagic is None:
        notes.append(VERMAGIC_UNKNOWN)
    modversions = config.get("CONFIG_MODVERSIONS") == "y" if cpath else (
        source.crcs or source.modversions is not False and (vermagic is None or "modversions" in vermagic.split()))
    why = "as asked"
    if profile is None:
        profile, why = profile_of(banner, release)
    return KernelTarget(operand, release, vermagic, source, config.get("CONFIG_MODULE_FORCE_LOAD") == "y",
                        modversions, tuple(notes), profile, why)


def tree_loader(dirname: str, kver: str, image: str | None = None,
                profile: str | None = None) -> tuple[str, str, tuple[str, ...], str | None]:
    """(profile, how it was chosen, the Debian models that apply, the kernel's VERMAGIC_STRING or None) for a
    tree's own kernel, as :func:`target_for` decides for its module directory: its boot image (``image``,
    else the tree's boot/vmlinuz-KVER) gives the version string and the vermagic; the profile, unless
    asked, is the version string's, else the release's; CONFIG_MODULE_FORCE_LOAD from boot/config-KVER or
    build/.config (y when none says: every Debian config sets it). The models are empty for kernel.org's."""
    if profile is not None and profile not in PROFILES:
        raise ValueError(f"unknown kernel profile {profile!r}; known: {', '.join(PROFILES)}")
    base = base_of(dirname, kver)
    image = image or find_image(base, kver)
    _, vermagic, banner = image_identity(image) if image else (None, None, None)
    why = "as asked"
    if profile is None:
        profile, why = profile_of(banner, kver)
    if profile != DEBIAN:
        return profile, why, (), vermagic
    config, cpath = _config([os.path.join(base, "boot", f"config-{kver}"), os.path.join(dirname, "build", ".config")])
    force = config.get("CONFIG_MODULE_FORCE_LOAD") == "y" if cpath else True
    return profile, why, tuple(kernel_model(newer, force, profile).id for newer in (False, True)), vermagic


# -- one module, one kernel -----------------------------------------------------------------------

def _license_gpl(rec: ModuleRecord) -> bool:
    lic = rec.modinfo_values("license")
    return bool(lic) and lic[-1] in GPL_COMPATIBLE


def load_one(path: str, rec: ModuleRecord, target: KernelTarget, others: Sequence[ModuleRecord],
             force: bool | None = None) -> LoadResult:
    """``rec`` loaded into ``target`` after ``others`` (the modules given with it), as load_module() would."""
    force = target.force_load if force is None else force
    name = module_name(rec)
    ks = target.source.symbols
    kernel_exports = {e.symbol: e for e in ks.symvers.entries if e.in_kernel} if ks and ks.symvers else None
    kernel_names = {n for n, _, _ in ks.symbols} if ks else None
    # find_symbol(): vmlinux first, then the loaded modules, in the order given.
    module_exports: dict[str, tuple[str, Export]] = {}
    for o in others:
        if o is rec:
            continue
        for x in o.exports:
            module_exports.setdefault(x.name, (o.name, x))
    crcs: dict[str, int] | None = None
    if target.source.crcs and ks is not None:
        crcs = {n: c for n, c, _ in ks.symbols}
        for n, (_, x) in module_exports.items():
            if n not in crcs and x.crc is not None:
                crcs[n] = x.crc
    reasons: list[Reason] = []
    messages: list[str] = []
    verdict = "loads"
    view = None
    if target.modversions:
        view = _model(target.release, force, target.profile)(rec, crcs)
        verdict = view.verdict
        head = [m for m in view.messages if "module_layout" in m]
        later = [m for m in view.messages if "module_layout" not in m and _MESSAGE_SYMBOL.search(m)]
        if view.verdict == REFUSES and not later:
            # Refused before any other symbol: the version tables' validity (elf_validity_cache_index_versions)
            # or check_modstruct_version() (module_layout; no versions without FORCE_LOAD): nothing else runs.
            why = "; ".join(view.messages) or "no symbol versions and no CONFIG_MODULE_FORCE_LOAD (-ENOEXEC)"
            check = "module_layout" if head or not view.messages else "versions"
            return LoadResult(path, target.label, REFUSED,
                              (Reason(check, "module_layout" if check == "module_layout" else None, why),),
                              view.messages, None, _weak(rec, crcs))
        messages += head
        if view.verdict == LOADS_TAINTED:
            reasons.append(Reason("versions", None, "no symbol versions: loaded with CONFIG_MODULE_FORCE_LOAD, "
                                                    "kernel tainted"))
    # check_modinfo(): vermagic (consumers/kernel.py check_modinfo, the models' rule). Without versions
    # and with FORCE_LOAD, module_layout's try_to_force_load() has tainted the kernel already.
    magic = check_modinfo(rec, target.vermagic, force, target.modversions,
                          tainted=view is not None and view.verdict == LOADS_TAINTED)
    if magic is not None:
        if magic.message:
            messages.append(magic.message)
        if magic.refuses:
            return LoadResult(path, target.label, REFUSED, (Reason("vermagic", None, magic.detail),),
                              tuple(messages), None, _weak(rec, crcs))
        reasons.append(Reason("vermagic", None, magic.detail))
        verdict = LOADS_TAINTED
    # simplify_symbols(): each undefined symbol in .symtab order.
    by_symbol: dict[str, list[str]] = {}
    if view is not None:
        for m in view.messages:
            if "module_layout" in m:
                continue
            about = _MESSAGE_SYMBOL.search(m)
            by_symbol.setdefault(about.group(1) if about else "", []).append(m)
    gpl = _license_gpl(rec)
    imported_ns = set(rec.modinfo_values("import_ns"))
    failed = False
    for imp in rec.imports:
        sym = imp.name
        kexp = kernel_exports.get(sym) if kernel_exports is not None else None
        in_kernel = kernel_names is not None and sym in kernel_names
        mod = module_exports.get(sym)
        owner_gpl = kexp.gpl_only if kexp is not None else (mod[1].gpl_only if mod and not in_kernel else False)
        found = in_kernel or mod is not None or kernel_names is None
        if found and owner_gpl and not gpl:
            reasons.append(Reason("gpl-only", sym, "GPL-only export, the module's license is not GPL-compatible"))
            messages.append(f"{name}: Unknown symbol {sym} (err -2)")
            failed = True
            continue
        if not found:
            if imp.weak:
                continue
            reasons.append(Reason("missing", sym, "exported by neither the kernel nor the modules given"))
            messages.append(f"{name}: Unknown symbol {sym} (err -2)")
            failed = True
            continue
        lines = by_symbol.get(sym, [])
        messages += lines
        if any("disagrees" in m for m in lines):
            reasons.append(Reason("crc", sym, "CRC differs from the exporter's"))
            failed = True
            continue
        if any("Unknown symbol" in m for m in lines):  # Debian's check_version() failed on a missing entry
            reasons.append(Reason("version-missing", sym, "no __versions entry: Debian's kernel refuses "
                                                          "(module-disable-matching-missing-version-crc.patch)"))
            failed = True
            continue
        ns = kexp.namespace if kexp is not None else (mod[1].namespace if mod and not in_kernel else None)
        if ns and ns not in imported_ns:
            messages.append(f"{name}: module uses symbol ({sym}) from namespace {ns}, but does not import it.")
            messages.append(f"{name}: Unknown symbol {sym} (err -22)")
            reasons.append(Reason("namespace", sym, f"namespace {ns} not imported (MODULE_IMPORT_NS)"))
            failed = True
    if failed:
        verdict = REFUSED
    elif verdict == REFUSES:  # the model refused over symbols load_module() never versions (weak, not found)
        verdict = "loads"
    return LoadResult(path, target.label, verdict, tuple(reasons), tuple(messages), None, _weak(rec, crcs))


def _weak(rec: ModuleRecord, crcs: Mapping[str, int] | None) -> dict[str, str]:
    """What Red Hat's weak-modules and SUSE's weak-modules2 decide (consumers/weak_modules.py)."""
    if crcs is None:
        return {c: "unknown (kernel CRCs unknown)" for c in of_kind("crc-gate")}
    return {c: CONSUMERS[c](rec, crcs).verdict for c in of_kind("crc-gate")}


def load_matrix(modules: Sequence[tuple[str, ModuleRecord]], targets: Sequence[KernelTarget]) -> list[LoadResult]:
    """Every module × kernel; the modules given together satisfy each other's symbols."""
    records = [r for _, r in modules]
    out = []
    for t in targets:
        for path, rec in modules:
            res = load_one(path, rec, t, records)
            flipped = load_one(path, rec, t, records, force=not t.force_load)
            if flipped.verdict != res.verdict:
                res = LoadResult(res.module, res.kernel, res.verdict, res.reasons, res.messages,
                                 f"{flipped.verdict} {'with' if not t.force_load else 'without'} "
                                 "CONFIG_MODULE_FORCE_LOAD", res.weak_modules)
            out.append(res)
    return out
