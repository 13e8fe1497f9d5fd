"""``kmodcompat diff OLD NEW``: what changed between two builds, and who it breaks.

The operand forms, where kernel exports come from, the exit status and examples are
in HELP (its --help and man page).
"""

from __future__ import annotations

import gc
import glob
import json
import os
import sys
from contextlib import ExitStack

from ..consumers import CONSUMERS
from ..diff import DEFAULT_CONSUMERS, EXIT_CHANGE, EXIT_ERROR, EXIT_INCOMPATIBLE, EXIT_USAGE, diff_export_sides, \
    diff_modules, diff_trees
from ..depmod.tree import ModuleTree
from ..diff.policy import KabiPolicy
from ..errors import ModuleReadError
from ..files.kabi_lists import KabiListError, check_wildcards, read_rules, read_symbol_list
from ..files.kernel import KernelSourceError
from ..parse.module import parse_module
from ..report import diff_render
from ..report.diff_json import to_json
from ..files import packages
from ..files.bounded import InputFileError
from ..files.symvers import Symvers, read_symvers
from ..cache import input_key
from ..depmod.tree import parse_tree
from ..parse.scan import gc_paused
from .inputs import (ModuleFiles, TreeOperand, add_cache_option, check_files, check_tree, failure_lines, load,
                     open_cache, report_failures, resolve, tree_cache, tree_inputs)
from .helptext import CommandHelp, command_parser
from .output import json_pieces, shown
from .terminal import colour_on, columns, note, paint, progress


class _Fail(Exception):
    """A one-line message and the exit status to leave with."""

    def __init__(self, message: str, status: int):
        super().__init__(message)
        self.status = status


HELP = CommandHelp(
    summary="compare two builds: modules, trees or packages",
    description="""
Says what changed between two builds and whom it breaks: section layouts, version tables, the kABI (grouped
by cause, with the importers each change breaks) and dependencies. OLD and NEW are both module files, or
both trees, each named in any of the forms every command takes (a module directory, a root holding
lib/modules/KVER, -b BASEDIR KVER, packages). A Module.symvers (gzipped too) can be compared with another, a
tree or packages.

Packages (.deb, .rpm, .tar of a root; several per side with --old and --new) are unpacked into one temporary
root per side; what is printed names the packages, never that directory. The kernels' exports, for the kABI
diff, come from --old-symvers and --new-symvers (a Module.symvers, symvers.gz or a linux-headers package) or
from --old-kernel-image and --new-kernel-image; otherwise from where the report finds them next to each tree
(its Module.symvers, its boot image, a real System.map). One line on stderr per side says which.
""",
    examples=(
        ("kmodcompat diff old/foo.ko new/foo.ko", "Compare two builds of one module."),
        ("kmodcompat diff /lib/modules/6.1.0-56-amd64 /lib/modules/6.12.57+deb13-amd64",
         "Compare two installed kernels' trees."),
        ("kmodcompat diff -b / 6.1.0-56-amd64 6.12.57+deb13-amd64", "The same, as two releases in one root."),
        ("kmodcompat diff -b ROOT1 -b ROOT2 6.1.0-56-amd64 6.12.57+deb13-amd64",
         "Two releases in two roots."),
        ("kmodcompat diff --old old/*.deb --new new/*.deb",
         "Compare two sets of split packages (image, modules, base)."),
        ("kmodcompat diff kernel-core-6.12.rpm kernel-core-6.13.rpm", "Compare two RPM packages."),
        ("kmodcompat diff --symbol-list kabi_stablelist_x86_64 old.symvers new.symvers",
         "Gate on the kABI a Red Hat style stablelist promises: exit 0 unless a listed export broke."),
        ("kmodcompat diff --rules severities --report-unused-rules a.symvers b.symvers",
         "Judge each kABI change by SUSE's severity rules, and say which rules matched nothing."),
    ),
    exit_status="A bitmask, as abidiff's: 0 nothing changed; 4 something changed (bit 2); 12 (4 and 8) "
                "something changed and breaks a consumer (bit 3: an export removed, its CRC changed, made "
                "GPL-only or put in a namespace; a consumer's verdict falling to refuses, unreadable or a false "
                "mismatch; a module that became unreadable; a new dependency cycle; a newly unresolved "
                "import); 1 an error (an unreadable module file); 2 a usage error or an input that cannot be "
                "used (a missing path, a package that cannot be unpacked, a bad line in a symbol list or rules "
                "file). With --symbol-list or --rules: 0 when nothing the kABI policy fails (every kABI change "
                "excused, and no other break), the bitmask above otherwise. The same with every --format.",
    sections=(("kABI policy", """
--symbol-list FILE restricts which kABI changes count to the exports FILE names; several lists are one
union. Its format is told by its content: a Red Hat kabi_stablelist_ARCH ([rhel9_x86_64_stablelist], a
tab before each name), a libabigail or Android KMI list ([abi_symbol_list], # comments), or a plain list,
one name a line (a line with *, ?, [ or \\ is a wildcard, as suse-kabi-tools' --filter-symbol-list).

--rules FILE judges each kABI change of the listed exports (all, without a list) by severity rules as
suse-kabi-tools reads them: [MODULE|NAMESPACE|SYMBOL] PATTERN PASS|FAIL a line, # comments, shell
wildcards; without a type, a pattern with / (or vmlinux) is a module's as Module.symvers names it
(drivers/net/tun), one in capitals a namespace's, any other a symbol's. Rules are tried in the order
given, files too: the first match decides, PASS excuses the change, FAIL counts it, and a change no rule
matches counts. A file whose lines are single names is Ubuntu's abi.ignore: each excuses the symbol of
that name, or every export of the module of that name.

Only an incompatible change can count; each change says in every format which list entry or rule made
it count or not (file and line), and the first lines say how many changes the policy excused and why.
--report-unused-rules prints on stderr, as ksymvers unused-rules does, each rule that decided no change.
"""), ("CI formats", """
--format junit prints JUnit XML (Jenkins, GitLab): one test case per kABI change, changed or newly
unreadable module, new dependency cycle and newly unresolved import, failing where it counts in bit 3 of
the exit status, with the reason and the file. --format sarif prints a SARIF 2.1.0 log (GitHub code
scanning): one result per kABI change (rule kabi:removed, kabi:changed, kabi:added), broken module
(module:breaks, module:unreadable) and dependency problem (dependencies:cycle, dependencies:unresolved),
level error where it breaks, warning otherwise, at a URI relative to each tree's module directory.
"""),),
)


