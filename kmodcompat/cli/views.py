"""``kmodcompat views [TREE | -b BASEDIR KVER | MODULE...] [--consumer C]... [--simulate] [-E Module.symvers] [--format F]``.

What each consumer sees in the modules, as built and (``--simulate``) in every
other modversions format.
Unreadable modules are listed on stderr and in the output, never skipped silently.
"""

from __future__ import annotations

import json
import sys
from contextlib import ExitStack


from ..consumers import CONSUMERS, DEFAULT_KMOD_CONSUMER, standard
from ..views import ALL_FORMATS, AS_IS, ViewsResult, compute_views
from ..files.kernel import IMAGE, KernelSourceError, base_of, kernel_source
from ..files.kernel_image import find_image
from ..loadable import kernel_vermagic
from .inputs import add_input_options, check_files, load_inputs, report_failures
from .output import shown
from .helptext import CommandHelp, command_parser
from ..report.text import paragraph, table
from ..consumers.base import COMPATIBLE, LOADS, OK
from ..report.summary import BAD_VERDICTS, SEVERITY
from .terminal import columns, paint, progress


HELP = CommandHelp(
    summary="what each consumer sees, per modversions format",
    description="""
Shows what each consumer of version information (kmod 30, kmod 34, kmod with the extended-modversions
patch, busybox, module-init-tools, the kernel's loader of 6.13 and 6.14 with and without
MODULE_FORCE_LOAD, Red Hat's weak-modules and SUSE's weak-modules2) sees in the modules as they were
built, and with --simulate in every other modversions format. Modules that cannot be read are listed, on
stderr and in the output, never skipped silently.
""",
    examples=(
        ("kmodcompat views /lib/modules/$(uname -r)", "What every consumer sees in the running kernel's tree."),
        ("kmodcompat views --simulate --consumer busybox --consumer kernel-6.14 foo.ko",
         "What busybox and the 6.14 loader would see in foo.ko in each format."),
    ),
    exit_status="0 on success (modules of a tree that cannot be read are listed on stderr and in the output), 2 for a "
                "usage or input error: an operand that names no tree or module, a tree that cannot be opened or holds no "
                "module, a module file named that cannot be read (the others are still shown), an unusable -E or "
                "--kernel-image file.",
)


def add_parser(sub) -> None:
    p = command_parser(sub, "views", HELP)
    add_input_options(p)
    p.add_argument("--consumer", action="append", choices=list(CONSUMERS), metavar="C",
                   help=f"consumer to show (repeatable; default: {', '.join(standard())}; Debian's kernels on "
                        f"request: {', '.join(c for c in CONSUMERS if c not in standard())})")
    p.add_argument("--simulate", action="store_true", help="also show every simulated format")
    p.add_argument("-E", "--symvers", metavar="Module.symvers",
                   help="vmlinux CRCs to check imports against (default for a tree: its Module.symvers or boot "
                        "image, as the report finds them; for module files: each module's own)")
    p.add_argument("--kernel-image", metavar="FILE", help="the boot image to read vmlinux's CRCs (unless -E) and "
                   "the kernel's vermagic from (the loader models compare each module's with it)")
    p.add_argument("--modules", action="store_true", help="also list every module's view (text/markdown: "
                   "modules with a loss, misread or false warning; json: all)")
    p.add_argument("--format", choices=("text", "markdown", "json"), default="text",
                   help="output format (default %(default)s)")
    p.set_defaults(run=run)


def run(args) -> int:
    check_files(args.symvers, args.kernel_image)
    with ExitStack() as stack:
        inputs = load_inputs(args, stack)
        report_failures(inputs.failures, inputs.tree)
        try:
            # A tree's own kernel (its Module.symvers or boot image) unless one is named; module files: only
            # what is named.
            source = kernel_source(inputs.root, inputs.tree.kver if inputs.tree is not None else None,
                                   symvers=args.symvers, image=args.kernel_image)
        except KernelSourceError as e:
            print(f"kmodcompat: {shown(e)}", file=sys.stderr)
            return 2
        expected = source.expected(rec for _, rec in inputs.modules)
        # The kernel's vermagic, which the loader models compare each module's with: from the boot image
        # named, else the one the exports came from, else the tree's own.
        image = args.kernel_image or (source.path if source.kind == IMAGE else None)
        if image is None and inputs.tree is not None and inputs.root is not None:  # root: set with tree
            image = find_image(base_of(inputs.root, inputs.tree.kver), inputs.tree.kver)
        vermagic, vermagic_line = kernel_vermagic(image)
        formats = ALL_FORMATS if args.simulate else (AS_IS,)
        res = compute_views(inputs.modules, args.consumer, formats, expected,
                            keep_formats=formats if args.modules else (), jobs=args.jobs,
                            progress=progress("consumer views"), vermagic=vermagic)
        shown_as = inputs.tree.display if inputs.tree is not None else str  # packages: their names, not temp paths
        if args.format == "json":
            doc = {**to_json(res, inputs), "kernel_exports": source.as_dict(),
                   "kernel_vermagic": {"vermagic": vermagic, "line": vermagic_line}}
            sys.stdout.write(shown_as(json.dumps(doc, indent=1)) + "\n")
        else:
            sys.stdout.write(shown_as(render(res, inputs, "pipe" if args.format == "markdown" else "simple",
                                             args.modules, source.line(), vermagic_line)))
    return 2 if inputs.named_unreadable else 0


