"""What the CI formats list, gathered once from a report or diff document: one case per module or change.

:mod:`.junit` writes the cases as JUnit XML test cases, :mod:`.sarif` as SARIF
results; both read nothing but what :func:`report_cases` and :func:`diff_cases`
give, which read nothing but the documents (``schema.json``, ``diff-schema.json``)
and the gate computed beside them (:mod:`.policy` for ``report --fail-on``, the
diff document's ``breaks`` flags and ``status``). So a case fails exactly when
what it stands for counts towards the exit status.

A report gives one case per module checked (passing ones too), failing for
each --fail-on term the module trips, and one case per policy term (failing
with the figure :func:`.policy.evaluate` prints). A diff gives one case per
kABI change (failing when it counts as a break), per changed or newly
unreadable module (failing when it breaks) and per new dependency cycle or
newly unresolved import.
"""

from __future__ import annotations

from typing import NamedTuple
from urllib.parse import quote

from .policy import Term, advisory_terms, outcomes, tree_relative

#: Where a finding that no module file carries is placed (a term on a simulated format, an unlisted rest,
#: a cycle or unresolved import of modules the document gives no path for): the tree's own index, the
#: file depmod writes for the tree as a whole. GitHub code scanning rejects a result without a file.
TREE_FILE = "modules.dep"


class Finding(NamedTuple):
    """One reason a case fails (``gating``: it counts towards the exit status) or is warned about."""

    rule: str  # a --fail-on term ("lost:kmod34", "findings:CODE") or a diff change kind ("kabi:crc")
    message: str
    gating: bool


class Case(NamedTuple):
    """One test case / result subject: a module, a kABI change, a policy term, a dependency change."""

    suite: str  # "modules" | "policy" | "kabi" | "dependencies"
    name: str
    classname: str
    path: str | None  # the file, relative to the root ``base`` names (None: the tree as a whole)
    base: str  # "TREE" (a report), "OLD" or "NEW" (a diff)
    findings: tuple[Finding, ...]
    details: str = ""  # more lines about it (the failure's text, beside the message)
    covered: bool = False  # what it says, other cases say module by module (a policy term): no SARIF result

    @property
    def failing(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.gating)


class Root(NamedTuple):
    """A root the cases' paths are relative to: ``path`` the module directory (or file) as the document
    gives it, ``label`` what the user named."""

    id: str
    path: str
    label: str


class Cases(NamedTuple):
    tool: str  # "report" | "diff"
    title: str
    roots: tuple[Root, ...]
    cases: tuple[Case, ...]
    rules: dict[str, str]  # rule id → what it means, every rule a finding or the policy names
    gating_rules: frozenset[str]
    exit_code: int
    properties: tuple[tuple[str, str], ...]


# -- report --------------------------------------------------------------------------------------------