def add_parser(sub) -> None:
    p = command_parser(sub, "diff", HELP)
    p.add_argument("old", metavar="OLD", nargs="?", help="module file, module tree, root, package, or KVER with -b")
    p.add_argument("new", metavar="NEW", nargs="?", help="the same kind as OLD")
    p.add_argument("--old", dest="old_set", nargs="+", metavar="PACKAGE", help="OLD as several packages "
                   "(.deb, .rpm, .tar*: combined into one root), e.g. --old old/*.deb --new new/*.deb")
    p.add_argument("--new", dest="new_set", nargs="+", metavar="PACKAGE", help="NEW as several packages")
    p.add_argument("-b", "--basedir", action="append", default=None, metavar="BASEDIR",
                   help="root holding lib/modules/KVER (kmod's -b); once for both, twice for OLD then NEW")
    p.add_argument("--old-symvers", metavar="FILE", help="OLD kernel's Module.symvers (or a linux-headers .deb)")
    p.add_argument("--new-symvers", metavar="FILE", help="NEW kernel's Module.symvers (or a linux-headers .deb)")
    p.add_argument("--old-kernel-image", metavar="FILE", help="OLD kernel's boot image (vmlinuz) to read its exports from")
    p.add_argument("--new-kernel-image", metavar="FILE", help="NEW kernel's boot image (vmlinuz) to read its exports from")
    p.add_argument("--consumer", action="append", choices=list(CONSUMERS), metavar="C",
                   help=f"consumer model to compare (repeatable; default {', '.join(DEFAULT_CONSUMERS)}; "
                        f"known: {', '.join(CONSUMERS)})")
    p.add_argument("--symbol-list", action="append", default=[], metavar="FILE",
                   help="count only kABI changes of the symbols FILE lists (repeatable: their union): a Red Hat "
                        "kabi_stablelist, a libabigail or Android [abi_symbol_list], or one name a line; "
                        "see kABI policy")
    p.add_argument("--rules", action="append", default=[], metavar="FILE",
                   help="severity rules judging each kABI change (repeatable, in order: the first match wins): "
                        "suse-kabi-tools' [MODULE|NAMESPACE|SYMBOL] PATTERN PASS|FAIL, or Ubuntu's abi.ignore; "
                        "see kABI policy")
    p.add_argument("--report-unused-rules", action="store_true",
                   help="with --rules: say on stderr which rules matched no change, as ksymvers unused-rules does")
    p.add_argument("--format", choices=("text", "markdown", "json", "html", "junit", "sarif"), default="text",
                   help="output format (default %(default)s; junit and sarif: see CI formats)")
    p.add_argument("--modules", action="store_true",
                   help="text/markdown/html: list every changed module in full and every row of every table")
    p.add_argument("-j", "--jobs", type=int, default=None, help="parallel workers (default: all cores)")
    add_cache_option(p)
    p.set_defaults(run=run)