def to_json(res: ViewsResult, inputs) -> dict:
    doc = {
        "schema_version": 1,
        "input": inputs.label,
        "exporter_crcs": "tree" if res.tree_crcs else "module's own",
        "modules": len(inputs.modules),
        "unreadable": [{"path": e.path, "reason": e.reason} for e in inputs.failures],
        "formats": list(res.formats),
        "consumers": list(res.consumers),
        "totals": [t.as_dict() for t in res.totals],
    }
    if res.modules:
        doc["per_module"] = [{"path": m.path, "formats": {
            f: ({c: cv.as_dict() for c, cv in v.items()} if isinstance(v, dict) else v)  # str: not buildable
            for f, v in m.by_format.items()}} for m in res.modules]
    return doc


def headline(res: ViewsResult, fmt: str) -> str | None:
    """The sentence a maintainer asked for, for the default kmod and its depmod."""
    kmod = DEFAULT_KMOD_CONSUMER
    if kmod.id not in res.consumers:
        return None
    t = res.total(fmt, kmod.id)
    what = "as built" if fmt == AS_IS else f"if built with {fmt} versions"
    nb = f" ({t.not_buildable} module(s) could not be built that way)" if t.not_buildable else ""
    return (f"{what}: kmod {kmod.profile.version} would lose {t.lost} import version(s) in {t.modules_losing} module(s) and "
            f"depmod -e -E would print {t.false_messages} false warning(s) in {t.modules_false} module(s){nb}.")


def _kind(verdict: str) -> str | None:
    """The colour of a verdict, as the report's HTML colours it (report/summary.py SEVERITY)."""
    if SEVERITY.get(verdict, 0) >= 3:
        return "bad"
    if verdict in BAD_VERDICTS:
        return "warn"
    return "good" if verdict in (OK, LOADS, COMPATIBLE) else None


def render(res: ViewsResult, inputs, tablefmt: str, details: bool, kernel_line: str | None = None,
           vermagic_line: str | None = None) -> str:
    out = [f"{inputs.label}: {len(inputs.modules)} modules, exporter CRCs from "
           f"{'the kernel and the modules' if res.tree_crcs else 'each module itself'}"]
    if kernel_line:
        out.append(shown(kernel_line))
    if vermagic_line:
        out.append(shown(vermagic_line))
    if inputs.failures:
        out.append(f"{len(inputs.failures)} module(s) could not be read (listed on stderr)")
    for fmt in res.formats:
        out.append("")
        out.append(f"## {fmt}" if tablefmt == "pipe" else f"[{fmt}]")
        line = headline(res, fmt)
        if line:
            out.append(line)
        rows = []
        for c in res.consumers:
            t = res.total(fmt, c)
            rows.append([c, ", ".join(paint(f"{k} {v}", _kind(k)) for k, v in t.verdicts.items()) or "-",
                         f"{t.lost} ({t.modules_losing})", f"{t.false_messages} ({t.modules_false})",
                         t.misread, t.unchecked, t.not_buildable])
        out.append(table(rows, ["consumer", "verdicts (modules)", "lost (modules)", "false warnings (modules)",
                                "misread", "unchecked", "not buildable"],
                         columns() if tablefmt != "pipe" else None, tablefmt=tablefmt))
    if details and res.modules:
        out += ["", "Modules with a loss, misread or false warning:"]
        for m in res.modules:
            for f, views in m.by_format.items():
                if not isinstance(views, dict):  # why the format cannot hold the module
                    continue
                for c, v in views.items():
                    if v.lost or v.misread or v.false_messages:
                        out.append(f"  {m.path} [{f}] {c}: {v.verdict}; lost {len(v.lost)}, misread "
                                   f"{len(v.misread)}, false {len(v.false_messages)}")
    width = columns() if tablefmt != "pipe" else None
    if width is not None:  # the sentences fitted too (a table is one item of several lines, fitted already)
        out = [x if "\n" in x else paragraph(x.lstrip(" "), width, x[:len(x) - len(x.lstrip(" "))]) for x in out]
    return "\n".join(out) + "\n"
