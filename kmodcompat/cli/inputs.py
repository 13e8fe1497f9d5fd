"""Turning command-line operands into what a command analyses: one tree, or module files.

Every command that takes a tree names it the same way (:func:`add_tree_operands`,
:func:`resolve`):

* a module directory: ``/lib/modules/6.12.0-1-amd64`` (its name is the kernel release, as for depmod);
* a root holding one ``lib/modules/KVER`` or ``usr/lib/modules/KVER`` (an unpacked image, a container
  image, a chroot): the release is the name found there, never the root's own name;
* ``-b BASEDIR KVER``: kmod's form, ``BASEDIR/lib/modules/KVER``;
* ``KVER`` alone: ``/lib/modules/KVER``; no operand at all: the running kernel's;
* packages (``.deb``; see :mod:`kmodcompat.files.packages`), combined into one root first.

``views``, ``simulate``, ``validate`` and ``diff`` also take module files.
"""

from __future__ import annotations

import gc
import glob
import os
import sqlite3
import stat
import sys
from typing import Literal, NoReturn, overload
from contextlib import ExitStack
from dataclasses import dataclass

from ..depmod.config import config_paths, load_config
from ..depmod.kernel_symbols import KernelSymbols, KernelSymbolsError, load_module_symvers, load_system_map
from ..depmod.tree import ModuleTree, load_tree, make_absolute
from ..errors import ModuleReadError
from ..files import packages
from ..files.bounded import file_type
from ..kmod.profile import DEFAULT_KMOD, Kmod
from ..records import MODULE_SUFFIXES, ModuleRecord
from ..cache import RecordCache, parse_cached
from ..consumers.base import tree_crcs
from .output import add_as_option, emulated_kmod, shown
from .terminal import progress

#: The help text of the tree operand, the same in every command.
TREE_HELP = ("a module directory (/lib/modules/KVER), a root holding lib/modules/KVER, Debian packages "
             "(.deb, any number: combined into one root), or KVER (under /lib/modules, or BASEDIR with -b)")


@dataclass(frozen=True)
class TreeOperand:
    """One tree as the command line named it, resolved to what ``depmod -b BASEDIR KVER`` takes."""

    dirname: str  # the module directory (absolute)
    kver: str  # the kernel release: the module directory's name, as depmod has it
    basedir: str | None  # the root it was named by ("" the host's /); None: a module directory named directly
    label: str  # what the user named, for headings and messages (package names for packages)
    packages: packages.PackageSet | None = None

    def display(self, text: str) -> str:
        """``text`` with the temporary root of unpacked packages replaced by the packages' names."""
        return self.packages.display(text) if self.packages is not None else text


@dataclass(frozen=True)
class ModuleFiles:
    """Module files named one by one."""

    paths: tuple[str, ...]
    label: str


def usage(msg: str) -> NoReturn:
    """One line on stderr, exit status 2 (usage or input error)."""
    print(f"kmodcompat: {shown(msg)}", file=sys.stderr)
    raise SystemExit(2)


def add_tree_operands(p, modules: bool = False) -> None:
    """The tree operand and ``-b``, with the same names and help in every command."""
    what = "TREE|MODULE" if modules else "TREE"
    p.add_argument("operands", nargs="*", metavar=what,
                   help=TREE_HELP + ("; or module files" if modules else ""))
    p.add_argument("-b", "--basedir", default=None, metavar="BASEDIR",
                   help="root holding lib/modules/KVER (kmod's -b): the operand is then KVER")
    p.add_argument("--moddir", default=None, metavar="DIR", help="the module directory DIR (same as a TREE operand)")


@overload
def resolve(ops: list[str], basedir: str | None, stack: ExitStack, modules: Literal[False] = False,
            check_basedir: bool = True) -> TreeOperand: ...
@overload
def resolve(ops: list[str], basedir: str | None, stack: ExitStack, modules: bool,
            check_basedir: bool = True) -> TreeOperand | ModuleFiles: ...
