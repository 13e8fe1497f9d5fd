"""``kmodcompat simulate TREE|MODULE... --format-as FORMAT [--out DIR]``: rewrite modules in another format.

Writes, for each module, a real relocatable ELF whose version sections are those
modpost writes in FORMAT (none, basic, basic+ext, ext-only, the rejected 2023
variable-length one, the 2024 hashed one), everything else kept byte for byte,
so real tools can be run on it.

A tree becomes a tree (kmodcompat/simulate_tree.py): DIR is a root holding
``lib/modules/KVER`` with every module at its own path and in its own
compression, the files depmod reads beside them, the depmod.d configuration and
the kernel's Module.symvers, System.map and boot image, so ``report DIR`` and
``diff TREE DIR`` show the format's effect alone. Module files named one by one
keep their paths relative to their closest common directory. DIR must be new
(or empty) and outside the tree; files are written as
:class:`~kmodcompat.cli.outdir.OutputDirectory` says (no planted link is
followed).
"""

from __future__ import annotations

import os
import sys
from contextlib import ExitStack

from ..errors import ModuleReadError
from ..files.bounded import InputFileError
from ..simulate import FORMATS
from ..simulate_tree import (MARKER, TreeFile, marker, module_directory, read_tree_file, read_unchanged,
                             simulate_files, tree_files)
from .inputs import add_input_options, check_files, load_expected, load_inputs, report_failures, usage
from .outdir import OutputDirectory
from .output import shown
from .helptext import CommandHelp, command_parser
from .terminal import note, progress


HELP = CommandHelp(
    summary="rewrite modules with their versions in another format",
    description="""
Writes, for each module, a real relocatable ELF whose version sections are those modpost writes in the chosen
format (none, basic, basic+ext, ext-only, the rejected 2023 variable-length one or the 2024 hashed one), with
everything else kept byte for byte, so that real tools can be run on it.

A tree is written as a tree: DIR/lib/modules/KVER (DIR/usr/lib/modules/KVER for a tree found only there),
however the tree was named (a root, a module directory, -b BASEDIR KVER, packages), so DIR is a root and its
kernel release is the original's. Every module keeps its path below the module directory and its compression,
recompressed as make modules_install does (xz with a CRC32 check, gzip, zstd). modules.order, modules.builtin
and modules.builtin.modinfo are copied, with the depmod.d files of the root named and the kernel's
Module.symvers, System.map and boot image at the same place under DIR (one that cannot be read, such as a
/boot/vmlinuz-KVER only root may read, is said and left out); depmod's own outputs are not (run depmod -b DIR
KVER), nor is a module outside the module directory (a depmod.d external one: exit status 1).

A module that already holds exactly the tables of the format is copied as it is, signature included; every
other is rewritten, and its signature is dropped, since the bytes it signed changed: the last line counts
both, and kmodcompat-simulation.json in DIR records them for report DIR.
kmodcompat diff TREE DIR then shows what building the tree in that format changes, and nothing else.

Module files named one by one keep their paths relative to their closest common directory. DIR must not exist
or be empty, and must not be inside the tree; no symbolic link planted in DIR is followed.
""",
    examples=(
        ("kmodcompat simulate --format-as ext-only --out /tmp/ext $(uname -r)",
         "Rewrite the running kernel's modules with extended tables only, as a tree under /tmp/ext."),
        ("kmodcompat simulate --format-as basic foo.ko", "Write simulated/foo.ko with a classic __versions "
                                                          "table."),
    ),
    exit_status="0 when every module was written, 1 when a module of the tree could not be read, rewritten or "
                "written, 2 for a usage or input error: an operand that names no tree or module, a tree that cannot "
                "be opened or holds no module, a module file named that cannot be read (the others are still "
                "written), an output directory that exists and is not empty, is inside the tree or cannot be used.",
)


def add_parser(sub) -> None:
    p = command_parser(sub, "simulate", HELP)
    add_input_options(p)
    p.add_argument("--format-as", required=True, choices=FORMATS, dest="format_as",
                   help="the modversions format to write")
    p.add_argument("--out", default="simulated", help="output directory (default ./simulated)")
    p.add_argument("-E", "--symvers", metavar="Module.symvers", help="CRCs for imports the module itself lacks")
    p.set_defaults(run=run)


def run(args) -> int:
    with ExitStack() as stack:
        return _run(args, stack)


