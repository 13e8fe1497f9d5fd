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
import re
import sys
from contextlib import ExitStack
from typing import Any

from ..depmod.kernel_symbols import KernelSymbolsError
from ..files.kernel import KernelSource, KernelSourceError, kernel_source
from ..depmod.resolve import KERNEL, Depmod, run_depmod
from ..depmod.tree import make_absolute
from ..depmod.uptodate import depfile_up_to_date
from ..depmod.writer import render, write_files
from ..files.packages import is_package
from ..kmod.getopt import DEPMOD_30, DEPMOD_34, Options
from ..kmod.host import default_kmod
from ..kmod.profile import KMOD_PROFILES, Kmod
from ..records import raw
from .inputs import (TreeOperand, add_symbol_options, add_tree_options, load_depmod_tree, load_kernel_symbols,
                     tree_operand)
from .output import emulated_kmod, write_json
from .helptext import CommandHelp, command_parser

PROGRAM = "depmod"


#: tools/depmod.c is_version_number(): ``sscanf(version, "%u.%u", &d1, &d2) == 2``, i.e. each %u skips
#: white space and takes an optional sign and decimal digits; the rest of the string is not looked at.
_VERSION = re.compile(r"\s*[+-]?[0-9]+\.\s*[+-]?[0-9]+", re.ASCII)


HELP = CommandHelp(
    summary="kmod's depmod, byte for byte",
    description="""
Does what kmod's depmod does: writes the same modules.dep, modules.alias, modules.symbols and other files
(binary indexes included) into BASEDIR/lib/modules/KVER, or prints the text files on stdout with -n, with the
same warnings on stderr and the same exit status. --as chooses which kmod release to imitate.

--format json prints a structured result instead: every module with its dependencies, each warning with its
code (a "disagrees about version" warning is marked as a false positive when the CRC it misses is only in
the extended tables), the unresolved symbols and the dependency cycles.

Configuration: each -C path (a file or a directory) replaces the defaults, as in depmod. Without -C the
tree's own depmod.d directories are read (BASEDIR/etc/depmod.d and the others depmod reads); --host-config
reads the host's instead, which is what real "depmod -b" does.
""",
    examples=(
        ("kmodcompat depmod -n 6.12.107+deb13-amd64", "Print the files depmod would write for that installed "
                                                        "kernel, writing nothing."),
        ("kmodcompat depmod -b /srv/root -e -E Module.symvers 6.1.0-56-amd64",
         "Write the files into a root's module directory, and report unresolved and mismatched symbols "
         "against the kernel's exports in Module.symvers."),
        ("kmodcompat depmod -n --format json /lib/modules/$(uname -r)", "Print the dependencies and warnings "
                                                                          "as JSON."),
    ),
    exit_status="As the emulated depmod: 0 on success, 1 on a fatal error, with depmod's message (a release whose "
                "directory cannot be searched, a bad version, an unreadable -E or -F file, a module path that is not "
                "absolute), 134 where kmod aborts. An option the emulated release lacks gets its getopt message "
                "and 1 (kmod 30 has no -m DIR or -o DIR; kmod 34 no -u, -q, -r, which kmod 30 ignores with a "
                "warning). kmodcompat's own operand forms (a directory or packages) that name nothing usable, "
                "and -vv, exit 2 with one line.",
)


def add_parser(sub) -> None:
    p = command_parser(sub, "depmod", HELP)
    p.add_argument("-a", "--all", action="store_true",
                   help="probe all modules (the default: kmodcompat does not take modules one by one)")
    p.add_argument("-A", "--quick", action="store_true",
                   help="do nothing when modules.dep is newer than every module file (nothing at all with -n)")
    p.add_argument("-n", "--dry-run", "--show", dest="dry_run", action="store_true",
                   help="write the text files to stdout, nothing to disk")
    p.add_argument("-v", "--verbose", action="count", default=0,
                   help='print each dependency as it is found ("MODULE needs "SYMBOL": OWNER") on stdout')
    p.add_argument("-w", "--warn", action="store_true",
                   help="warn about duplicate dependencies, aliases and symbols while writing the indexes")
    p.add_argument("-m", "--moduledir", default=None, metavar="DIR",
                   help="kmod 34: the module directory under BASEDIR (default lib/modules), with kmod's operands")
    p.add_argument("-o", "--outdir", default=None, metavar="OUTDIR",
                   help="kmod 34: write the files under OUTDIR/lib/modules/KVER instead of BASEDIR's")
    p.add_argument("-V", "--version", action="store_true", help="print the emulated kmod's version and features")
    p.add_argument("-e", "--errsyms", action="store_true", help="report unresolved and mismatched symbols")
    p.add_argument("--format", choices=("text", "json"), default="text",
                   help="output format (default %(default)s)")
    p.add_argument("--kernel-image", default=None, metavar="FILE",
                   help="not in kmod: the boot image's exports and CRCs as -E would give them (ignored with -E); "
                        "one line on stderr says what was read")
    add_symbol_options(p)
    add_tree_options(p)
    p.set_defaults(run=run, kmod_output=True)  # inputs.open_cache: kmod's stderr and nothing else


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