def resolve(ops: list[str], basedir: str | None, stack: ExitStack, modules: bool = False,
            check_basedir: bool = True) -> TreeOperand | ModuleFiles:
    """What ``ops`` (with ``-b BASEDIR``) name; a usage error (exit 2) for operands that name nothing.
    ``check_basedir`` False: a BASEDIR that is no directory is left to the search to fail (depmod's message)."""
    if basedir is not None:
        if len(ops) > 1:
            usage("-b BASEDIR takes one kernel release (KVER)")
        ops = ops or [os.uname().release]  # depmod -b BASEDIR: the running kernel's release
        if check_basedir and not os.path.isdir(basedir):
            usage(f"{basedir}: not a directory" if os.path.exists(basedir) else f"{basedir}: no such directory")
        root = make_absolute(basedir) if basedir else ""
        return TreeOperand(f"{root}/lib/modules/{ops[0]}", ops[0], basedir, f"{basedir} {ops[0]}")
    if not ops:
        kver = os.uname().release
        return TreeOperand(f"/lib/modules/{kver}", kver, "", f"/lib/modules/{kver}")
    missing = [o for o in ops if not os.path.lexists(o)]
    if len(ops) == 1 and missing and may_be_kver(ops[0]):
        return TreeOperand(f"/lib/modules/{ops[0]}", ops[0], "", f"/lib/modules/{ops[0]}")  # KVER
    if missing:
        usage(f"{missing[0]}: no such file or directory")
    pkgs = [o for o in ops if packages.is_package(o)]
    if pkgs:
        if len(pkgs) != len(ops):
            other = next(o for o in ops if o not in pkgs)
            usage(f"{other}: not a package: packages are combined with packages only")
        return _from_packages(pkgs, stack)
    dirs = [o for o in ops if os.path.isdir(o)]
    if dirs:
        if len(ops) != 1:
            usage(f"{ops[1] if dirs[0] == ops[0] else dirs[0]}: one tree at a time")
        return directory(ops[0])
    if not modules:
        usage(f"{ops[0]}: not a module directory, a root holding lib/modules/KVER or a package")
    return ModuleFiles(tuple(ops), ops[0] if len(ops) == 1 else f"{len(ops)} modules")


def check_files(*paths: str | None) -> None:
    """A usage error (exit 2, one line) for an input file named by an option (-E, -F, --kernel-image ...)
    that is not a regular file: said before anything is read, not after a whole tree is parsed."""
    for path in paths:
        if path is None:
            continue
        try:
            st = os.stat(path)
        except OSError as e:
            usage(f"{path}: {e.strerror}")
        if not stat.S_ISREG(st.st_mode):
            usage(f"{path}: not a regular file ({file_type(st.st_mode)})")


def may_be_kver(operand: str) -> bool:
    """Whether an operand that names no file is read as a kernel release: not a path, not named like a package
    or a module file (``views foo.ko`` with no foo.ko is a missing file, not ``/lib/modules/foo.ko``)."""
    return "/" not in operand and not packages.is_package_name(operand) and not operand.endswith(MODULE_SUFFIXES)


def kernels_under(root: str) -> list[str]:
    """The module directories ``[usr/]lib/modules/KVER`` under ``root`` (one each when lib is usr/lib)."""
    found: dict[str, str] = {}
    for pattern in ("lib/modules/*", "usr/lib/modules/*"):
        for p in sorted(glob.glob(os.path.join(glob.escape(root), pattern))):
            if os.path.isdir(p):
                found.setdefault(os.path.realpath(p), p)
    return list(found.values())


def directory(path: str, label: str | None = None) -> TreeOperand:
    """A directory operand: a root holding one kernel's modules, else a module directory itself."""
    label = path if label is None else label
    found = kernels_under(path)
    if len(found) > 1:
        kvers = ", ".join(sorted({os.path.basename(p) for p in found}))
        usage(f"{label}: several kernels ({kvers}): name one with -b {label} KVER")
    if found:
        kver = os.path.basename(found[0])
        return TreeOperand(make_absolute(found[0]), kver, path, label)
    dirname = make_absolute(path.rstrip("/") or "/")
    return TreeOperand(dirname, dirname.rsplit("/", 1)[-1], None, label)


