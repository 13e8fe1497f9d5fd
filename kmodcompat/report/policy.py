"""``report --fail-on``: the policy terms, what a report document breaks of them, and which module breaks each.

One home for the gate: :func:`evaluate` gives the tree-wide lines ``report``
prints and exits 1 on; :func:`outcomes` gives the same verdicts with the
modules behind each (what ``--format junit`` and ``--format sarif`` list, one
test case or result per module). Both read nothing but the report document
(``schema.json``), so the CI files and the exit status cannot disagree.

Per module where the document is per module: a consumer's losses and false
warnings (``consumers.per_module[].counts``, kept for every module), its
verdict, the unreadable modules, the cycles; the unresolved imports and the
findings as far as the document lists them (``graph.unresolved.by_module``,
``findings.items`` are bounded): the rest is counted as ``unlisted``. A term
on a simulated format (``@FORMAT``) is tree-wide only: the report keeps
simulated formats as totals.
"""

from __future__ import annotations

import os
from typing import NamedTuple

from ..consumers import CONSUMERS, DEFAULT_KMOD_CONSUMER
from ..records import path_to_modname
from ..simulate import FORMATS

#: The terms --fail-on takes, in the order its help lists them.
KINDS = ("unreadable", "lost", "false-warnings", "refuses", "unresolved", "cycles", "findings", "long-names", "none")
#: long-names' argument: which names count (kmodcompat.rust.is_rust tells them apart).
LONG_NAME_KINDS = ("c", "rust")


class Term(NamedTuple):
    """One --fail-on term: ``lost:kmod34@ext-only`` is ("lost", "kmod34", "ext-only")."""

    kind: str
    arg: str | None
    fmt: str | None

    @property
    def text(self) -> str:
        """The term as --fail-on spells it (its canonical form: false-warnings names its consumer)."""
        return self.kind + (f":{self.arg}" if self.arg else "") + (f"@{self.fmt}" if self.fmt else "")


class Hit(NamedTuple):
    """One module that trips a term: its path as the report gives it (relative to the module directory;
    None when the report names the module only and holds no path for it), the rule it trips (the term's
    text; ``findings:CODE`` for a finding) and why, in one line."""

    path: str | None
    module: str
    rule: str
    reason: str


class Outcome(NamedTuple):
    """What one term makes of a report: ``broken`` the line :func:`evaluate` gives (None: not tripped),
    ``hits`` the modules behind it, ``unlisted`` how much of its figure no listed module carries (a
    bounded list in the document, or a simulated format: tree-wide only)."""

    term: Term
    broken: str | None
    hits: tuple[Hit, ...]
    unlisted: int


def parse_policy(text: str) -> list[Term]:
    """The terms of a --fail-on value; raises ValueError naming a bad term."""
    terms = []
    for raw_term in text.split(","):
        term = raw_term.strip()
        if not term:
            continue
        body, _, fmt = term.partition("@")
        kind, _, arg = body.partition(":")
        if fmt and fmt not in FORMATS:
            raise ValueError(f"{term}: unknown format {fmt!r} (one of {', '.join(FORMATS)})")
        if kind in ("lost", "refuses") and arg not in CONSUMERS:
            raise ValueError(f"{term}: needs a consumer (one of {', '.join(CONSUMERS)})")
        if kind == "false-warnings":
            arg = arg or DEFAULT_KMOD_CONSUMER.id
            if arg not in CONSUMERS:
                raise ValueError(f"{term}: unknown consumer {arg!r}")
        elif kind in ("unreadable", "unresolved", "cycles", "none") and (arg or fmt):
            raise ValueError(f"{term}: takes no argument")
        elif kind == "long-names" and (fmt or arg not in ("", *LONG_NAME_KINDS)):
            raise ValueError(f"{term}: takes c, rust or nothing, no format")
        elif kind not in KINDS:
            raise ValueError(f"{term}: unknown term")
        terms.append(Term(kind, arg or None, fmt or None))
    return terms