def report_cases(doc: dict, policy: list[Term], policy_text: str, exit_code: int) -> Cases:
    """The cases of a report under ``policy`` (``policy_text``: as given to --fail-on)."""
    gated = outcomes(policy, doc)
    advised = outcomes(advisory_terms(policy, doc), doc)
    # One case per module checked, in the report's order: the parsed ones, then the unreadable ones.
    per_path: dict[str, list[Finding]] = {m["path"]: [] for m in doc["consumers"]["per_module"]}
    for u in doc["unreadable"]:
        if u["code"] != "skipped":
            per_path.setdefault(tree_relative(u["path"], doc), [])
    named_only: dict[str, list[Finding]] = {}  # modules the document names without a path
    seen: set[tuple[str, str, str]] = set()
    for group, gating in ((gated, True), (advised, False)):
        for o in group:
            for h in o.hits:
                key = (h.path or h.module, h.rule, h.reason)
                if key not in seen:
                    seen.add(key)
                    into = per_path if h.path is not None else named_only
                    into.setdefault(h.path or h.module, []).append(Finding(h.rule, h.reason, gating))
    cases = [Case("modules", p, "kmodcompat.report.modules", p, "TREE", tuple(fs)) for p, fs in per_path.items()]
    cases += [Case("modules", m, "kmodcompat.report.modules", None, "TREE", tuple(fs)) for m, fs in named_only.items()]
    rules: dict[str, str] = {}
    gating_rules: set[str] = set()
    for group, gating in ((gated, True), (advised, False)):
        for o in group:
            if gating or o.hits:  # the policy's terms, and the others that found something
                rules.setdefault(o.term.text, _term_meaning(o.term))
            for h in o.hits:
                rules.setdefault(h.rule, _term_meaning(o.term, h.rule))
            if gating:
                gating_rules.add(o.term.text)
                gating_rules.update(h.rule for h in o.hits)
    for o in gated:
        findings: tuple[Finding, ...] = ()
        details = f"listed per module: {len(o.hits)}" + (f"; not listed per module: {o.unlisted}"
                                                                if o.unlisted else "")
        if o.broken:
            rest = "" if not o.unlisted else (" (tree-wide: the report counts simulated formats as totals)"
                                              if o.term.fmt else f" ({o.unlisted} not listed per module)")
            findings = (Finding(o.term.text, o.broken + rest, True),)
        cases.append(Case("policy", o.term.text, "kmodcompat.report.policy", None, "TREE", findings, details,
                          covered=not o.unlisted))
    tree = doc["tree"]
    return Cases("report", f"kmodcompat report {tree['kernel_release']}",
                 (Root("TREE", tree["path"], tree["path"]),), tuple(cases), rules, frozenset(gating_rules),
                 exit_code, (("fail-on", policy_text), ("tree", tree["path"]),
                             ("kernel_release", tree["kernel_release"] or ""),
                             ("kernel_exports", tree["kernel_exports"]["line"])))


_KIND_MEANINGS = {
    "unreadable": "a module that cannot be read",
    "lost": "{arg} does not see some import version the module records",
    "false-warnings": "{arg} prints a false 'disagrees about version of symbol' warning",
    "refuses": "{arg} refuses to load the module",
    "unresolved": "an import that neither a module nor the kernel exports",
    "cycles": "the module is in a dependency cycle",
    "findings": "a malformed version table",
    "long-names": "a symbol name too long for a BASIC-only build (modpost: too long symbol){which}",
    "none": "never fails",
}


def _term_meaning(term: Term, rule: str | None = None) -> str:
    which = {"c": " (C names)", "rust": " (Rust names)"}.get(term.arg or "", "")
    text = _KIND_MEANINGS[term.kind].format(arg=term.arg, which=which)
    if rule is not None and rule != term.text and rule.startswith("findings:"):
        return f"{text} (finding {rule.partition(':')[2]})"
    return text + (f", if the tree were built {term.fmt}" if term.fmt else "")


# -- diff ----------------------------------------------------------------------------------------------

#: A kABI change's rule: the change kind (diff/results.py ExportChange.kind); its message says which fields.
_KABI_RULES = {
    "kabi:removed": "an export removed: old builds of its importers no longer load",
    "kabi:changed": "an export's CRC, GPL-only flag, namespace or owner changed: old builds of its importers "
                    "may be refused (a CRC where CRCs are checked, GPL-only for non-GPL modules, a namespace not "
                    "imported)",
    "kabi:added": "an export added",
}
_DIFF_RULES = {
    **_KABI_RULES,
    "module:breaks": "a consumer's verdict on the module falls (refuses, unreadable, a false mismatch)",
    "module:unreadable": "a module that became unreadable",
    "dependencies:cycle": "a new dependency cycle",
    "dependencies:unresolved": "an import that no longer resolves",
    "dependencies:weak-unresolved": "a weak import that no longer resolves (never a break)",
}


