"""``kmodcompat modinfo [-F field] [-0] [-b basedir] [-k kver] MODULE...``: kmod's modinfo, byte for byte.

A MODULE that is not a module file name is looked up by name in
``BASEDIR/lib/modules/KVER/modules.dep``, as kmod's modinfo does.
"""

from __future__ import annotations

import os

from ..kmod.profile import KMOD_PROFILES
from ..kmod.tools import modinfo_arg
from .output import add_as_option, emit

_SHORTCUTS = {"author": "-a", "description": "-d", "license": "-l", "parm": "-p", "filename": "-n"}


def add_parser(sub) -> None:
    p = sub.add_parser("modinfo", help="show module information as kmod's modinfo",
                       description=__doc__.splitlines()[0])
    p.add_argument("modules", nargs="+", metavar="MODULE")
    p.add_argument("-F", "--field", help="print only this field's values")
    p.add_argument("-0", "--null", action="store_true", help="use \\0 instead of \\n between values")
    for field, flag in _SHORTCUTS.items():
        p.add_argument(flag, dest="field", action="store_const", const=field, help=f"same as -F {field}")
    p.add_argument("-b", "--basedir", default="", help="root directory for module lookups by name")
    p.add_argument("-k", dest="kver", default=None, help="kernel version for module lookups by name")
    add_as_option(p)
    p.set_defaults(run=run)


def run(args) -> int:
    kmod = KMOD_PROFILES[args.as_]
    sep = "\0" if args.null else "\n"
    dirname = os.path.join(args.basedir or "/", "lib/modules", args.kver or os.uname().release)
    status = 0
    for arg in args.modules:
        result = modinfo_arg(kmod, arg, args.field, sep, dirname)
        emit(result)
        status |= result.status
    return status
