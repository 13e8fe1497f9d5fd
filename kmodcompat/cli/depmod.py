"""``kmodcompat depmod [-b BASEDIR] [-n] [-e] [-E Module.symvers | -F System.map] [-P c] [-C CONF] [--as kmodNN] KVER``.

kmod's depmod, byte for byte: the same files in ``BASEDIR/lib/modules/KVER``
(or on stdout with ``-n``), the same warnings on stderr, the same exit status.
``--format json`` prints the structured result instead: every module with its
dependencies, each warning with its code (``disagrees`` ones marked
``false_positive`` when the CRC is only in the extended tables), the
unresolved symbols and the cycles.

Configuration: each ``-C`` path (file or directory) replaces the defaults, as
in depmod. Without ``-C`` the tree's own depmod.d directories are read
(``BASEDIR/etc/depmod.d`` ...); ``--host-config`` reads the host's instead, which
is what real ``depmod -b`` does.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

from ..kmod.profile import KMOD_PROFILES
from ..depmod.config import config_paths, load_config
from ..depmod.kernel_symbols import KernelSymbols, KernelSymbolsError, load_module_symvers, load_system_map
from ..depmod.resolve import KERNEL, Depmod, run_depmod
from ..depmod.writer import render, write_files
from ..parse.scan import stderr_progress
from ..depmod.tree import load_tree
from .output import add_as_option

PROGRAM = "depmod"


def add_tree_options(p, config: bool = True) -> None:
    """Options shared by every command that loads a whole tree."""
    p.add_argument("-b", "--basedir", default="", help="root of the module tree (BASEDIR/lib/modules/KVER)")
    p.add_argument("--moddir", default=None, help="use this module directory directly (instead of -b and KVER)")
    if config:
        p.add_argument("-C", "--config", action="append", default=None, metavar="PATH",
                       help="depmod.d file or directory (repeatable; replaces the defaults)")
        p.add_argument("--host-config", action="store_true",
                       help="read the host's depmod.d directories, as real depmod -b does")
    p.add_argument("-j", "--jobs", type=int, default=None, help="parallel parser processes (default: all cores)")
    add_as_option(p)


def add_symbol_options(p) -> None:
    p.add_argument("-E", "--symvers", default=None, help="Module.symvers: kernel exports with CRCs")
    p.add_argument("-F", "--filesyms", default=None, help="System.map: kernel exports (ignored with -E)")
    p.add_argument("-P", "--symbol-prefix", dest="prefix", default="", help="architecture symbol prefix character")


def add_parser(sub) -> None:
    p = sub.add_parser("depmod", help="kmod's depmod, byte for byte", description=__doc__.splitlines()[0])
    p.add_argument("kver", nargs="?", default=None, metavar="KVER", help="kernel version (default: uname -r)")
    p.add_argument("-n", "--dry-run", "--show", dest="dry_run", action="store_true",
                   help="write the text files to stdout, nothing to disk")
    p.add_argument("-e", "--errsyms", action="store_true", help="report unresolved and mismatched symbols")
    p.add_argument("--format", choices=("text", "json"), default="text")
    add_symbol_options(p)
    add_tree_options(p)
    p.set_defaults(run=run)


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
        print(f"kmodcompat: could not load {e.filename}: {e.strerror}", file=sys.stderr)
        raise SystemExit(2) from None


def tree_from_args(args):
    """Load the tree named by -b/KVER or --moddir with the configuration the options select."""
    kmod = KMOD_PROFILES[args.as_]
    kver = args.kver if getattr(args, "kver", None) else os.uname().release
    base = args.moddir if args.moddir else args.basedir
    kver_arg = None if args.moddir else kver
    real_kver = os.path.basename(args.moddir.rstrip("/")) if args.moddir else kver
    conf = getattr(args, "config", None)
    if conf:
        config = load_config(conf, real_kver, kmod)
    elif getattr(args, "host_config", False) or (not args.basedir and not args.moddir):
        config = load_config(config_paths(kmod), real_kver, kmod)
    elif args.moddir:
        config = load_config([], real_kver, kmod)
    else:
        config = load_config(config_paths(kmod, args.basedir), real_kver, kmod)
    return load_tree(base, kver_arg, config=config, jobs=args.jobs, progress=stderr_progress("loading"), kmod=kmod)


def result_json(dm: Depmod, diagnostics: list) -> dict[str, Any]:
    """The structured depmod result: modules, dependencies, findings (JSON-ready)."""
    mods = dm.modules
    failed = dm.failed

    def name(i: int) -> str:
        return "vmlinux" if i == KERNEL else mods[i].name

    return {
        "kmod": dm.kmod.id,
        "dirname": dm.tree.dirname,
        "status": 1 if failed else 0,
        "modules": [{
            "name": m.name, "path": m.output_path,
            "error": None if m.error is None else m.error.reason,
            "depends": [] if failed else [mods[d].output_path for d in dm.all_dependencies(i)],
            "direct": [mods[d].name for d in dm.deps[i]],
        } for i, m in enumerate(mods)],
        "warnings": [d.as_dict() for d in diagnostics],
        "unresolved": [{"module": mods[u.module].name, "symbol": u.symbol, "weak": u.weak} for u in dm.unresolved],
        "disagreements": [{"module": mods[d.module].name, "symbol": d.symbol, "module_crc": f"0x{d.module_crc:08x}",
                           "expected_crc": f"0x{d.expected_crc:08x}", "owner": name(d.owner),
                           "false_positive": d.false_positive, "reason": d.reason,
                           "ext_crc": None if d.ext_crc is None else f"0x{d.ext_crc:08x}"}
                          for d in dm.disagreements],
        "cycles": dm.cycles,
        "shadowed": [{"path": p, "module": n} for p, n in dm.tree.shadowed],
        "failures": [{"module": m.name, "path": m.path, "reason": m.error.reason}
                     for m in dm.tree.failures if m.error is not None],
    }


def run(args) -> int:
    if args.prefix and len(args.prefix) != 1:
        sys.stderr.write(f"{PROGRAM}: FATAL: -P only takes a single char\n")
        return 1
    try:
        kernel = load_kernel_symbols(args)
    except KernelSymbolsError as e:
        sys.stderr.write(f"{PROGRAM}: FATAL: could not load {e.filename}: {e.strerror}\n")
        return 1
    tree = tree_from_args(args)
    dm = run_depmod(tree, kernel, print_unknown=args.errsyms, prefix=args.prefix)
    out = render(dm, dry_run=args.dry_run)
    diagnostics = list(dm.diagnostics) + list(out.diagnostics)
    status = 1 if dm.failed else 0
    if args.format == "json":
        if not args.dry_run and not dm.failed:
            write_files(out, tree.dirname)
        json.dump(result_json(dm, diagnostics), sys.stdout, indent=2)
        sys.stdout.write("\n")
        return status
    sys.stderr.buffer.write(b"".join(d.line(PROGRAM).encode("utf-8", "surrogateescape") for d in diagnostics))
    sys.stderr.flush()
    if dm.aborted:
        sys.stderr.write(f"{PROGRAM}: {dm.aborted}\n")
        return 134  # SIGABRT, as the assertion in depmod_report_cycles_from_root() ends it
    if args.dry_run:
        sys.stdout.buffer.write(out.stdout)
    elif not dm.failed:
        write_files(out, tree.dirname)
    return status
