"""The report as Markdown, for code reviews and mailing lists. Reads only the report dict.

Every value that comes from the tree (paths, module and symbol names, kernel
release, reasons) goes through :func:`text` or :func:`code`: on one line, with
what Markdown (CommonMark, GitHub's tables) would read as markup escaped, so a
module named ``<img src=x onerror=...>`` or ``a|b`` is shown as its name, not
run as HTML or split into table cells.
"""

from __future__ import annotations

import re

from tabulate import tabulate

from ..cli.output import shown
from ..records import ModversionsFormat as Fmt
from ..consumers import title as consumer_title
from .summary import not_applicable

FORMAT_TITLES: dict[str, str] = {Fmt.NONE: "no versions", Fmt.BASIC: "basic (__versions)", Fmt.BASIC_EXT: "basic + extended",
                                 Fmt.EXT_ONLY: "extended only", Fmt.VARLEN: "variable-length (rejected 2023)",
                                 Fmt.HASHED: "hashed long names (2024 RFC)"}


#: Characters escaped wherever they are: a backslash (else it escapes what follows), backticks
#: (code spans), '|' (table cells; GFM honours "\\|" inside code spans too), '<' '>' (raw HTML,
#: autolinks), '&' (entity references), '[' ']' (links and images).
_INLINE = re.compile(r"[\\`|<>&\[\]]")
#: What opens a block at the start of a line (CommonMark): an ATX heading, a list item marker,
#: a thematic break. A value only starts a line in a list item or cell of its own, but costs nothing.
_LEADING = re.compile(r"^(?:#{1,6}|[-+*]|\d{1,9}[.)])(?=[ \t]|$)|^(?:[-_*][ \t]*){3,}$")


#: Names listed per kind (exports, imports) in the Markdown; report.json lists them all.
LONG_NAMES_LISTED = 20


def long_names_summary(ln: dict) -> str:
    """One plain line: none over the limit, or the counts of the names a BASIC-only build stops on."""
    e, i = ln["exports"], ln["imports"]
    if not e["total"] and not i["total"]:
        vmlinux = "" if ln["kernel_exports_known"] else " (vmlinux's exports unknown)"
        return (f"No exported or imported symbol name over {ln['limit']} characters{vmlinux}: a BASIC-only "
                "build has none to refuse.")
    return (f"Names of {ln['limit'] + 1}+ characters stop a BASIC-only build (modpost: too long symbol): "
            f"{e['total']} exported ({e['c']} C, {e['rust']} Rust), {i['total']} imported ({i['c']} C, "
            f"{i['rust']} Rust) by {i['modules']} module(s)"
            + ("" if ln["kernel_exports_known"] else "; vmlinux's exports unknown") + ".")


def long_names_rows(part: dict, limit: int) -> list[tuple[int, str, str, str, str]]:
    """(length, C or Rust, name, demangled or "", by whom) of the first ``limit`` names of
    ``long_names.exports|imports``."""
    return [(x["length"], "Rust" if x["rust"] else "C", x["name"], x["demangled"] if x["demangled"] != x["name"] else "",
             x["exporter"] if "exporter" in x else f"{x['importers']} module(s)") for x in part["names"][:limit]]


def ksym_requires_line(k: dict) -> str:
    """What the RPM requirement generators make of the tree as one package, and what they drop."""
    return ("RPM requirements (find-requires.ksyms, the tree as one package): "
            + "; ".join(f"{who} {k[style]['requires']:,}, {k[style]['dropped']:,} dropped"
                        for style, who in (("suse", "SUSE"), ("redhat", "Red Hat")))
            + " (the imports only the extended tables carry: --dump-modversions does not print them).")


def long_names_lines(ln: dict) -> list[str]:
    """The names a BASIC-only build stops on: one plain line when there is none, else the counts (C and
    Rust apart) and the first LONG_NAMES_LISTED names of each kind."""
    e, i = ln["exports"], ln["imports"]
    out = [long_names_summary(ln)]
    for kind, part in (("exported", e), ("imported", i)):
        if part["names"]:
            rows = [[n, lang, code(name, True), text(readable), text(by)] for n, lang, name, readable, by in
                    long_names_rows(part, LONG_NAMES_LISTED)]
            out += ["", tabulate(rows, headers=["length", "", kind, "demangled", "by"], tablefmt="pipe",
                                 disable_numparse=[1, 2, 3, 4])]
            if part["total"] > LONG_NAMES_LISTED:
                out += ["", f"... and {part['total'] - LONG_NAMES_LISTED} more in report.json (`long_names`)."]
    return out


