"""``kmodcompat ksyms --provides|--requires [--style suse|redhat] MODULE...``: RPM dependency lines.

The lines openSUSE's (rpm-config-SUSE find-provides.ksyms / find-requires.ksyms:
``kmod(NAME.ko)``, ``ksym(FLAVOR:SYMBOL) = CRC``) or RHEL 9's (kernel-srpm-macros
kmod.attr, find-provides.ksyms / find-requires.ksyms: ``kmod(NAME.ko)``,
``ksym(SYMBOL) = 0xCRC``, ``kernel(SYMBOL) = 0xCRC``) generators print for these
module files, byte for byte and in their order (see :mod:`kmodcompat.ksyms`), plus
the requirements they lose. Exit status: HELP below.
"""

from __future__ import annotations

import os
import sys

from ..errors import ModuleReadError
from ..files.bounded import MODULE_SYMVERS, InputFileError, read_input
from ..ksyms import STYLES, Package, first_word, generate, handled, package
from ..parse.scan import parse_many
from ..records import raw
from . import EXIT_USAGE
from .helptext import CommandHelp, command_parser
from .output import add_as_option, emulated_kmod, shown
from .terminal import note


HELP = CommandHelp(
    summary="the RPM ksym()/kernel()/kmod() dependency lines of modules, with the requirements the scripts lose",
    description="""
Prints the dependency lines the RPM generators of today's distributions write for kernel module packages,
byte for byte and in their order: with --style suse those of openSUSE's rpm-config-SUSE find-provides.ksyms
and find-requires.ksyms (kmod(NAME.ko) and ksym(FLAVOR:SYMBOL) = CRC), with --style redhat those of RHEL 9's
kernel-srpm-macros (kmod.attr's kmod(NAME.ko), find-provides.ksyms' and find-requires.ksyms' ksym(SYMBOL) =
0xCRC and kernel(SYMBOL) = 0xCRC). The modules are taken as the files of one package, in the order given.

The requirement scripts read modprobe --dump-modversions, which lists the classic __versions table only: the
imports a Linux 6.14 or later EXTENDED_MODVERSIONS build keeps in its extended tables alone (names of 56
characters or more, and every import when BASIC_MODVERSIONS is off) get no requirement. ksyms adds the lines
the same scripts would print for them; --lines script prints the scripts' lines only, --lines added only the
additions, and the default --lines all both, saying on stderr how many were added.

As the scripts, ksyms reads only module files under a lib/modules/ directory (each other one is named on
stderr); the redhat provides say kernel() for the modules under BUILDROOT/lib/modules/*/kernel, and kmod()
for the files rpm would hand kmod.attr (BUILDROOT/lib/modules/...).
""",
    examples=(
        ("kmodcompat ksyms --requires $RPM_BUILD_ROOT/lib/modules/*/extra/*.ko",
         "The ksym() requirements openSUSE's find-requires.ksyms gives a KMP, and those it loses."),
        ("kmodcompat ksyms --style redhat --requires /lib/modules/*/extra/*.ko",
         "The kernel() and ksym() requirements RHEL 9's find-requires.ksyms gives these modules (kernel() for "
         "those /usr/src/kernels/KREL/Module.symvers lists), and those it loses."),
    ),
    exit_status="0 when the lines were printed (a module the scripts skip is named on stderr); 2 for a usage "
                "error, a module that could not be read (named on stderr; the others are still used) or an "
                "unreadable --symvers file.",
)


def add_parser(sub) -> None:
    p = command_parser(sub, "ksyms", HELP)
    p.add_argument("modules", nargs="+", metavar="MODULE", help="module files (.ko, .ko.xz, .ko.zst, .ko.gz), "
                   "in the order rpm would pass them")
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--provides", action="store_true", help="what the modules provide")
    what.add_argument("--requires", action="store_true", help="what the modules require")
    p.add_argument("--style", choices=STYLES, default="suse",
                   help="suse: rpm-config-SUSE's scripts; redhat: RHEL 9 kernel-srpm-macros' (default suse)")
    p.add_argument("--flavor", help="suse: the FLAVOR of ksym(FLAVOR:...) (default: as the scripts, the part of "
                   "the vermagic's kernel release after its last '-')")
    p.add_argument("--buildroot", default=os.environ.get("RPM_BUILD_ROOT", ""),
                   help="redhat --provides: the package root; modules under ROOT/lib/modules/*/kernel provide "
                        "kernel(), the files under ROOT/lib/modules/ kmod() (default $RPM_BUILD_ROOT, as rpm)")
    p.add_argument("--symvers", metavar="FILE", help="redhat --requires: the kernel's Module.symvers; requirements "
                   "it lists with the same CRC are kernel() (default /usr/src/kernels/KREL/Module.symvers, KREL "
                   "from the first module's vermagic, as the script)")
    p.add_argument("--lines", choices=("all", "script", "added"), default="all",
                   help="script: the real script's lines only; added: only the requirements it loses; "
                        "all (default): both")
    add_as_option(p)
    p.add_argument("-j", "--jobs", type=int, default=None, help="parallel parsers (default: all cores)")
    p.set_defaults(run=run)


def run(args) -> int:
    kmod = emulated_kmod(args)
    status = 0
    pkgs: list[Package] = []
    for rec in parse_many(args.modules, jobs=args.jobs):
        if isinstance(rec, ModuleReadError):
            print(f"kmodcompat: {shown(rec)}", file=sys.stderr)
            status = EXIT_USAGE
            continue
        pkgs.append(package(kmod, rec))
    symvers = None
    if args.style == "redhat" and args.requires and pkgs:
        path = args.symvers
        if path is None:
            path = f"/usr/src/kernels/{first_word(pkgs[0].vermagic).decode('utf-8', 'surrogateescape')}" \
                   "/Module.symvers"
            if not os.path.exists(path):
                path = None
        if path is not None:
            try:
                symvers = read_input(path, MODULE_SYMVERS)
            except InputFileError as e:
                print(f"kmodcompat: {shown(e)}", file=sys.stderr)
                return EXIT_USAGE
    for p in pkgs:
        if not handled(args.style, args.provides, p.path):
            note(f"kmodcompat: {shown(p.path)}: not under */lib/modules/ as a .ko file: the {args.style} "
                 f"find-{'provides' if args.provides else 'requires'}.ksyms skips it")
    flavor = None if args.flavor is None else raw(args.flavor)
    lines = generate(args.style, args.provides, pkgs, flavor=flavor, buildroot=args.buildroot, symvers=symvers)
    wanted = {"all": (False, True), "script": (False,), "added": (True,)}[args.lines]
    out = sys.stdout.buffer
    out.write(b"".join(line.text + b"\n" for line in lines if line.added in wanted))
    out.flush()
    added = sum(line.added for line in lines)
    if added and args.lines == "all":
        note(f"kmodcompat: ksyms: {added} of these lines come from imports --dump-modversions does not list "
             "(--lines added prints them alone)")
    return status