#: The diff's long lists, written one element per line by --format json (output.json_pieces).
DIFF_ROWS = (("modules", "changed"), ("modules", "added"), ("modules", "removed"), ("kabi", "changes"),
             ("kabi", "groups"), ("kabi", "by_exporter"))


class _Result:
    """A diff as --format json prints it (``text``), its exit status, and the document, read from the text
    only when a rendering needs it (a finished diff from the cache is printed as it was stored)."""

    def __init__(self, text: str, exit_code: int, doc: dict | None = None):
        self.text = text
        self.exit_code = exit_code
        self._doc = doc

    @classmethod
    def of(cls, doc: dict) -> _Result:
        return cls("".join(json_pieces(doc, 1, DIFF_ROWS)), doc["status"]["exit_code"], doc)

    @property
    def doc(self) -> dict:
        if self._doc is None:
            self._doc = json.loads(self.text)
        return self._doc


def run(args) -> int:
    try:
        policy = _policy(args)
        with ExitStack() as stack:
            result = _diff(args, stack, policy)
    except _Fail as e:
        print(f"kmodcompat: {shown(e)}", file=sys.stderr)
        return e.status
    if args.report_unused_rules:
        _unused_rules(result.doc)
    if args.format == "json":
        sys.stdout.write(result.text)
        sys.stdout.write("\n")
        return result.exit_code
    doc = result.doc
    if args.format in ("junit", "sarif"):
        from ..report import ci, junit, sarif

        sys.stdout.write((junit if args.format == "junit" else sarif).render(ci.diff_cases(doc)))
    else:
        if args.format == "text":
            text = diff_render.text(doc, args.modules, width=columns())
        else:
            text = diff_render.RENDERERS[args.format](doc, args.modules)
        sys.stdout.write(_painted(text, doc["status"]["exit_code"]) if args.format == "text" else text)
    return result.exit_code


def _painted(text: str, status: int) -> str:
    """The text rendering with its verdicts in colour (when colour is on: cli/terminal.py)."""
    if not colour_on():
        return text
    kind = "bad" if status & EXIT_INCOMPATIBLE else "warn" if status & EXIT_CHANGE else "good"
    lines = text.split("\n")
    for i, line in enumerate(lines):
        if line.startswith(("Incompatible (exit status", "Compatible changes only (exit status", "No difference.",
                            "Nothing the kABI policy fails (exit status")):
            lines[i] = paint(line, kind)
        elif " — INCOMPATIBLE" in line:
            lines[i] = line.replace(" — INCOMPATIBLE", " — " + paint("INCOMPATIBLE", "bad"))
    return "\n".join(lines)


def _policy(args) -> KabiPolicy | None:
    """The symbol lists and rules, read before any tree: a bad line ends the run at once."""
    if args.report_unused_rules and not args.rules:
        raise _Fail("--report-unused-rules needs --rules FILE", EXIT_USAGE)
    if not args.symbol_list and not args.rules:
        return None
    for f in args.symbol_list:  # the one format whose lines a plain list shares, with the opposite meaning
        if os.path.basename(f) == "abi.ignore":
            raise _Fail(f"{f}: an Ubuntu abi.ignore excuses the names it lists: give it to --rules", EXIT_USAGE)
    try:
        policy = KabiPolicy(tuple(read_symbol_list(f) for f in args.symbol_list),
                            tuple(r for f in args.rules for r in read_rules(f)))
        check_wildcards(policy.symbol_lists, policy.rules)
        return policy
    except (KabiListError, InputFileError) as e:
        raise _Fail(str(e), EXIT_USAGE) from None


