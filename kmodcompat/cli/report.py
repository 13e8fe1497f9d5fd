"""``kmodcompat report [TREE | -b BASEDIR KVER] [--out DIR] [--fail-on POLICY]``: the compatibility report.

Writes ``report.json`` (the source), ``report.md`` and ``report.html`` into
``reports/<kernel release>/`` (or ``--out``). With no operand it analyses
``/lib/modules/$(uname -r)``, or the bundled demo tree where there is none.

The --fail-on terms, the exit status and examples are in HELP (its --help and man page).
"""

from __future__ import annotations

import dataclasses
import gc
import json
import os
import sys
from contextlib import ExitStack
from importlib import resources

from ..cache import input_key
from ..consumers.kernel import PROFILES
from ..parse.scan import gc_paused
from ..report.policy import evaluate, parse_policy
from ..depmod.tree import parse_tree
from .inputs import (add_cache_option, add_tree_operands, check_files, check_tree, load, resolve, tree_cache,
                     tree_inputs, tree_operand)
from .outdir import OutputDirectory, safe_component
from .output import json_pieces, shown
from .helptext import CommandHelp, command_parser
from .terminal import note, paint, phase, progress

DEFAULT_POLICY = "unreadable"


HELP = CommandHelp(
    summary="write the compatibility report (JSON, Markdown, HTML)",
    description="""
Analyses a whole module tree and writes its compatibility report: what each consumer of version information
sees in each module, as built and in every other modversions format, unresolved imports, dependency cycles
and malformed tables. It writes report.json (the source of the other two), report.md and report.html into
reports/KERNEL-RELEASE/, or into the directory --out names.

With no operand it analyses /lib/modules of the running kernel, or the bundled demo tree when there is none.
The kernel's own exports come from -E, --kernel-image or -F when given, else from the tree's Module.symvers,
its boot image or a real System.map; one line on stderr says which.
""",
    examples=(
        ("kmodcompat report", "Report on the running kernel's modules."),
        ("kmodcompat report --out /tmp/r linux-image-6.12.57+deb13-amd64_*.deb",
         "Report on a kernel package, into /tmp/r."),
        ("kmodcompat report --fail-on lost:kmod30,unresolved 6.1.0-56-amd64",
         "Exit 1 when kmod 30 does not see some import version or an import resolves to no exporter (for CI)."),
        ("kmodcompat report --diff-against 6.1.0-56-amd64 6.12.57+deb13-amd64",
         "Report on the newer tree, with what changed from the older one."),
    ),
    exit_status="0 when nothing the --fail-on policy counts as a break was found, 1 when something was, 2 for a usage or "
                "input error: an operand that names no tree, a tree that cannot be opened or holds no module, a bad "
                "--fail-on term, an unusable -E, -F or --kernel-image file, an output directory that cannot be used.",
    sections=(("fail-on policy", """
--fail-on takes a comma-separated list of these terms:

  unreadable                  a module could not be read (the default)
  lost:CONSUMER[@FORMAT]      CONSUMER does not see some import version
  false-warnings[:CONSUMER][@FORMAT]
                              false "disagrees" warnings (default kmod34)
  refuses:CONSUMER[@FORMAT]   CONSUMER (a kernel) refuses a module
  unresolved                  an import resolves to no exporter (never
                              while the kernel's exports are unknown:
                              it is not checkable then)
  cycles                      a dependency cycle
  findings[:CODE]             a malformed table (of that finding code)
  long-names[:c|rust]         a symbol name a BASIC-only build stops on
                              (56+ characters, 60+ on 32-bit: modpost's
                              "too long symbol"), exported by the tree or
                              vmlinux or imported; :c or :rust only those
  none                        never fail

FORMAT is a simulated format (none, basic, basic+ext, ext-only, varlen, hashed); without it the term applies to the
modules as built.
"""), ("CI formats", """
--format junit prints JUnit XML on stdout (Jenkins, GitLab): one test case per module, failing with each
--fail-on term it trips (the reason and the file), and one per policy term. --format sarif prints a SARIF
2.1.0 log (GitHub code scanning): one result per module finding, its rule id the term (lost:kmod34,
findings:CODE), level error where the policy gates on it, warning for what the report shows but the policy
leaves out; a term on a simulated format is tree-wide (at the tree's modules.dep). The report files are
written and the exit status is the same with every format.
"""),),
)