def _from_packages(paths: list[str], stack: ExitStack) -> TreeOperand:
    try:
        pset = packages.unpack(paths, stack)
    except packages.PackageError as e:
        usage(str(e))
    for note in pset.notes:
        print(f"kmodcompat: {shown(note)}", file=sys.stderr)
    if not kernels_under(pset.root):
        usage(pset.no_modules_message())
    op = directory(pset.root, pset.label)
    op = TreeOperand(op.dirname, op.kver, op.basedir, pset.label, pset)
    # depmod orders modules by modules.order and knows built-in ones from modules.builtin; Debian ships
    # them in linux-base-KVER, apart from the modules: a set without them still loads, but differently.
    for name in ("modules.order", "modules.builtin"):
        if not os.path.isfile(os.path.join(op.dirname, name)):
            print(f"kmodcompat: {shown(pset.label)}: no {name} in these packages{shown(pset.missing_hint(name))}",
                  file=sys.stderr)
    return op


def load(op: TreeOperand, config=None, kmod: Kmod = DEFAULT_KMOD, **kw) -> ModuleTree:
    """The tree of ``op`` as :func:`~kmodcompat.depmod.tree.load_tree` loads it (``kw``: jobs, progress, cache,
    parse). ``config`` None reads the default depmod.d directories under the root (none for a module directory)."""
    if op.basedir is not None:
        root = make_absolute(op.basedir) if op.basedir else ""
        if op.dirname == f"{root}/lib/modules/{op.kver}":
            return _kept(load_tree(op.basedir, op.kver, config=config, kmod=kmod, **kw))
        if config is None:  # usr/lib/modules/KVER only: the module directory, with the root's configuration
            config = load_config(config_paths(kmod, op.basedir), op.kver, kmod)
    return _kept(load_tree(op.dirname, None, config=config, kmod=kmod, **kw))


def _kept(value):
    """``value`` (a tree's records: a million objects, free of cycles, kept to the end of the command) moved
    out of the cyclic collector's sight (``gc.freeze()``): its later full passes, while the command
    works, would walk them all again for nothing (a quarter of a warm ``depmod -n``'s CPU on trixie amd64).
    Freed by reference counting all the same, and unfrozen when the command ends (cli main()); commands
    only, never the library (whose callers own the heap)."""
    gc.freeze()
    return value


# --- the depmod family: depmod, exports, graph, symvers -----------------------------------------

def add_tree_options(p, config: bool = True) -> None:
    """Options of every command that loads one whole tree as depmod does."""
    add_tree_operands(p)
    if config:
        p.add_argument("-C", "--config", action="append", default=None, metavar="PATH",
                       help="depmod.d file or directory (repeatable; replaces the defaults)")
        p.add_argument("--host-config", action="store_true",
                       help="read the host's depmod.d directories, as real depmod -b does")
    p.add_argument("-j", "--jobs", type=int, default=None, help="parallel parser processes (default: all cores)")
    add_cache_option(p)
    add_as_option(p)


def add_symbol_options(p) -> None:
    p.add_argument("-E", "--symvers", default=None, help="Module.symvers: kernel exports with CRCs")
    p.add_argument("-F", "--filesyms", default=None, help="System.map: kernel exports (ignored with -E)")
    p.add_argument("-P", "--symbol-prefix", dest="prefix", default="", help="architecture symbol prefix character")


def load_kernel_symbols(args) -> KernelSymbols | None:
    """``-E`` wins over ``-F``, as in do_depmod(); raises KernelSymbolsError."""
    if args.symvers:
        return load_module_symvers(args.symvers, args.prefix)
    if args.filesyms:
        return load_system_map(args.filesyms, args.prefix)
    return None


def kernel_symbols_or_exit(args) -> KernelSymbols | None:
    """:func:`load_kernel_symbols` for commands other than depmod: an unreadable file is a usage error."""
    try:
        return load_kernel_symbols(args)
    except KernelSymbolsError as e:
        usage(f"{e.filename}: {e.strerror}")


def tree_operand(args, stack: ExitStack, check_basedir: bool = True) -> TreeOperand:
    """The one tree of a depmod-family command (``--moddir DIR`` is the operand DIR)."""
    ops = list(args.operands)
    if args.moddir is not None:
        if ops or args.basedir is not None:
            usage("--moddir DIR names the tree: no other operand, no -b")
        ops = [args.moddir]
    op = resolve(ops, args.basedir, stack, check_basedir=check_basedir)
    assert isinstance(op, TreeOperand)
    return op