def _unused_rules(doc: dict) -> None:
    """ksymvers unused-rules' lines ("FILE:LINE: WARNING: Severity rule 'TYPE PATTERN VERDICT' is unused"),
    on stderr, for the rules that decided no change; whether the rule matches any export at all, after."""
    rules = doc["policy"]["rules"]
    for i in doc["policy"]["unused_rules"]:
        r = rules[i]
        also = (f"the first match of {r['exports']} export(s) of either side" if r["exports"]
                else "matches no export of either side")
        print(shown(f"{r['path']}:{r['line']}: WARNING: Severity rule '{r['text']}' is unused (matched no change; "
                    f"{also})"), file=sys.stderr)


def _diff(args, stack: ExitStack, policy: KabiPolicy | None = None) -> _Result:
    consumers = tuple(args.consumer or DEFAULT_CONSUMERS)
    if not args.basedir and not args.old_set and not args.new_set and (_is_symvers(args.old) or
                                                                       _is_symvers(args.new)):
        return _diff_symvers(args, consumers, stack, policy)
    old, new = _operands(args, stack)
    kind = lambda op: "module" if isinstance(op, ModuleFiles) else "tree"  # noqa: E731
    if kind(old) != kind(new):
        raise _Fail(f"{old.label} is a {kind(old)} but {new.label} is a {kind(new)}: compare like with like",
                    EXIT_USAGE)
    if isinstance(old, ModuleFiles) and isinstance(new, ModuleFiles):
        if args.old_symvers or args.new_symvers or args.old_kernel_image or args.new_kernel_image:
            raise _Fail("--old-symvers/--new-symvers/--old-kernel-image/--new-kernel-image apply to trees only",
                        EXIT_USAGE)
        if len(old.paths) != 1 or len(new.paths) != 1:
            raise _Fail("one module file on each side", EXIT_USAGE)
        recs = []
        for files in (old, new):
            try:
                recs.append(parse_module(files.paths[0]))
            except ModuleReadError as e:
                raise _Fail(str(e), EXIT_ERROR) from None
        # Two files: their paths differ by nature, not compared.
        return _Result.of(to_json(diff_modules(recs[0], recs[1], consumers, policy=policy), old.label, new.label))
    assert isinstance(old, TreeOperand) and isinstance(new, TreeOperand)
    check_files(args.old_kernel_image, args.new_kernel_image)  # before the trees are read, as the symvers below
    old_symvers, new_symvers = _symvers(args.old_symvers, stack), _symvers(args.new_symvers, stack)
    # The surveys first (no module read): the modules are parsed only when no finished diff of exactly
    # these inputs is in the cache (the report's rule: cli/report.py).
    surveys = [load(op, parse=False) for op in (old, new)]
    for op, t in zip((old, new), surveys):
        check_tree(op, t)
    # Unpacked packages live in a temporary root: nothing is cached under its paths (inputs.tree_cache).
    opened = open_cache(args) if old.packages is None or new.packages is None else None
    side_caches = [opened if op.packages is None else None for op in (old, new)]
    cache = opened if None not in side_caches else None
    key = None
    if cache is not None:
        sides = [tree_inputs(t, named, None, image) for t, named, image in
                 zip(surveys, (args.old_symvers, args.new_symvers), (args.old_kernel_image, args.new_kernel_image))]
        policy_files = [*args.symbol_list, *args.rules] if policy is not None else []
        key = input_key(("diff", consumers, repr(policy), sides[0][0], sides[1][0]),
                        sides[0][1] + sides[1][1] + policy_files)
    held = cache.get_report(key) if key is not None and cache is not None else None
    if held is not None:  # a header line (what it printed on stderr, its status), then the document
        first, _, text = held.partition("\n")
        stored = json.loads(first)
        for line in stored["errors"]:
            print(line, file=sys.stderr)
        for line in stored["notes"]:
            note(line)
        return _Result(text, stored["exit_code"])
    trees = []
    errors: list[str] = []
    with gc_paused():  # the records, frozen once read (cli/report.py)
        for op, t, tag, side_cache in zip((old, new), surveys, ("old", "new"), side_caches):
            trees.append(parse_tree(t, jobs=args.jobs, progress=progress(f"reading {tag} tree"), cache=side_cache))
            errors += failure_lines((m.error for m in trees[-1].failures), op)
        gc.freeze()
    for line in errors:
        print(line, file=sys.stderr)
    try:
        d = diff_trees(trees[0], trees[1], consumers, old_symvers=old_symvers,
                       new_symvers=new_symvers, old_label=old.label, new_label=new.label,
                       old_image=args.old_kernel_image, new_image=args.new_kernel_image, jobs=args.jobs,
                       progress=progress, policy=policy)
    except KernelSourceError as e:
        raise _Fail(str(e), EXIT_ERROR) from None
    notes = []
    for tag, side, op in (("old", d.old, old), ("new", d.new, new)):
        assert side.kernel_exports is not None  # diff_trees() always says where the kernel's exports came from
        notes.append(f"kmodcompat: {tag}: {op.display(side.kernel_exports)}")
    for line in notes:
        note(line)
    doc = to_json(d)
    # Packages: the temporary roots' paths written as the packages' names.
    result = _Result(old.display(new.display("".join(json_pieces(doc, 1, DIFF_ROWS)))), doc["status"]["exit_code"])
    if key is not None and cache is not None:
        header = {"errors": errors, "notes": notes, "exit_code": result.exit_code}
        cache.put_report(key, f"{json.dumps(header)}\n{result.text}")
    return result


