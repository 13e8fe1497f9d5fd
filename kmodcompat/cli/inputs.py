"""Turning command-line operands into modules: a tree directory, ``-b BASEDIR KVER``, or module files."""

from __future__ import annotations

import os
import sqlite3
import sys
from dataclasses import dataclass

from ..depmod.kernel_symbols import KernelSymbolsError, load_module_symvers
from ..errors import ModuleReadError
from ..records import ModuleRecord
from ..cache import RecordCache, parse_cached
from ..consumers.base import tree_crcs
from ..parse.scan import stderr_progress
from ..depmod.tree import load_tree
from .output import shown


@dataclass(frozen=True)
class Inputs:
    modules: tuple[tuple[str, ModuleRecord], ...]  # (display path, record)
    failures: tuple[ModuleReadError, ...]  # every module that could not be read, with its reason
    label: str  # what was analysed, for headings
    root: str | None = None  # the module directory, when the modules are a tree's


def add_cache_option(p) -> None:
    p.add_argument("--no-cache", action="store_true", help="do not read or write the record cache "
                   "(~/.cache/kmodcompat, or $XDG_CACHE_HOME/kmodcompat)")


def open_cache(args) -> RecordCache | None:
    """The record cache unless --no-cache; an unusable cache directory just means no cache."""
    if getattr(args, "no_cache", False):
        return None
    try:
        return RecordCache()
    except (OSError, sqlite3.Error) as e:
        print(f"kmodcompat: record cache unavailable ({e}); parsing everything", file=sys.stderr)
        return None


def add_input_options(p) -> None:
    p.add_argument("operands", nargs="*", metavar="TREE|MODULE|KVER",
                   help="a module directory (/lib/modules/VERSION), module files, or KVER with -b")
    p.add_argument("-b", "--basedir", default=None, help="root holding lib/modules/KVER (kmod's -b)")
    p.add_argument("-j", "--jobs", type=int, default=None, help="parallel parsers (default: all cores)")
    add_cache_option(p)


def load_inputs(args) -> Inputs:
    """Raises SystemExit(2) with a one-line message for operands that make no sense."""
    ops = list(args.operands)
    progress = stderr_progress("parsing")
    cache = open_cache(args)
    if args.basedir is not None:
        if len(ops) != 1:
            _usage("-b BASEDIR takes exactly one kernel version")
        tree = load_tree(args.basedir, ops[0], jobs=args.jobs, progress=progress, cache=cache)
        return _from_tree(tree, f"{args.basedir} {ops[0]}")
    if not ops:
        kver = os.uname().release
        if not os.path.isdir(f"/lib/modules/{kver}"):
            _usage(f"no operand and no /lib/modules/{kver}: name a module directory or module files")
        ops = [f"/lib/modules/{kver}"]
    if len(ops) == 1 and os.path.isdir(ops[0]):
        return _from_tree(load_tree(ops[0], jobs=args.jobs, progress=progress, cache=cache), ops[0])
    missing = [o for o in ops if not os.path.exists(o)]
    if missing:
        _usage(f"{missing[0]}: no such file or directory")
    parsed = parse_cached(ops, cache, args.jobs, progress)
    mods = tuple((p, r) for p, r in zip(ops, parsed) if isinstance(r, ModuleRecord))
    fails = tuple(r for r in parsed if isinstance(r, ModuleReadError))
    return Inputs(mods, fails, ops[0] if len(ops) == 1 else f"{len(ops)} modules")


def _from_tree(tree, label: str) -> Inputs:
    mods = tuple((m.path, m.record) for m in tree.modules if m.record is not None)
    return Inputs(mods, tuple(m.error for m in tree.failures), label, tree.dirname)


def load_expected(symvers: str | None, modules) -> dict[str, int] | None:
    """Exporter CRCs as depmod resolves them: vmlinux from Module.symvers (a ``.gz`` inflated), module exports
    over it."""
    if symvers is None:
        return None
    try:
        ks = load_module_symvers(symvers, gunzip=symvers.endswith(".gz"))
    except KernelSymbolsError as e:
        _usage(f"{symvers}: {e.strerror}")
    return tree_crcs({name: crc for name, crc, _ in ks.symbols}, (rec for _, rec in modules))


def report_failures(failures) -> None:
    for e in failures:
        print(f"kmodcompat: {shown(e)}", file=sys.stderr)


def _usage(msg: str):
    print(f"kmodcompat: {shown(msg)}", file=sys.stderr)
    raise SystemExit(2)
