"""``kmodcompat symvers [-b BASEDIR] [KVER]``: a Module.symvers for the tree's module exports.

One line per export, as modpost's ``write_dump()`` writes them:
``0x%08x\\tSYMBOL\\tMODULE\\tEXPORT_SYMBOL[_GPL]\\tNAMESPACE``. MODULE is the
module's build path without suffix (the tree path minus ``kernel/`` and
``.ko*``, e.g. ``drivers/net/tun``), modules come in depmod order (that is
modules.order, the kernel's build order) and each module's exports in its
``__ksymtab*`` order. A module built without MODVERSIONS has CRC 0.
"""

from __future__ import annotations

import re
import sys

from ..records import raw
from .depmod import add_tree_options, tree_from_args


def add_parser(sub) -> None:
    p = sub.add_parser("symvers", help="Module.symvers lines for the tree's module exports",
                       description=__doc__.splitlines()[0])
    p.add_argument("kver", nargs="?", default=None, metavar="KVER")
    add_tree_options(p)
    p.set_defaults(run=run)


def build_name(output_path: str) -> str:
    """``kernel/drivers/net/tun.ko.xz`` -> ``drivers/net/tun`` (modpost names modules by build path)."""
    return re.sub(r"\.ko(\.[a-z]+)?$", "", output_path.removeprefix("kernel/"))


def symvers_lines(tree) -> list[str]:
    out = []
    for m in tree.modules:
        rec = m.record
        if rec is None:
            continue
        name = build_name(m.output_path)
        for e in rec.exports:
            kind = "EXPORT_SYMBOL_GPL" if e.gpl_only else "EXPORT_SYMBOL"
            out.append(f"0x{(e.crc or 0) & 0xFFFFFFFF:08x}\t{e.name}\t{name}\t{kind}\t{e.namespace or ''}\n")
    return out


def run(args) -> int:
    tree = tree_from_args(args)
    sys.stdout.buffer.write(raw("".join(symvers_lines(tree))))
    for m in tree.failures:
        print(f"kmodcompat: {m.error}", file=sys.stderr)
    return 0