def _run(args, stack: ExitStack) -> int:
    check_files(args.symvers)
    refuse_used_out(args.out)
    inputs = load_inputs(args, stack)
    report_failures(inputs.failures, inputs.tree)
    extra = load_expected(args.symvers, inputs.modules)
    status = 2 if inputs.named_unreadable else 1 if inputs.failures else 0
    op = inputs.tree
    files: list[TreeFile] = []
    moddir = ""
    if op is not None:
        top = op.dirname if op.basedir in (None, "") else op.basedir  # the host's /: its module directory
        if _inside(args.out, top):
            usage(f"--out {args.out}: inside the tree {op.label}: write the simulation elsewhere")
        moddir = module_directory(op.dirname, op.kver)
        inside = op.dirname.rstrip("/") + "/"
        # A module outside the module directory (a depmod.d "external" one) has no place in the new tree.
        rels: list[str | None] = [f"{moddir}/{p[len(inside):]}" if p.startswith(inside) else None
                                  for p, _ in inputs.modules]
        files = tree_files(op.dirname, op.kver, op.basedir, moddir)
    else:
        rels = list(output_layout([p for p, _ in inputs.modules]))
    try:
        out = OutputDirectory(args.out)
    except OSError as e:
        print(f"kmodcompat: --out {shown(args.out)}: {shown(e.strerror or e)}", file=sys.stderr)
        return 2
    results = simulate_files(inputs.modules, args.format_as, extra, args.jobs, progress("simulating"))
    rewritten = unchanged = 0
    dropped: list[str] = []
    with out:
        for (path, _), rel, res in zip(inputs.modules, rels, results):
            shown_path = op.display(path) if op is not None else path
            if rel is None or isinstance(res, ModuleReadError) or res.error is not None:
                why = ("outside the module directory: not part of the simulated tree" if rel is None
                       else res.reason if isinstance(res, ModuleReadError) else res.error)
                print(f"kmodcompat: {shown(shown_path)}: cannot write as {args.format_as}: {shown(why)}",
                      file=sys.stderr)
                status = max(status, 1)
                continue
            try:
                out.write(rel, res.data if res.data is not None else read_unchanged(path))
            except OSError as e:
                print(f"kmodcompat: {shown(os.path.join(args.out, rel))}: {shown(e.strerror or e)}", file=sys.stderr)
                status = max(status, 1)
                continue
            if res.data is None:
                unchanged += 1
            else:
                rewritten += 1
                if res.signature_dropped:
                    dropped.append(rel[len(moddir) + 1:] if moddir else rel)
        copied = []
        for f in files:
            try:
                data = read_tree_file(f)
            except InputFileError as e:  # e.g. /boot/vmlinuz-KVER, readable by root only: said, not a failure
                print(f"kmodcompat: {shown(op.display(f.source) if op is not None else f.source)}: "
                      f"{shown(e.strerror or e)}: not copied", file=sys.stderr)
                continue
            try:
                out.write(f.dest, data)
            except OSError as e:
                print(f"kmodcompat: {shown(os.path.join(args.out, f.dest))}: {shown(e.strerror or e)}", file=sys.stderr)
                status = max(status, 1)
                continue
            copied.append(f.dest)
        if op is not None:
            try:
                out.write(MARKER, marker(args.format_as, op.label, op.kver, moddir, rewritten, unchanged, dropped))
            except OSError as e:
                print(f"kmodcompat: {shown(os.path.join(args.out, MARKER))}: {shown(e.strerror or e)}",
                      file=sys.stderr)
                status = max(status, 1)
    where = shown(os.path.join(args.out, moddir) if moddir else args.out)
    line = f"{rewritten + unchanged} module(s) written as {args.format_as} under {where}: {rewritten} rewritten"
    line += f" ({len(dropped)} signature(s) dropped: the bytes they signed changed)" if dropped else ""
    line += f", {unchanged} copied unchanged (already {args.format_as})"
    if files:
        line += f"; {len(copied)} file(s) of the tree copied"
    note(line)
    return status


def refuse_used_out(path: str) -> None:
    """A usage error for an output directory that already holds something: a simulation is a new tree, and
    files left from another would be read as part of it."""
    try:
        used = os.path.lexists(path) and (not os.path.isdir(path) or bool(os.listdir(path)))
    except OSError as e:
        usage(f"--out {path}: {e.strerror or e}")
    if used:
        usage(f"--out {path}: exists and is not an empty directory: name a new one")


def _inside(path: str, top: str) -> bool:
    """Whether ``path`` (links resolved, missing components allowed) is ``top`` or below it."""
    real, base = os.path.realpath(path), os.path.realpath(top)
    return real == base or real.startswith(base.rstrip("/") + "/")


def output_layout(paths: list[str]) -> list[str]:
    """Where each module file named goes, in ``paths`` order: its path relative to the closest directory holding
    them all; relative and absolute operands are compared as absolute paths. Distinct files give distinct paths:
    names are kept whole."""
    if not paths:
        return []
    absolute = [os.path.abspath(p) for p in paths]
    base = os.path.commonpath([os.path.dirname(p) for p in absolute])
    return [os.path.relpath(p, base) for p in absolute]