def diff_cases(doc: dict) -> Cases:
    """The cases of a diff document (``kmodcompat diff --format json``)."""
    # A tree side's paths are relative to its module directory; a module file or Module.symvers operand is
    # named as given (relative to where the diff ran, or absolute): no directory to resolve them against.
    roots = tuple(Root(tag.upper(), doc[tag]["path"] if _is_tree(doc, tag) else "", doc[tag]["label"])
                  for tag in ("old", "new"))
    mods = doc["modules"]
    new_paths = {m["name"]: m["new_path"] for m in mods["changed"]}
    new_paths.update((m["name"], m["path"]) for m in mods["added"])
    new_paths.update((m["name"], m["path"]) for m in mods["became_unreadable"])
    old_paths = {m["name"]: m["old_path"] for m in mods["changed"]}
    old_paths.update((m["name"], m["path"]) for m in mods["removed"])
    cases: list[Case] = []
    changes = doc["kabi"]["changes"] if doc["kabi"] is not None else [
        x for m in mods["changed"] for x in m["exports"]]
    for c in changes:
        side = "old" if c["kind"] == "removed" else "new"
        info = c[side]
        rule = f"kabi:{c['kind']}"
        path = _exporter_file(doc, side, info["exporter"], new_paths if side == "new" else old_paths)
        message = _kabi_message(c)
        cases.append(Case("kabi", c["name"], f"kmodcompat.kabi.{info['exporter']}", path, side.upper(),
                          (Finding(rule, message, c["breaks"]),), _kabi_details(c)))
    breaks = {b["module"]: b for b in doc["breaks"]}
    for m in mods["changed"]:
        b = breaks.pop(m["name"], None)  # a module that changed without breaking: a passing case, no finding
        cases.append(Case("modules", m["name"], "kmodcompat.diff.modules", m["new_path"], "NEW",
                          (Finding("module:breaks", b["why"], True),) if b else (), _changed(m)))
    for name, b in breaks.items():  # became unreadable (or a break the changed list does not hold)
        rule = "module:unreadable" if b["why"].startswith("became unreadable") else "module:breaks"
        cases.append(Case("modules", name, "kmodcompat.diff.modules", b["path"], "NEW", (Finding(rule, b["why"], True),)))
    d = doc["dependencies"]
    if d is not None:
        for cycle in d["new_cycles"]:
            text = " → ".join([*cycle, cycle[0]])
            cases.append(Case("dependencies", f"cycle {text}", "kmodcompat.diff.dependencies",
                              new_paths.get(cycle[0]), "NEW",
                              (Finding("dependencies:cycle", f"new dependency cycle: {text}", d["counted"]),)))
        for u in d["newly_unresolved"]:
            rule = "dependencies:weak-unresolved" if u["weak"] else "dependencies:unresolved"
            cases.append(Case("dependencies", f"{u['module']}: {u['symbol']}", "kmodcompat.diff.dependencies",
                              new_paths.get(u["module"]), "NEW",
                              (Finding(rule, f"{u['module']}: {'weak ' if u['weak'] else ''}import {u['symbol']} "
                                             "no longer resolves", d["counted"] and not u["weak"]),)))
    used = {f.rule for c in cases for f in c.findings}
    gating = frozenset(f.rule for c in cases for f in c.findings if f.gating)
    return Cases("diff", f"kmodcompat diff {doc['old']['label']} {doc['new']['label']}", roots, tuple(cases),
                 {r: t for r, t in _DIFF_RULES.items() if r in used}, gating, doc["status"]["exit_code"],
                 (("old", doc["old"]["label"]), ("new", doc["new"]["label"]),
                  ("reasons", "; ".join(doc["status"]["reasons"])))
                 + ((("kabi-policy", doc["policy"]["summary"]),) if doc["policy"] is not None else ()))


def _exporter_file(doc: dict, side: str, exporter: str, paths: dict[str, str]) -> str | None:
    """The file an export comes from: its module's, or for the kernel's (and a Module.symvers side's) the
    Module.symvers or boot image it was read from, relative to the side's root when inside it."""
    s = doc[side]
    if not _is_tree(doc, side):  # a Module.symvers operand: every export is its line
        return s["path"]
    if exporter in paths:
        return paths[exporter]
    if exporter == "vmlinux":
        f = s["symvers"] or s["kernel_image"]
        if f is not None:
            return f
    return None


def _is_tree(doc: dict, side: str) -> bool:
    s = doc[side]
    return doc["kind"] != "modules" and not (s["symvers"] is not None and s["symvers"] == s["path"])


