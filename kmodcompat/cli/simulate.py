"""``kmodcompat simulate TREE|MODULE... --format-as FORMAT [--out DIR]``: rewrite modules in another format.

Writes, for each module, a real relocatable ELF ``.ko`` whose version sections
are those modpost writes in FORMAT (none, basic, basic+ext, ext-only, or the
rejected 2023 variable-length one), everything else kept byte for byte, so
real tools can be run on it.

Layout: each module keeps its path relative to the tree (``kernel/fs/foo.ko.xz``
becomes ``DIR/kernel/fs/foo.ko``), or, for module files, relative to their
closest common directory; only the compression suffix is dropped. Two modules
that would land on the same file (``foo.ko`` and ``foo.ko.xz`` side by side) are
refused before anything is written. Files are written as
:class:`~kmodcompat.cli.outdir.OutputDirectory` says (no planted link is
followed).
"""

from __future__ import annotations

import os
import sys
from contextlib import ExitStack

from ..errors import ModuleReadError
from ..files.opener import read_module_bytes
from ..records import MODULE_SUFFIXES
from ..simulate import FORMATS, BuildError, LayoutError, simulate
from .inputs import add_input_options, check_files, load_expected, load_inputs, report_failures
from .outdir import OutputDirectory
from .output import shown
from .helptext import CommandHelp, command_parser
from .terminal import note


#: Suffixes of compressed modules: the simulated module is written uncompressed.
_COMPRESSED = tuple(s for s in MODULE_SUFFIXES if s != ".ko")


HELP = CommandHelp(
    summary="rewrite modules with their versions in another format",
    description="""
Writes, for each module, a real relocatable ELF .ko whose version sections are those modpost writes in the
chosen format (none, basic, basic+ext, ext-only, or the rejected 2023 variable-length one), with everything
else kept byte for byte, so that real tools can be run on it.

Each module keeps its path relative to the tree (kernel/fs/foo.ko.xz becomes DIR/kernel/fs/foo.ko), or, for
module files, relative to their closest common directory; only the compression suffix is dropped. Two modules
that would land on the same file are refused before anything is written, and no symbolic link planted in DIR
is followed.
""",
    examples=(
        ("kmodcompat simulate --format-as ext-only --out /tmp/ext $(uname -r)",
         "Rewrite the running kernel's modules with extended tables only."),
        ("kmodcompat simulate --format-as basic foo.ko", "Write simulated/foo.ko with a classic __versions "
                                                          "table."),
    ),
    exit_status="0 when every module was written, 1 when a module of the tree could not be read or written, 2 for a usage"
                " or input error: an operand that names no tree or module, a tree that cannot be opened or holds no "
                "module, a module file named that cannot be read (the others are still written), two modules that would "
                "be written to the same file, an output directory that cannot be used.",
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
    inputs = load_inputs(args, stack)
    report_failures(inputs.failures, inputs.tree)
    extra = load_expected(args.symvers, inputs.modules)
    status = 2 if inputs.named_unreadable else 1 if inputs.failures else 0
    try:
        layout = output_layout([p for p, _ in inputs.modules], inputs.root)
    except ValueError as e:
        print(f"kmodcompat: {shown(e)}", file=sys.stderr)
        return 2
    written = 0
    try:
        out = OutputDirectory(args.out)
    except OSError as e:
        print(f"kmodcompat: --out {shown(args.out)}: {shown(e.strerror or e)}", file=sys.stderr)
        return 2
    with out:
        for (path, rec), rel in zip(inputs.modules, layout):
            try:
                data = simulate(rec, read_module_bytes(path).data, args.format_as, extra)
            except (BuildError, LayoutError, ModuleReadError) as e:
                print(f"kmodcompat: {shown(path)}: cannot write as {args.format_as}: {shown(e)}", file=sys.stderr)
                status = max(status, 1)
                continue
            except Exception as e:  # a bug must cost one module, not the tree run (as scan.parse_one)
                why = f"internal error: {type(e).__name__}: {e}".splitlines()[0]
                print(f"kmodcompat: {shown(path)}: cannot write as {args.format_as}: {shown(why)}", file=sys.stderr)
                status = max(status, 1)
                continue
            try:
                out.write(rel, data)
            except OSError as e:
                print(f"kmodcompat: {shown(os.path.join(args.out, rel))}: {shown(e.strerror or e)}", file=sys.stderr)
                status = max(status, 1)
                continue
            written += 1
    note(f"{written} module(s) written as {args.format_as} under {shown(args.out)}")
    return status


def output_layout(paths: list[str], root: str | None = None) -> list[str]:
    """Where each module goes under the output directory, in ``paths`` order.

    Relative to ``root`` (the tree's module directory) when every path is inside
    it, else to the closest directory holding them all; relative and absolute
    operands are compared as absolute paths. Raises ValueError naming two
    modules that would be written to the same file (or one where the other needs
    a directory).
    """
    if not paths:
        return []
    absolute = [os.path.abspath(p) for p in paths]
    base = os.path.abspath(root) if root is not None else None
    if base is None or not all(p.startswith(base.rstrip("/") + "/") for p in absolute):
        base = os.path.commonpath([os.path.dirname(p) for p in absolute])
    out = []
    for p in absolute:
        rel = os.path.relpath(p, base)
        head, name = os.path.split(rel)
        for suffix in _COMPRESSED:
            if name.endswith(suffix) and len(name) > len(suffix):
                name = name[:-len(suffix) + 3]  # foo.ko.xz -> foo.ko
                break
        else:
            if not name.endswith(".ko"):
                name += ".ko"
        out.append(os.path.join(head, name))
    taken: dict[str, str] = {}
    for rel, path in zip(out, paths):
        if rel in taken:
            raise ValueError(f"{taken[rel]} and {path} would both be written as {rel}: simulate them separately")
        taken[rel] = path
    for rel, path in zip(out, paths):  # "a.ko" (from a.ko.xz) and "a.ko/b.ko" cannot both exist
        head = os.path.dirname(rel)
        while head:
            if head in taken:
                raise ValueError(f"{taken[head]} would be written as {head}, where {path} needs a directory: "
                                 "simulate them separately")
            head = os.path.dirname(head)
    return out