def add_parser(sub) -> None:
    p = command_parser(sub, "report", HELP)
    add_tree_operands(p)
    p.add_argument("-E", "--symvers", metavar="Module.symvers", help="kernel exports with CRCs (default: found "
                   "in the tree's headers, build/ or boot/)")
    p.add_argument("-F", "--system-map", metavar="System.map", help="kernel symbols (default: found in boot/)")
    p.add_argument("--kernel-image", metavar="FILE", help="the boot image to read the kernel's exports and CRCs "
                   "from (default: the tree's boot/vmlinuz-KVER when no Module.symvers is found)")
    p.add_argument("--out", help="output directory (default reports/<kernel release>); symbolic links in it are "
                   "followed only when yours or root's, written files replace what is there")
    p.add_argument("--diff-against", metavar="OLD_TREE", help="an older module directory (…/lib/modules/KVER): the "
                   "report then carries what changed from it (the HTML shows it as a section)")
    p.add_argument("--fail-on", default=DEFAULT_POLICY, metavar="POLICY", help=f"what counts as a break "
                   f"(default {DEFAULT_POLICY}); see below")
    p.add_argument("--kernel-profile", choices=PROFILES, default=None,
                   help="the loader of the tree's kernel: mainline (kernel.org) or debian (fails closed on a "
                        "missing __versions entry; its models join the report); default: read from the boot "
                        "image's version string")
    p.add_argument("--format", choices=("text", "junit", "sarif"), default="text",
                   help="what goes to stdout besides the report files: text nothing (the verdict is on stderr), "
                        "junit a JUnit XML file, sarif a SARIF 2.1.0 log (see CI formats); the exit status is the "
                        "same")
    p.add_argument("-j", "--jobs", type=int, default=None, help="parallel workers (default: all cores)")
    add_cache_option(p)
    p.set_defaults(run=run)


def demo_tree() -> tuple[str, str]:
    """(basedir, kver) of the demo tree shipped in the package."""
    base = str(resources.files("kmodcompat").joinpath("demo"))
    kver = sorted(os.listdir(os.path.join(base, "lib", "modules")))[0]
    return base, kver


def run(args) -> int:
    try:
        policy = parse_policy(args.fail_on)
    except ValueError as e:
        print(f"kmodcompat: --fail-on: {shown(e)}", file=sys.stderr)
        return 2
    with ExitStack() as stack:
        return _run(args, policy, stack)