def depmod_config(op: TreeOperand, args, kmod: Kmod):
    """The depmod.d configuration: ``-C`` paths, else the host's (no root named, or ``--host-config``), else
    the root's, else none (a module directory named directly)."""
    conf = getattr(args, "config", None)
    if conf:
        return load_config(conf, op.kver, kmod)
    if getattr(args, "host_config", False) or op.basedir == "":
        return load_config(config_paths(kmod), op.kver, kmod)
    if op.basedir is None:
        return load_config([], op.kver, kmod)
    return load_config(config_paths(kmod, op.basedir), op.kver, kmod)


def load_depmod_tree(op: TreeOperand, args, check: bool = True) -> ModuleTree:
    """The tree of ``op``, loaded with the configuration the options select. ``check``: a module directory that
    cannot be searched is an input error (exit 2); depmod says it its own way instead."""
    kmod = emulated_kmod(args)
    tree = load(op, depmod_config(op, args, kmod), kmod, jobs=args.jobs, progress=progress("loading"),
                cache=tree_cache(op, args))
    if check:
        check_tree(op, tree)
    return tree


def check_tree(op: TreeOperand, tree: ModuleTree) -> None:
    """A usage error (exit 2, one line) for a tree that cannot be searched or holds no module file: every
    command but depmod (which, like kmod's, writes empty indexes for an empty directory) analyses nothing
    there. Works on a survey (``parse=False``) too."""
    if tree.search_failed is not None:
        usage(f"{op.display(tree.dirname)}: cannot open directory: {tree.search_failed}")
    if not tree.modules:
        for path, reason in tree.skipped:  # an unreadable kernel/ is why, not a tree without modules
            print(f"kmodcompat: {shown(op.display(path))}: {shown(reason)}", file=sys.stderr)
        usage(f"{op.display(tree.dirname)}: no modules found")


def tree_from_args(args, stack: ExitStack, check: bool = True) -> tuple[TreeOperand, ModuleTree]:
    """The tree the options name (:func:`tree_operand`), loaded by :func:`load_depmod_tree`."""
    op = tree_operand(args, stack)
    return op, load_depmod_tree(op, args, check)


# --- views and simulate: a tree or module files -----------------------------------------------

@dataclass(frozen=True)
class Inputs:
    modules: tuple[tuple[str, ModuleRecord], ...]  # (path, record)
    failures: tuple[ModuleReadError, ...]  # every module that could not be read, with its reason
    label: str  # what was analysed, for headings
    root: str | None = None  # the module directory, when the modules are a tree's
    tree: TreeOperand | None = None

    @property
    def named_unreadable(self) -> bool:
        """A module file named on the command line could not be read: an input error (exit 2), where an
        unreadable module found in a tree is a finding about the tree."""
        return self.tree is None and bool(self.failures)


def add_cache_option(p) -> None:
    p.add_argument("--no-cache", action="store_true", help="do not read or write the record cache "
                   "(~/.cache/kmodcompat, or $XDG_CACHE_HOME/kmodcompat)")


def open_cache(args) -> RecordCache | None:
    """The record cache unless --no-cache; an unusable cache directory just means no cache.

    Every command that reads module files takes it the same way (``--no-cache``, on by default): the
    depmod family, report, views, simulate, diff, validate, loadable and modinfo."""
    if getattr(args, "no_cache", False):
        return None
    try:
        return RecordCache()
    except (OSError, sqlite3.Error) as e:
        # depmod and modinfo print what kmod's would, byte for byte: a cache is not kmod's to mention.
        if not getattr(args, "kmod_output", False):
            print(f"kmodcompat: record cache unavailable ({e}); parsing everything", file=sys.stderr)
        return None


def tree_cache(op: TreeOperand | ModuleFiles, args) -> RecordCache | None:
    """:func:`open_cache` for the modules of ``op``; none for unpacked packages, whose temporary root's paths
    would never be seen again (their records would only push others out)."""
    return open_cache(args) if getattr(op, "packages", None) is None else None