def _kmod_operands(args) -> bool:
    """Whether the operands are kmod's, ``[KVER [MODULE...]]``, rather than kmodcompat's own tree forms (a
    directory, a root, packages, ``--moddir``): those are checked as kmod checks them, with its messages."""
    if args.moddir is not None or not args.operands:
        return False
    first = args.operands[0]
    return args.basedir is not None or not (os.path.isdir(first) or is_package(first))


def getopt_options(argv: list[str]) -> tuple[Options, tuple[Options, ...]]:
    """The emulated release's depmod options, and every release's (cli main() scans argv with them)."""
    return _release_named(argv).depmod_options, (DEPMOD_30, DEPMOD_34)


def _release_named(argv: list[str]) -> Kmod:
    """The profile ``--as`` names in ``argv`` (before argparse reads it), else the host's default."""
    for i, token in enumerate(argv):
        if token == "--":
            break
        value = token[5:] if token.startswith("--as=") else argv[i + 1] if token == "--as" and i + 1 < len(argv) \
            else None
        if value in KMOD_PROFILES:
            return KMOD_PROFILES[value]
    return default_kmod()


def _module_path(root: str, moduledir: str, kver: str) -> str:
    """cfg.dirname and cfg.outdirname: ``"%s/%s/%s"`` of a root, the module directory without its leading
    slashes ("module directory is always relative to basedir/outdir"), and KVER."""
    return f"{root}/{moduledir.lstrip('/')}/{kver}"


def run(args) -> int:
    kmod = emulated_kmod(args)
    if args.version:  # tools/kmod.c kmod_version(), printed before anything else is looked at
        sys.stdout.write(kmod.version_text)
        return 0
    if args.prefix and len(args.prefix) != 1:
        sys.stderr.write(f"{PROGRAM}: FATAL: -P only takes a single char\n")
        return 1
    kmod_operands = _kmod_operands(args)
    if kmod_operands and not _VERSION.match(args.operands[0]):
        # do_depmod(): checked right after the options, before -b's directory is looked at
        sys.stderr.write(f"{PROGRAM}: ERROR: Bad version passed {args.operands[0]}\n")
        return 1
    if kmod_operands and len(args.operands) > 1:
        # depmod KVER MODULE...: kmod checks each path before it reads any; the mode itself is not emulated
        for path in args.operands[1:]:
            if not path.startswith("/"):
                sys.stderr.write(f"{PROGRAM}: FATAL: {path}: not absolute path.\n")
                return 1
        print("kmodcompat: depmod KVER MODULE... (modules named one by one) is not emulated: name the tree only",
              file=sys.stderr)
        return 2
    if args.verbose > 1:
        # -vv raises libkmod's log priority to INFO: its lines print memory addresses ("context 0x5555668a72d0
        # released", libkmod.c kmod_unref()), which no emulation can reproduce
        print("kmodcompat: depmod: -vv is not emulated (kmod's INFO and DEBUG lines print memory addresses): "
              "give -v", file=sys.stderr)
        return 2
    if args.moduledir is not None and not kmod_operands:
        print("kmodcompat: depmod: -m DIR goes with kmod's operands, [-b BASEDIR] KVER", file=sys.stderr)
        return 2
    with ExitStack() as stack:
        # kmod's operands: a BASEDIR that is no directory is depmod's "could not search modules" to say
        op = tree_operand(args, stack, check_basedir=not kmod_operands)
        if args.moduledir is not None:
            root = make_absolute(op.basedir) if op.basedir else ""
            op = TreeOperand(_module_path(root, args.moduledir, op.kver), op.kver, op.basedir, op.label, op.packages)
        if args.quick:  # do_depmod(): maybe_all, before the kernel's symbols are read
            if args.dry_run:
                return 0
            fresh, errors = depfile_up_to_date(op.dirname, kmod.module_suffixes)
            sys.stderr.write("".join(op.display(d.line(PROGRAM)) for d in errors))
            if fresh:
                return 0
        try:
            kernel = load_kernel_symbols(args)
        except KernelSymbolsError as e:
            sys.stderr.write(f"{PROGRAM}: FATAL: could not load {e.filename}: {e.strerror}\n")
            return 1
        return _depmod_tree(args, kernel, op, stack)