def _run(args, policy, stack: ExitStack) -> int:
    # The survey first (cheap: no module is read); the modules are parsed only
    # when no finished report for exactly these inputs is in the cache.
    running = f"/lib/modules/{os.uname().release}"
    if args.operands or args.basedir is not None or args.moddir is not None or os.path.isdir(running):
        op = tree_operand(args, stack)
    else:
        base, kver = demo_tree()
        note(f"kmodcompat: no {running} here: analysing the bundled demo tree ({kver})")
        op = resolve([kver], base, stack)
    # Unpacked packages live in a temporary root: what is cached under its paths would never be read again.
    cache = tree_cache(op, args)
    tree = load(op, parse=False)
    check_tree(op, tree)
    check_files(args.symvers, args.system_map, args.kernel_image)
    # Keyed by every file the kernel's exports may come from (read only when no report is cached).
    key = input_key(*tree_inputs(tree, args.symvers, args.system_map, args.kernel_image, args.kernel_profile)) \
        if cache is not None else None
    text = cache.get_report(key) if key is not None and cache is not None else None
    # The renderings of a finished report are cached beside it (under the key and the file's name).
    rendered: dict[str, str] = {}
    if text is not None:
        doc = json.loads(text)
        if args.diff_against is None and cache is not None:
            for name in RENDERED:
                held = cache.get_report(f"{key}:{name}")
                if held is not None:
                    rendered[name] = held
    else:
        from ..files.kernel import KernelSourceError, kernel_source
        from ..report import build_report  # the analysis proper: imported only when it runs

        try:
            source = kernel_source(tree.dirname, tree.kver, symvers=args.symvers, image=args.kernel_image,
                                   system_map=args.system_map)
        except KernelSourceError as e:
            print(f"kmodcompat: {shown(e)}", file=sys.stderr)
            return 2

        # The records (millions of objects, free of cycles) live until the end: frozen, the
        # collector's full passes during the analysis never traverse them (0.5 s of CPU on bookworm).
        # Frozen before the collector is back on, they are not traversed even once (0.07 s).
        with gc_paused():
            tree = parse_tree(tree, jobs=args.jobs, progress=progress("reading modules"), cache=cache)
            gc.freeze()
        doc = build_report(tree, system_map=args.system_map, jobs=args.jobs, source=source,
                           progress=progress("consumer views"), kernel_image=args.kernel_image,
                           kernel_profile=args.kernel_profile)
        if args.diff_against is None:
            # The records are done with: dropped before the document is serialized and read back, the
            # peak is the records or the report, never both (a 20,000-module tree: 1.38 GB before).
            tree = dataclasses.replace(tree, modules=())
        text = op.display(report_text(doc))  # packages: their names, not the temporary root
        del doc  # one document at a time
        doc = json.loads(text)  # render what a cached run renders: the document as JSON gives it back
        if key is not None and cache is not None:
            cache.put_report(key, text)
            if args.diff_against is None:
                rendered = render(doc)
                for name, page in rendered.items():
                    cache.put_report(f"{key}:{name}", page)
    if args.diff_against is not None:
        old_op = resolve([args.diff_against], None, stack)
        from ..diff import diff_trees
        from ..report.diff_json import to_json

        if not any(m.record is not None for m in tree.modules):
            tree = parse_tree(tree, jobs=args.jobs, cache=cache)  # the report came from the cache
        old = load(old_op, jobs=args.jobs, cache=cache if old_op.packages is None else None,
                   progress=progress("reading the older tree"))
        with phase(f"comparing with {shown(old_op.label)}"):
            diff = to_json(diff_trees(old, tree, old_label=old_op.label if old_op.packages is not None else None,
                                         new_label=op.label if op.packages is not None else None, jobs=args.jobs))
        doc["diff"] = json.loads(old_op.display(op.display(json.dumps(diff))))
        text = report_text(doc)
    # Default: reports/<kernel release>, the release as ONE component ("..", "a/b" stay inside reports/).
    out = args.out or os.path.join("reports", safe_component(tree.kver))
    try:
        with phase(f"writing {shown(out)}/report.json, report.md, report.html"):
            write_report(doc, out, text, rendered)
    except OSError as e:
        print(f"kmodcompat: {'--out ' if args.out else ''}{shown(out)}: {shown(e.strerror or e)}", file=sys.stderr)
        return 2
    for item in doc["unreadable"]:
        if item["code"] != "skipped":
            print(f"kmodcompat: {shown(item['path'])}: {shown(item['reason'])}", file=sys.stderr)
    note(f"kmodcompat: {shown(doc['tree']['kernel_exports']['line'])}")
    if doc["tree"].get("kernel_loader"):
        note(f"kmodcompat: {shown(doc['tree']['kernel_loader']['line'])}")
    if doc["tree"].get("simulated_by"):  # a tree kmodcompat simulate wrote: its signatures are the simulation's doing
        note(f"kmodcompat: {shown(doc['tree']['simulated_by']['line'])}")
    broken = evaluate(policy, doc)
    # The answer first, on stderr too: the verdict, what does not apply, the three costliest risks.
    s = doc["summary"]
    note(f"kmodcompat: {paint(shown(s['verdict']), 'good' if s['ok'] else 'bad', sys.stderr)}")
    for line in [*s["not_applicable"], *(r["text"] for r in s["risks"][:3])]:
        note(f"kmodcompat: {shown(line)}")
    if len(s["risks"]) > 3:
        note(f"kmodcompat: ... and {len(s['risks']) - 3} more risk(s) in the report")
    # The last line says where the report is and what the policy found: printed even with --quiet.
    breaks = f"; breaks: {paint(shown('; '.join(broken)), 'bad', sys.stderr)}" if broken else ""
    print(f"kmodcompat: report for {shown(tree.kver)} ({doc['counts']['modules']} modules) in {shown(out)}/report.html"
          + breaks, file=sys.stderr)
    status = 1 if broken else 0
    if args.format != "text":
        from ..report import ci, junit, sarif

        cases = ci.report_cases(doc, policy, args.fail_on, status)
        sys.stdout.write((junit if args.format == "junit" else sarif).render(cases))
    return status


#: Written one row per line in report.json (output.json_pieces).
REPORT_ROWS = (("consumers", "per_module"),)


def report_text(doc: dict) -> str:
    """The document as report.json: indented, but one line per module in ``consumers.per_module`` (a module's
    verdicts and counts indented would be 60 lines each: 4 MB of the 4,230 modules of trixie amd64)."""
    return "".join(json_pieces(doc, 1, REPORT_ROWS)) + "\n"


#: The renderings of report.json written beside it.
RENDERED = ("report.md", "report.html")


def render(doc: dict) -> dict[str, str]:
    """File name → the rendering of ``doc`` it holds."""
    from ..report import html as html_report
    from ..report import markdown as md_report

    return {"report.md": md_report.render(doc), "report.html": html_report.render(doc)}


def write_report(doc: dict, out: str, text: str | None = None, rendered: dict[str, str] | None = None) -> None:
    """``report.json`` (``text``: the document already serialized), ``report.md`` and ``report.html`` in ``out``
    (``rendered``: those already rendered from ``doc``, the others are rendered here).

    Through :class:`~kmodcompat.cli.outdir.OutputDirectory`: each file replaces
    what was there (a planted link included) instead of being written through it.
    Raises OSError.
    """
    pages = dict(rendered or {})
    if any(name not in pages for name in RENDERED):
        pages = {**render(doc), **pages}
    with OutputDirectory(out) as d:
        d.write("report.json", report_text(doc) if text is None else text)
        for name in RENDERED:
            d.write(name, pages[name])