def evaluate(policy: list[Term], doc: dict) -> list[str]:
    """The policy terms the report breaks, with the figure that breaks each."""
    return [o.broken for o in outcomes(policy, doc) if o.broken]


def outcomes(policy: list[Term], doc: dict) -> list[Outcome]:
    """Each term's verdict on the report ``doc`` and the modules that trip it."""
    paths = _paths_by_name(doc)
    return [_outcome(Term(*t), doc, paths) for t in policy]


def advisory_terms(policy: list[Term], doc: dict) -> list[Term]:
    """What the report shows a problem of that ``policy`` does not gate on: the as-built terms of the
    consumers that matter for this tree (``summary.consumers_for_tree``) and the tree-wide kinds. The CI
    formats list their hits as warnings, the policy's as errors."""
    gated = {Term(*t) for t in policy}
    every_finding = any(t.kind == "findings" and t.arg is None for t in gated)
    out = [Term("unreadable", None, None)]
    for c in doc["summary"].get("consumers_for_tree", []):
        out += [Term("lost", c, None), Term("false-warnings", c, None)]
        if c in CONSUMERS and CONSUMERS[c].kind == "kernel":  # only a loader refuses a module
            out.append(Term("refuses", c, None))
    out += [Term("unresolved", None, None), Term("cycles", None, None)]
    if not every_finding:
        out.append(Term("findings", None, None))
    return [t for t in out if t not in gated]


def _outcome(term: Term, doc: dict, paths: dict[str, str]) -> Outcome:
    kind, arg, fmt = term
    if kind == "none":
        return Outcome(term, None, (), 0)
    if kind == "unreadable":
        items = [u for u in doc["unreadable"] if u["code"] != "skipped"]
        hits = tuple(Hit(tree_relative(u["path"], doc), path_to_modname(u["path"]), term.text, f"unreadable: {u['reason']}")
                     for u in items)
        n = doc["counts"]["unreadable"]
        return Outcome(term, f"{n} unreadable module(s)" if n else None, hits, n - len(hits))
    if kind in ("lost", "false-warnings", "refuses"):
        return _consumer_outcome(term, doc)
    if kind == "unresolved":
        u = doc["graph"]["unresolved"]  # never the not checkable ones (kernel exports unknown)
        hits = tuple(Hit(paths.get(m["module"]), m["module"], term.text,
                         f"{m['count'] - m['weak']} unresolved import(s): " + ", ".join(m["symbols"])
                         + (" ..." if len(m["symbols"]) < m["count"] else ""))
                     for m in u["by_module"] if m["count"] > m["weak"])
        n = u["strong"]
        listed = sum(m["count"] - m["weak"] for m in u["by_module"])
        return Outcome(term, f"{n} unresolved import(s)" if n else None, hits, n - listed)
    if kind == "cycles":
        cycles = doc["graph"]["cycles"]
        hits = tuple(Hit(paths.get(m), m, term.text, "in a dependency cycle: " + " → ".join([*c, c[0]]))
                     for c in cycles for m in c)
        return Outcome(term, f"{len(cycles)} dependency cycle(s)" if cycles else None, hits, 0)
    if kind == "long-names":
        return _long_names_outcome(term, doc)
    assert kind == "findings"
    n = sum(v for k, v in doc["findings"]["by_code"].items() if arg is None or k == arg)
    hits = tuple(Hit(f["module"], path_to_modname(f["module"]), f"findings:{f['code']}", f"{f['code']}: {f['message']}")
                 for f in doc["findings"]["items"] if arg is None or f["code"] == arg)
    return Outcome(term, f"{n} finding(s){' ' + arg if arg else ''}" if n else None, hits, n - len(hits))