def tree_inputs(tree: ModuleTree, symvers: str | None = None, system_map: str | None = None,
                image: str | None = None, kernel_profile: str | None = None) -> tuple[tuple, list[str]]:
    """What a finished result computed from ``tree`` (a report, a diff's side) depends on, for
    :func:`~kmodcompat.cache.input_key`: (the parts, the files whose identity counts).

    The survey carries the module list, the depmod.d configuration as parsed, modules.order and the
    built-in lists (read afresh on every run); ``symvers``, ``system_map``, ``image``: the files the
    options name for the kernel's exports, then every file they may be read from instead (the tree's
    Module.symvers, boot image, System.map) and the boot config telling a Debian kernel's FORCE_LOAD
    (loadable.tree_loader); ``kernel_profile``: the loader profile asked for. The files (modules
    included, and the record of a simulated tree) count by identity (path, size, mtime, inode, ctime),
    as for cached records.
    """
    from ..files.kernel import find_kernel_files, tree_base
    from ..files.kernel_image import find_image
    from ..simulate_tree import marker_path

    found = find_kernel_files(tree)
    named = (symvers, system_map, image)
    boot_image = find_image(tree_base(tree), tree.kver)
    kernel_files = [p for p in (*named, found.get("symvers"), boot_image, found.get("system_map")) if p is not None]
    config = os.path.join(tree_base(tree), "boot", f"config-{tree.kver}")
    if os.path.isfile(config):
        kernel_files.append(config)
    simulated = marker_path(tree.dirname, tree.kver)
    simulated_by = [simulated] if os.path.isfile(simulated) else []
    survey = (tree.dirname, tree.kver, tree.kmod.id, tree.config, tree.shadowed, tree.modules_order, tree.builtin,
              tree.builtin_modinfo, tree.diagnostics, tree.skipped,
              tuple((m.name, m.path, m.relpath) for m in tree.modules), (*named, kernel_profile),
              tuple(kernel_files), tuple(simulated_by))
    return survey, [m.path for m in tree.modules] + kernel_files + simulated_by


def add_input_options(p) -> None:
    add_tree_operands(p, modules=True)
    p.add_argument("-j", "--jobs", type=int, default=None, help="parallel parsers (default: all cores)")
    add_cache_option(p)


def load_inputs(args, stack: ExitStack) -> Inputs:
    """Raises SystemExit(2) with a one-line message for operands that make no sense."""
    ops = list(args.operands) if args.moddir is None else [args.moddir, *args.operands]
    shown_progress = progress("parsing")
    if not ops and args.basedir is None and not os.path.isdir(f"/lib/modules/{os.uname().release}"):
        usage(f"no operand and no /lib/modules/{os.uname().release}: name a module directory or module files")
    op = resolve(ops, args.basedir, stack, modules=True)
    cache = tree_cache(op, args)
    if isinstance(op, TreeOperand):
        tree = load(op, jobs=args.jobs, progress=shown_progress, cache=cache)
        check_tree(op, tree)
        mods = tuple((m.path, m.record) for m in tree.modules if m.record is not None)
        return Inputs(mods, tuple(m.error for m in tree.failures if m.error is not None), op.label, tree.dirname, op)
    parsed = _kept(parse_cached(list(op.paths), cache, args.jobs, shown_progress))
    mods = tuple((p, r) for p, r in zip(op.paths, parsed) if isinstance(r, ModuleRecord))
    fails = tuple(r for r in parsed if isinstance(r, ModuleReadError))
    if not mods:  # nothing to analyse: the reasons, and an input error
        report_failures(fails)
        raise SystemExit(2)
    return Inputs(mods, fails, op.label)


def load_expected(symvers: str | None, modules) -> dict[str, int] | None:
    """Exporter CRCs as depmod resolves them: vmlinux from Module.symvers (a ``.gz`` inflated), module exports
    over it."""
    if symvers is None:
        return None
    try:
        ks = load_module_symvers(symvers, gunzip=symvers.endswith(".gz"))
    except KernelSymbolsError as e:
        usage(f"{symvers}: {e.strerror}")
    return tree_crcs({name: crc for name, crc, _ in ks.symbols}, (rec for _, rec in modules))


def report_failures(failures, op: TreeOperand | None = None) -> None:
    for line in failure_lines(failures, op):
        print(line, file=sys.stderr)


def failure_lines(failures, op: TreeOperand | None = None) -> list[str]:
    """The line on stderr for each module that could not be read (packages' paths shown as their names)."""
    return [f"kmodcompat: {shown(op.display(str(e)) if op is not None else e)}" for e in failures]
