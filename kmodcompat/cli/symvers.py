"""``kmodcompat symvers [TREE | -b BASEDIR KVER] [--kernel-image FILE | --modules-only]``: an installed kernel's Module.symvers.

One line per export, as modpost's ``write_dump()`` writes them:
``0x%08x\\tSYMBOL\\tMODULE\\tEXPORT_SYMBOL[_GPL]\\tNAMESPACE``, vmlinux first,
then the modules. An installed kernel without its headers package still has
both halves: vmlinux's exports come from the boot image
(files/kernel_image.py: ``boot/vmlinuz-KVER`` of the tree, or
``--kernel-image``), the modules' from the tree. Without an image the
modules' lines are written alone, with a note on stderr; an image that is
unreadable, or whose exports cannot be told, is an error (exit 2), never a
partial vmlinux.

Order, compared with the headers package's file:

* modules: exactly modpost's. Modules come in modules.order (depmod order,
  the kernel's build order); MODULE is the build path without suffix (the
  tree path minus ``kernel/`` and ``.ko*``, e.g. ``drivers/net/tun``). Within
  a module, modpost writes its exports in the order of the ``KSYMTAB`` lines
  it generated into the ``.mod.c``, which is the order of the ``__crc_``
  symbols in the module's ``.symtab`` (identical for every module line of
  trixie amd64); a module without MODVERSIONS (no ``__crc_``) is written in
  ``__ksymtab`` order and CRC 0.
* vmlinux: the lines are the same, their order is not. modpost writes vmlinux.o's
  link order, which a stripped image keeps only in ``__ksymtab_strings``: names
  are written in the order of their strings there, which misplaces those the
  linker merged into another name's tail (about 4 % of the lines on trixie amd64);
  compare sorted.
"""

from __future__ import annotations

import re
import sys
from contextlib import ExitStack

from ..files.kernel import base_of
from ..files.symvers import dump_line
from ..files.kernel_image import KernelImageError, find_image, image_paths, read_kernel_image
from ..records import raw
from . import EXIT_USAGE
from .inputs import add_tree_options, check_files, check_tree, load_depmod_tree, report_failures, tree_operand
from .output import shown
from .helptext import CommandHelp, command_parser
from .terminal import note


HELP = CommandHelp(
    summary="Module.symvers of an installed kernel, rebuilt from its tree and boot image",
    description="""
Writes the Module.symvers of an installed kernel that has no headers package: one line per export (CRC,
symbol, module, EXPORT_SYMBOL or EXPORT_SYMBOL_GPL, namespace, separated by tabs), vmlinux first, then the
modules, as modpost writes it. vmlinux's exports are read from the boot image (the tree's boot/vmlinuz-KVER,
or --kernel-image), the modules' from the tree. Without an image the modules' lines are written alone, with a
note on stderr.

The modules' lines come in modpost's order. vmlinux's lines are the same as modpost's but not always in its
order (a stripped image does not keep it exactly): compare them sorted.
""",
    examples=(
        ("kmodcompat symvers /lib/modules/$(uname -r) > Module.symvers",
         "Rebuild the running kernel's Module.symvers."),
        ("kmodcompat symvers --modules-only -b /srv/root 6.1.0-56-amd64", "Only the modules' exports."),
    ),
    exit_status="0 on success, 2 for a usage or input error: an operand that names no tree, a tree that cannot be opened,"
                " a tree without modules and without a boot image (or with --modules-only), a boot image that is "
                "unreadable or whose exports cannot be told (never a partial vmlinux).",
)


def add_parser(sub) -> None:
    p = command_parser(sub, "symvers", HELP)
    which = p.add_mutually_exclusive_group()
    which.add_argument("--kernel-image", default=None, metavar="FILE",
                       help="the boot image to read vmlinux's exports from (default: the tree's boot/vmlinuz-KVER)")
    which.add_argument("--modules-only", action="store_true", help="only the modules' lines, no vmlinux")
    add_tree_options(p)
    p.set_defaults(run=run)


def build_name(output_path: str) -> str:
    """``kernel/drivers/net/tun.ko.xz`` -> ``drivers/net/tun`` (modpost names modules by build path)."""
    return re.sub(r"\.ko(\.[a-z]+)?$", "", output_path.removeprefix("kernel/"))


def _line(e, module: str) -> str:
    return dump_line(e.crc or 0, e.name, module, e.gpl_only, e.namespace)


def symvers_lines(tree) -> list[str]:
    """The modules' lines, in modpost's order (see the module docstring)."""
    out: list[str] = []
    for m in tree.modules:
        rec = m.record
        if rec is None:
            continue
        name = build_name(m.output_path)
        rank = {c.name: i for i, c in enumerate(rec.crc_symbols)}
        exports = sorted(rec.exports, key=lambda e: rank.get(e.name, len(rank))) if rank else rec.exports
        out.extend(_line(e, name) for e in exports)
    return out


def vmlinux_lines(kernel) -> list[str]:
    """vmlinux's lines from a :class:`KernelExports`, in ``__ksymtab_strings`` order."""
    exports = kernel.exports
    order = kernel.link_order or range(len(exports))
    return [_line(exports[i], "vmlinux") for i in order]


def run(args) -> int:
    check_files(args.kernel_image)
    with ExitStack() as stack:
        op = tree_operand(args, stack)
        # A tree that names nothing is the one error, before any note; an empty one still has vmlinux's lines
        tree = load_depmod_tree(op, args, check=False)
        if tree.search_failed is not None:
            check_tree(op, tree)
        kernel = None
        if not args.modules_only:
            path = args.kernel_image
            if path is None:
                root = base_of(op.dirname, op.kver)
                path = find_image(root, op.kver)
                if path is None:
                    if not tree.modules:
                        check_tree(op, tree)  # neither half: nothing to write
                    # The modules' lines alone are still right; say what is left out.
                    looked = op.display(", ".join(image_paths(root, op.kver)))
                    note(f"kmodcompat: no boot image for {shown(op.kver)} (looked at {shown(looked)}): "
                         "vmlinux's lines left out; give --kernel-image FILE")
            if path is not None:
                kernel = _read_image(path, op)
                if kernel is None:
                    return EXIT_USAGE
        elif not tree.modules:
            check_tree(op, tree)
        out = sys.stdout.buffer
        if kernel is not None:
            out.write(raw("".join(vmlinux_lines(kernel))))
        out.write(raw("".join(symvers_lines(tree))))
        report_failures((m.error for m in tree.failures), op)
    return 0


def _read_image(path: str, op):
    """The image's exports, or None after one line on stderr: a bad image, or exports unknown."""
    try:
        kernel = read_kernel_image(path)
    except KernelImageError as e:
        print(f"kmodcompat: {shown(op.display(str(e)))}", file=sys.stderr)
        return None
    if kernel.exports is None:
        print(f"kmodcompat: {shown(op.display(path))}: kernel exports unknown: {kernel.unknown}", file=sys.stderr)
        return None
    return kernel