def _long_names_outcome(term: Term, doc: dict) -> Outcome:
    """The names a BASIC-only build stops on (report ``long_names``): each module exporting or importing
    one, vmlinux for its own exports (no file: the module name only)."""
    ln = doc["long_names"]
    pick = (lambda x: True) if term.arg is None else (lambda x: x["rust"] == (term.arg == "rust"))
    exports = [x for x in ln["exports"]["names"] if pick(x)]
    imports = [x for x in ln["imports"]["names"] if pick(x)]
    names = {x["name"] for x in exports} | {x["name"] for x in imports}
    if not names:
        return Outcome(term, None, (), 0)
    which = {None: "", "c": " C", "rust": " Rust"}[term.arg]
    broken = (f"{len(names)}{which} symbol name(s) of {ln['limit'] + 1}+ characters, too long for a BASIC-only build "
              f"({len(exports)} exported, {len(imports)} imported)")
    per: dict[tuple[str | None, str], tuple[list[str], list[str]]] = {}
    for x in exports:
        per.setdefault((x["path"], x["exporter"]), ([], []))[0].append(x["name"])
    unlisted = 0
    for x in imports:
        unlisted += x["importers"] - len(x["modules"])
        for path in x["modules"]:
            per.setdefault((path, path_to_modname(path)), ([], []))[1].append(x["name"])
    hits = []
    for (path, module), (exported, imported) in per.items():
        what = [f"{verb} {len(ns)} name(s) of {ln['limit'] + 1}+ characters: " + ", ".join(ns[:3])
                + (" ..." if len(ns) > 3 else "") for verb, ns in (("exports", exported), ("imports", imported)) if ns]
        hits.append(Hit(path, module, term.text, "; ".join(what)))
    return Outcome(term, broken, tuple(hits), unlisted)


def _consumer_outcome(term: Term, doc: dict) -> Outcome:
    kind, c, fmt = term
    assert c is not None
    totals = doc["simulation"].get(fmt, {}) if fmt else doc["consumers"]["totals"]
    t = totals.get(c, {})
    where = f" if built {fmt}" if fmt else ""
    if kind == "lost":
        n = t.get("lost", 0)
        broken = f"{c} loses {n} import version(s){where}" if n else None
    elif kind == "false-warnings":
        n = t.get("false_messages", 0)
        broken = f"{c}: {n} false warning(s){where}" if n else None
    else:
        n = t.get("verdicts", {}).get("refuses", 0)
        broken = f"{c} refuses {n} module(s){where}" if n else None
    if fmt:  # simulated formats: totals only
        return Outcome(term, broken, (), n)
    hits = []
    for m in doc["consumers"]["per_module"]:
        lost, _, false = m.get("counts", {}).get(c, (0, 0, 0))
        problem = m.get("problems", {}).get(c, {})
        if kind == "lost" and lost:
            names = problem.get("lost", [])
            reason = f"{c} loses {lost} import version(s)" + (": " + ", ".join(n or '""' for n in names) if names else "") \
                + (" ..." if 0 < len(names) < lost else "")
        elif kind == "false-warnings" and false:
            msgs = problem.get("false_messages", [])
            reason = f"{c}: {false} false warning(s)" + (f": {msgs[0]}" if msgs else "") \
                + (" ..." if false > 1 and msgs else "")
        elif kind == "refuses" and m["verdicts"].get(c) == "refuses":
            reason = f"{c} refuses it"
        else:
            continue
        hits.append(Hit(m["path"], path_to_modname(m["path"]), term.text, reason))
    counted = sum(1 for _ in hits) if kind == "refuses" else sum(
        m.get("counts", {}).get(c, (0, 0, 0))[0 if kind == "lost" else 2] for m in doc["consumers"]["per_module"])
    return Outcome(term, broken, tuple(hits), n - counted)


def tree_relative(path: str, doc: dict) -> str:
    """A path of the document relative to the module directory, as ``consumers.per_module`` gives them."""
    root = doc["tree"]["path"]
    return os.path.relpath(path, root) if path.startswith(root.rstrip("/") + "/") else path


def _paths_by_name(doc: dict) -> dict[str, str]:
    """Module name → its path, for the parts of the document that name modules only (graph facts)."""
    out = {path_to_modname(u["path"]): tree_relative(u["path"], doc) for u in doc["unreadable"] if u["code"] != "skipped"}
    out.update((path_to_modname(m["path"]), m["path"]) for m in doc["consumers"]["per_module"])
    return out