def _is_symvers(path: str | None) -> bool:
    """A Module.symvers operand: a file named like one (Module.symvers, symvers-KVER.gz, *.symvers)."""
    return path is not None and "symvers" in os.path.basename(path).lower() and os.path.isfile(path) \
        and not packages.is_package(path)


def _diff_symvers(args, consumers, stack: ExitStack, policy: KabiPolicy | None) -> _Result:
    """A Module.symvers against a Module.symvers, a tree or packages (either way round): the kABI alone."""
    if args.old_symvers or args.new_symvers:
        raise _Fail("--old-symvers/--new-symvers: the Module.symvers is an operand already", EXIT_USAGE)
    sides: list[Symvers | ModuleTree] = []
    ops: list[TreeOperand | None] = []
    for path, tag in ((args.old, "old"), (args.new, "new")):
        if _is_symvers(path):
            try:
                sides.append(read_symvers(path, gunzip=path.endswith(".gz")))
            except InputFileError as e:
                raise _Fail(str(e), EXIT_USAGE) from None
            ops.append(None)
            continue
        op = resolve([path], None, stack)
        tree = load(op, jobs=args.jobs, progress=progress(f"reading {tag} tree"), cache=tree_cache(op, args))
        check_tree(op, tree)
        report_failures((m.error for m in tree.failures), op)
        sides.append(tree)
        ops.append(op)
    labels = [op.label if op is not None else path for op, path in zip(ops, (args.old, args.new))]
    doc = json.dumps(to_json(diff_export_sides(sides[0], sides[1], consumers, old_label=labels[0],
                                               new_label=labels[1], policy=policy)))
    for named in ops:
        if named is not None:
            doc = named.display(doc)
    return _Result.of(json.loads(doc))


def _operands(args, stack: ExitStack) -> tuple[TreeOperand | ModuleFiles, TreeOperand | ModuleFiles]:
    bases = args.basedir or [None]
    if len(bases) > 2:
        raise _Fail("-b BASEDIR is given once (both trees) or twice (OLD then NEW)", EXIT_USAGE)
    if args.old_set or args.new_set:
        if args.old is not None or not (args.old_set and args.new_set):
            raise _Fail("--old and --new go together, without OLD NEW operands", EXIT_USAGE)
        sides = args.old_set, args.new_set
    elif args.new is None:
        raise _Fail("two operands, OLD and NEW (or --old ... --new ...)", EXIT_USAGE)
    else:
        sides = [args.old], [args.new]
    return (resolve(sides[0], bases[0], stack, modules=True), resolve(sides[1], bases[-1], stack, modules=True))


def _symvers(path: str | None, stack: ExitStack) -> str | None:
    """A Module.symvers path; from a linux-headers package, the one it carries."""
    if path is None:
        return None
    if not os.path.isfile(path):
        raise _Fail(f"{path}: no such file", EXIT_USAGE)
    if not packages.is_package(path):
        return path
    try:
        pset = packages.unpack([path], stack)
    except packages.PackageError as e:
        raise _Fail(str(e), EXIT_ERROR) from None
    found = sorted(glob.glob(os.path.join(glob.escape(pset.root), "usr", "src", "*", "Module.symvers")))
    if not found:
        raise _Fail(f"{path}: no usr/src/*/Module.symvers in this package", EXIT_ERROR)
    return found[0]