def text(value: object) -> str:
    """A value from the tree as Markdown text that renders as exactly that value."""
    s = _INLINE.sub(r"\\\g<0>", shown(value))
    if not _LEADING.match(s):
        return s
    digits = len(s) - len(s.lstrip("0123456789"))  # "12. x": the '.' is what makes it a list item
    return f"{s[:digits]}\\{s[digits:]}"


def code(value: object, in_table: bool = False) -> str:
    """A value from the tree as a code span (a name, a path): fenced by more backticks than it holds.

    Backslash escapes do not work inside code spans; only '|' needs one, in a table cell.
    """
    s = shown(value)
    runs = [len(r) for r in re.findall(r"`+", s)]
    fence = "`" * (max(runs) + 1 if runs else 1)
    if s.startswith("`") or s.endswith("`") or (s.startswith(" ") and s.endswith(" ") and s.strip()):
        s = f" {s} "  # CommonMark strips one space on each side
    if in_table:
        s = s.replace("|", "\\|")
    return f"{fence}{s}{fence}"


def verdicts_text(v: dict) -> str:
    return ", ".join(f"{k} {n}" for k, n in v.items()) or "-"


def table_title(cid: str, na: frozenset[str] | set[str] = frozenset()) -> str:
    """A consumer's title in a table; "(does not apply)" when its CRC checks do not apply to the tree."""
    return consumer_title(cid) + (" (does not apply)" if cid in na else "")


def consumer_rows(totals: dict, na: frozenset[str] | set[str] = frozenset()) -> list[list]:
    return [[table_title(c, na), verdicts_text(t["verdicts"]), f"{t['lost']} ({t['modules_losing']})",
             f"{t['false_messages']} ({t['modules_false']})", t["misread"], t["unchecked"], t["not_buildable"]]
            for c, t in totals.items()]


CONSUMER_HEADERS = ["consumer", "verdicts (modules)", "lost imports (modules)", "false warnings (modules)",
                    "misread", "unchecked", "not buildable"]