def _depmod_tree(args, kernel, op, stack: ExitStack) -> int:
    source = KernelSource.of(kernel)
    if kernel is None and args.kernel_image:
        # kmodcompat's own option: a line of its own (kmod's options print nothing, byte for byte).
        try:
            source = kernel_source(None, None, image=args.kernel_image, prefix=args.prefix)
        except KernelSourceError as e:
            sys.stderr.write(f"{PROGRAM}: FATAL: could not load {e}\n")
            return 1
        kernel = source.symbols
        sys.stderr.write(f"kmodcompat: {source.line()}\n")
    tree = load_depmod_tree(op, args, check=False)
    if op.packages is not None and not args.dry_run and args.format == "text" and args.outdir is None:
        print("kmodcompat: packages are unpacked into a temporary root: give -n to see depmod's files, or -o",
              file=sys.stderr)
        return 2
    return _depmod(args, kernel, tree, op, source)


def _outdir(args, op, tree) -> str:
    """cfg.outdirname: ``-o OUTDIR`` + the module directory + KVER (kmod 34), else the tree's own directory."""
    if args.outdir is None:
        return tree.dirname
    return _module_path(make_absolute(args.outdir), args.moduledir or "lib/modules", op.kver)


def _show(dm: Depmod) -> str:
    """``-v``: mod_add_dependency()'s ``SHOW("%s needs \"%s\": %s\n")``, once per (module, owner), with the
    first symbol that made the dependency, in the order depmod_load_dependencies() finds them."""
    mods = dm.modules
    return "".join(f'{mods[i].path} needs "{dm.edges[(i, d)][0]}": {mods[d].path}\n'
                   for i in range(len(mods)) for d in dm.deps[i])


def _depmod(args, kernel, tree, op, source: KernelSource) -> int:
    dm = run_depmod(tree, kernel, print_unknown=args.errsyms, prefix=args.prefix)
    out = render(dm, dry_run=args.dry_run, warn_dups=args.warn)
    outdir = _outdir(args, op, tree)
    diagnostics = list(dm.diagnostics) + list(out.diagnostics)
    status = 1 if dm.failed else 0
    if args.format == "json":
        if not args.dry_run and not dm.failed and not _write(out, outdir, op):
            return 1
        doc = {**result_json(dm, diagnostics), "kernel_exports": source.line()}
        if op.packages is not None:  # the temporary root's paths as the packages' names
            doc = json.loads(op.display(json.dumps(doc)))
        write_json(doc, 2)
        sys.stdout.write("\n")
        return status
    sys.stderr.buffer.write(b"".join(op.display(d.line(PROGRAM)).encode("utf-8", "surrogateescape")
                                     for d in diagnostics))
    sys.stderr.flush()
    if args.verbose:  # printed (and flushed) while the dependencies load: before cycles fail or abort the run
        sys.stdout.buffer.write(raw(op.display(_show(dm))))
        sys.stdout.flush()
    if dm.aborted:
        sys.stderr.write(f"{PROGRAM}: {dm.aborted}\n")
        return 134  # SIGABRT, as the assertion in depmod_report_cycles_from_root() ends it
    if args.dry_run:
        sys.stdout.buffer.write(out.stdout)
    elif not dm.failed and not _write(out, outdir, op):
        return 1
    return status


def _write(out, outdir: str, op) -> bool:
    """depmod_output()'s files, or its ``CRIT("could not create directory %s: %m")`` (then exit 1)."""
    try:
        write_files(out, outdir)
    except OSError as e:
        sys.stderr.write(op.display(f"{PROGRAM}: FATAL: could not create directory {outdir}: {e.strerror}\n"))
        return False
    return True