def _crc(v: int | None) -> str:
    return "-" if v is None else f"0x{v:08x}"


def _kabi_message(c: dict) -> str:
    name, old, new = c["name"], c["old"], c["new"]
    if c["kind"] == "added":
        text = f"export {name} added"
    elif c["kind"] == "removed":
        text = f"export {name} removed from {old['exporter']}"
    else:
        parts = []
        if "crc" in c["fields"]:
            parts.append(f"CRC {_crc(old['crc'])} → {_crc(new['crc'])}")
        if "gpl_only" in c["fields"]:
            parts.append("made GPL-only" if new["gpl_only"] else "no longer GPL-only")
        if "namespace" in c["fields"]:
            parts.append(f"namespace {old['namespace'] or '-'} → {new['namespace'] or '-'}")
        if "exporter" in c["fields"]:
            parts.append(f"moved {old['exporter']} → {new['exporter']}")
        text = f"export {name} changed: " + ", ".join(parts)
    v = c["policy"]
    if c["old_builds_failing"]:
        text += f"; breaks the old builds of {_names(c['old_builds_failing'])}"
    if c["incompatible"] and not c["breaks"]:
        text += (f" (not counted: the kABI policy excuses it, {v['why']})" if v is not None and not v["counts"]
                 else " (not counted: the trees differ as a whole, see the diff's notes)")
    elif c["breaks"] and v is not None:
        text += f" (counted by the kABI policy: {v['why']})"
    return text


def _kabi_details(c: dict) -> str:
    lines = [f"exporter: {(c['new'] or c['old'])['exporter']}"]
    for key, what in (("importers", "importers"), ("old_builds_failing", "old builds failing"),
                      ("failing_now", "failing as shipped")):
        if c[key]:
            lines.append(f"{what} ({len(c[key])}): {', '.join(c[key])}")
    return "\n".join(lines)


def _names(names: list[str], limit: int = 8) -> str:
    return ", ".join(names[:limit]) + (f" and {len(names) - limit} more" if len(names) > limit else "")


def _changed(m: dict) -> str:
    what = [k for k, v in (("attributes", m["attributes"]), ("sections", m["sections"]),
                           ("version entries", m["versions"]["entries"]), ("modinfo", m["modinfo"]),
                           ("imports", m["imports"]["added"] or m["imports"]["removed"]),
                           ("exports", m["exports"]), ("consumer readings", m["consumers"])) if v]
    return "changed: " + (", ".join(what) or "nothing the consumers mind")


# -- shared by the writers ------------------------------------------------------------------------------

def clean(text: str, newlines: bool = False) -> str:
    """``text`` with what a CI file cannot carry or a terminal should not show escaped as ``\\xNN``: control
    characters (XML 1.0 forbids C0 controls even as character references), DEL, C1, Unicode format and
    separator characters, the bytes of a non-UTF-8 name (surrogateescape). ``newlines``: keep line breaks
    and tabs (a failure's text)."""
    if text.isprintable():
        return text
    out = []
    for ch in text:
        if ch.isprintable() or (newlines and ch in "\n\t"):
            out.append(ch)
        elif 0xDC80 <= ord(ch) <= 0xDCFF:
            out.append(f"\\x{ord(ch) - 0xDC00:02x}")
        elif 0xD800 <= ord(ch) <= 0xDFFF:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append("".join(f"\\x{b:02x}" for b in ch.encode("utf-8")))
    return "".join(out)


def uri(path: str) -> str:
    """A path as a URI reference (RFC 3986): relative stays relative, each byte outside the unreserved and
    path characters percent-encoded (a non-UTF-8 name by its own bytes); an absolute path as a file: URI."""
    encoded = quote(path.encode("utf-8", "surrogateescape"), safe="/-._~!$&'()*+,;=@")  # ':' too: "a:b.ko" is no scheme
    if path.startswith("/"):
        return "file://" + encoded
    return encoded.removeprefix("./") if not encoded.startswith(".//") else encoded