def render(doc: dict) -> str:
    t, c, s = doc["tree"], doc["counts"], doc["summary"]
    k = s["key_figures"]
    # The answer first: the first line says what the tree as built costs its users.
    out = [f"# {text(t['kernel_release'])}: {text(s['short'])}", "", f"**{text(s['verdict'])}**", "",
           f"kmodcompat report of {code(t['path'])} ({t['arch']}, ELF{t['elfclass']} {t['endian']}-endian): "
           f"{k['modules']:,} modules, {k['imports']:,} imports, {k['import_versions']:,} import versions, "
           f"MODVERSIONS flavour {t['modversions']}.", ""]
    out += ["## Top findings", ""]
    out += [f"- {text(h)}" for h in doc["headlines"][1:]] or ["- Nothing else to report."]
    out += ["", f"_{text(s['units'])}_"]
    out += ["", "## Tree", ""]
    out.append(tabulate([
        ["module directory", text(t["path"])], ["kernel release", text(t["kernel_release"])],
        ["kernel built with MODVERSIONS (vermagic)", {True: "yes", False: "no", None: "unknown"}[
            t["kernel_modversions"]]],
        ["MODVERSIONS flavour (from the modules)", t["modversions"]],
        ["modules", f"{c['modules']} ({c['parsed']} read, {c['unreadable']} unreadable, {c['signed']} signed)"],
        ["built-in modules", c["builtin"]], ["imports / exports", f"{c['imports']} / {c['exports']}"],
        ["compression", ", ".join(f"{k} {v}" for k, v in c["compressed"].items())],
        ["kernel exports", text(t["kernel_exports"]["line"])],
        *([["kernel loader", text(t["kernel_loader"]["line"])]] if t.get("kernel_loader") else []),
        ["exporter CRCs checked against", doc["consumers"]["exporter_crcs"]],
    ], headers=["", ""], tablefmt="pipe", disable_numparse=True))
    out += ["", "## Format census", ""]
    out.append(tabulate(sorted(doc["format_census"]["modules_by_format"].items()), headers=["format", "modules"],
                        tablefmt="pipe"))
    out += ["", "## What each consumer sees, as built", ""]
    na = set(not_applicable(doc))
    out.append(tabulate(consumer_rows(doc["consumers"]["totals"], na), headers=CONSUMER_HEADERS, tablefmt="pipe"))
    out += ["", "## If the tree were built in another format", ""]
    for fmt, totals in doc["simulation"].items():
        out += [f"### {FORMAT_TITLES.get(fmt, fmt)}", ""]
        out.append(tabulate(consumer_rows(totals, na), headers=CONSUMER_HEADERS, tablefmt="pipe"))
        out.append("")
    u = doc["crc_usefulness"]
    out += ["## Are these CRCs checking anything?", ""]
    out.append(tabulate([
        ["imports", u["imports"]], ["versioned in __versions", u["versioned_basic"]],
        ["versioned only in the extended tables", u["versioned_ext_only"]], ["unversioned", u["unversioned"]],
        ["placeholder CRC (crc32 of 'int NAME ')", u["placeholder_int"]],
        ["... on functions: checks only the name", u["placeholder_on_functions"]],
        ["... exporter kind unknown", u["placeholder_unknown_kind"]],
        ["real checks", u["real_checks"]],
        ["Rust imports (versioned / only extended)", f"{u['rust_imports']} ({u['rust_versioned']} / "
                                                     f"{u['rust_ext_only']})"],
    ], headers=["", "imports"], tablefmt="pipe"))
    out += ["", "## Symbol name lengths", ""]
    out += [*long_names_lines(doc["long_names"]), "", ksym_requires_line(doc["ksym_requires"])]
    g = doc["graph"]
    out += ["", "## Dependency graph", ""]
    out.append(tabulate([
        ["nodes / edges", f"{g['nodes']} / {g['edges']}"], ["longest dependency chain", g["longest_dependency_chain"]],
        ["cycles", len(g["cycles"])], ["unresolved imports", g["unresolved"]["strong"]],
        ["imports not checkable (kernel exports unknown)", g["not_checkable"]["total"]],
        ["symbols exported twice", len(g["duplicate_exports"])],
        ["depmod 'disagrees' warnings (false)", f"{g['disagreements']['total']} "
                                                f"({g['disagreements']['false_positive']})"],
    ], headers=["", ""], tablefmt="pipe"))
    if g["most_depended_on"]:
        out += ["", "Most depended-on modules: " + ", ".join(f"{text(x['module'])} ({x['dependents']})"
                                                             for x in g["most_depended_on"])]
    for cyc in g["cycles"][:10]:
        out.append(f"- cycle: {' -> '.join(text(m) for m in cyc)}")
    e = doc["exports"]
    out += ["", "## Exported symbols", "",
            f"{e['exported']} exports, {e['unused']} used by no module of the tree."]
    if e["top_exporters"]:
        out.append("Top exporters by importing modules: " + ", ".join(f"{text(x['module'])} ({x['importers']})"
                                                                      for x in e["top_exporters"]))
    if doc.get("diff"):  # a report built with --diff-against: the diff's own outline, one level down
        from .diff_render import markdown as diff_markdown

        out += ["", diff_markdown(doc["diff"], heading_offset=1, more_hint="report.json has all").rstrip("\n")]
    f = doc["findings"]
    out += ["", "## Findings", ""]
    out.append(tabulate(sorted(f["by_code"].items()), headers=["code", "modules"], tablefmt="pipe")
               if f["by_code"] else "None.")
    out += ["", "## Unreadable modules", ""]
    out += [f"- {code(x['path'])}: {text(x['reason'])}" for x in doc["unreadable"]] or ["None."]
    out += ["", f"_Generated by kmodcompat {doc['generator']['version']}, schema {doc['schema_version']}._", ""]
    return "\n".join(out)
