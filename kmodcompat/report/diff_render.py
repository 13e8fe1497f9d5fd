"""A diff document (``diff-schema.json``) as text, Markdown or HTML. Reads nothing but that dict.

The three renderings share one outline (:func:`blocks`: headings, paragraphs,
tables, lists), so they cannot say different things. A tree diff shows the
causes (patterns, exports grouped by exporter and by shared importers,
dependency changes) and lists every module's own changes only with
``details=True``; a two-module diff always shows the module in full.

The compatibility report's HTML page can embed a diff with
:func:`html_fragment` (a ``<section id="diff">`` using the report's CSS
classes); :func:`html_page` wraps the same fragment as a page of its own.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from html import escape

from tabulate import tabulate

from ..modversions import VersionTable
from . import text as plain

#: How many names a list shows before "... and N more" (without details).
LIST_LIMIT = 40
#: Rows of the pattern, exporter and group tables shown (without details).
TABLE_LIMIT = 30
#: A version table's heading by its id in diff results. From modversions, not from diff.results: importing the
#: diff package (its trees, the graph, networkx) would cost every report's start 60 ms for this one table.
_TABLE_TITLES = {t.diff_id: t.heading for t in VersionTable}



@dataclass(frozen=True)
class Block:
    kind: str  # "h" | "p" | "table" | "list"
    text: str = ""
    level: int = 2
    headers: tuple[str, ...] = ()
    rows: tuple[tuple, ...] = ()
    items: tuple[str, ...] = ()
    bad: bool = False  # a paragraph that says something breaks


def _h(text: str, level: int = 2) -> Block:
    return Block("h", text, level)


def _p(text: str, bad: bool = False) -> Block:
    return Block("p", text, bad=bad)


def _table(headers: Sequence[str], rows: Iterable[Sequence]) -> Block:
    return Block("table", headers=tuple(headers), rows=tuple(tuple(r) for r in rows))


def _list(items: Iterable[str]) -> Block:
    return Block("list", items=tuple(items))


def crc_text(crc: int | None) -> str:
    return "-" if crc is None else f"0x{crc:08x}"


def _names(names: Sequence[str], limit: int | None) -> str:
    if limit is None or len(names) <= limit:
        return ", ".join(names) or "-"
    return ", ".join(names[:limit]) + f", ... and {len(names) - limit} more"


def _cut(rows: list, limit: int | None) -> tuple[list, int]:
    if limit is None or len(rows) <= limit:
        return rows, 0
    return rows[:limit], len(rows) - limit


def _tables(entry: dict) -> str:
    return " + ".join(_TABLE_TITLES.get(t, t) for t in entry) or "-"


def _crcs(entry: dict) -> str:
    values = list(dict.fromkeys(entry.values()))
    return "/".join(crc_text(v) for v in values) or "-"


def _section_text(s: dict | None) -> str:
    """A whole section (added or removed): every compared field."""
    if s is None:
        return "-"
    return f"{s['type']} {s['flags_text'] or '-'} size {s['size']} align {s['addralign']} entsize {s['entsize']}"


def _section_fields_text(s: dict, fields: Sequence[str]) -> str:
    """The fields that changed (changed and renamed sections carry only those), and the index for "order"."""
    parts = []
    for f in fields:
        if f == "order":
            parts.append(f"index {s['index']}")
        elif f == "flags":
            parts.append(f"flags {s['flags_text'] or '-'} ({s['flags']:#x})")
        else:
            parts.append(f"{f} {s[f]}")
    return ", ".join(parts) or "-"


def _export_text(x: dict | None) -> str:
    if x is None:
        return "-"
    parts = [crc_text(x["crc"])]
    if x["gpl_only"]:
        parts.append("GPL-only")
    if x["namespace"]:
        parts.append(f"ns {x['namespace']}")
    parts.append(f"from {x['exporter']}")
    return " ".join(parts)


def module_blocks(m: dict, level: int = 3) -> list[Block]:
    """One module's changes, in full."""
    flag = " — INCOMPATIBLE" if m["incompatible"] else ""
    where = m["new_path"] if m["old_path"] == m["new_path"] else f"{m['old_path']} → {m['new_path']}"
    out = [_h(f"{m['name']} ({where}){flag}", level)]
    if m["attributes"]:
        out.append(_table(["attribute", "old", "new"], [[a["field"], a["old"], a["new"]] for a in m["attributes"]]))
    if m["sections"]:
        rows = []
        for s in m["sections"]:
            if s["kind"] == "added":
                rows.append(["added", s["name"], "-", _section_text(s["new"])])
            elif s["kind"] == "removed":
                rows.append(["removed", s["name"], _section_text(s["old"]), "-"])
            else:
                o, n = s["old"], s["new"]
                what = ", ".join(s["fields"]) or "-"
                name = s["name"] if s["kind"] == "changed" else f"{o['name']} → {n['name']}"
                rows.append([f"{s['kind']}: {what}", name, _section_fields_text(o, s["fields"]),
                             _section_fields_text(n, s["fields"])])
        out += [_p("Sections:"), _table(["change", "section", "old", "new"], rows)]
    v = m["versions"]
    if v["entries"]:
        out.append(_p(f"Import versions ({v['old_format']} → {v['new_format']}):"))
        out.append(_table(["change", "symbol", "old tables", "new tables", "old CRC", "new CRC"],
                          [[e["kind"], e["name"], _tables(e["old"]), _tables(e["new"]), _crcs(e["old"]),
                            _crcs(e["new"])] for e in v["entries"]]))
    if m["modinfo"]:
        rows = []
        for x in m["modinfo"]:
            if len(x["old"]) <= 1 and len(x["new"]) <= 1:
                rows.append([x["key"], x["old"][0] if x["old"] else "-", x["new"][0] if x["new"] else "-"])
            else:
                gone = [o for o in x["old"] if o not in x["new"]]
                came = [n for n in x["new"] if n not in x["old"]]
                rows.append([x["key"], "; ".join(gone) or "(same values)", "; ".join(came) or "(same values)"])
        out += [_p(".modinfo (as modinfo prints it):"), _table(["key", "old", "new"], rows)]
    imp = m["imports"]
    if imp["added"] or imp["removed"]:
        out.append(_list([f"imports added: {', '.join(imp['added'])}"] * bool(imp["added"])
                         + [f"imports removed: {', '.join(imp['removed'])}"] * bool(imp["removed"])))
    if m["exports"]:
        out += [_p("Exports:"), _export_table(m["exports"], None)]
    if m["consumers"]:
        out += [_p("Consumers:"), _table(
            ["consumer", "effect", "old", "new"],
            [[c["consumer"], c["effect"], _view_text(c["old"]), _view_text(c["new"])] for c in m["consumers"]])]
    return out


def _view_text(v: dict) -> str:
    return f"{v['verdict']} (lost {v['lost']}, false {v['false_messages']}, messages {v['messages']})"


def _export_table(changes: list[dict], limit: int | None) -> Block:
    rows = []
    judged = any(c["policy"] is not None for c in changes)
    for c in changes:
        what = c["kind"] if c["kind"] != "changed" else ", ".join(c["fields"])
        row = [c["name"], what + (" (incompatible)" if c["incompatible"] else ""), _export_text(c["old"]),
               _export_text(c["new"]), _names(c["importers"], 8 if limit else None),
               _names(c["failing_now"], 8 if limit else None)]
        if judged:
            row.append(policy_text(c["policy"]))
        rows.append(row)
    return _table(["export", "change", "old", "new", "importers", "failing now"] + ["kABI policy"] * judged, rows)


def policy_text(v: dict | None) -> str:
    """A change's kABI policy verdict in a cell: "counts: FAIL by FILE:LINE (...)", "excused: ..."."""
    if v is None:
        return "-"
    if v["by"] == "compatible":
        return "compatible"
    return ("counts: " if v["counts"] else "excused: ") + v["why"]


#: Where the rows a shortened table leaves out are, for the diff command (the report says its own).
CLI_HINT = "--modules or --format json for all"


def blocks(doc: dict, details: bool = False, more_hint: str = CLI_HINT) -> list[Block]:
    """The outline every rendering follows; ``more_hint`` says where the rows left out are."""
    limit = None if details else LIST_LIMIT
    tlimit = None if details else TABLE_LIMIT
    old, new = doc["old"], doc["new"]
    out = [_h(f"kmodcompat diff: {old['label']} → {new['label']}", 1)]
    out += [_p(h, bad=h.startswith("Incompatible")) for h in doc["headlines"]]
    if doc["kind"] == "trees":
        out.append(_table(["", "old", "new"], [
            ["module directory", old["path"], new["path"]],
            ["kernel release", old["kernel_release"], new["kernel_release"]],
            ["modules (unreadable)", f"{old['modules']} ({old['unreadable']})",
             f"{new['modules']} ({new['unreadable']})"],
            ["kernel exports", old["kernel_exports"] or "none found", new["kernel_exports"] or "none found"]]))
        out += [_p(f"Note: {n}") for n in doc["notes"]]
        out += _policy_blocks(doc["policy"], tlimit, more_hint)
        if doc["breaks"]:
            out.append(_h("Modules that break"))
            rows, more = _cut(doc["breaks"], limit)
            out.append(_table(["module", "why"], [[b["module"], b["why"]] for b in rows]))
            if more:
                out.append(_p(f"... and {more} more ({more_hint})."))
        out += _tree_blocks(doc, limit, tlimit, more_hint)
        if details:
            out.append(_h("Every changed module"))
            for m in doc["modules"]["changed"]:
                out += module_blocks(m)
    elif doc["kind"] == "kabi":  # a Module.symvers on a side: its exports, no modules
        what = lambda s: "Module.symvers" if s["kernel_release"] is None else "module tree"  # noqa: E731
        out.append(_table(["", "old", "new"], [
            ["compared", f"{what(old)} {old['path']}", f"{what(new)} {new['path']}"],
            ["kernel release", old["kernel_release"] or "-", new["kernel_release"] or "-"],
            ["exporting modules", old["modules"], new["modules"]],
            ["kernel exports from", old["symvers"] or "none found", new["symvers"] or "none found"]]))
        out += [_p(f"Note: {n}") for n in doc["notes"]]
        out += _policy_blocks(doc["policy"], tlimit, more_hint)
        out += _kabi_blocks(doc["kabi"], limit, tlimit, more_hint)
    else:
        out += _policy_blocks(doc["policy"], tlimit, more_hint)
        for m in doc["modules"]["changed"]:
            out += module_blocks(m, 2)
    meaning = "0 nothing the kABI policy fails, 12 something it fails" if doc["policy"] is not None else \
        "0 same, 4 changed, 12 changed and incompatible"
    out.append(_p(f"Consumers compared: {', '.join(doc['consumers']) or 'none'}. Exit status "
                  f"{doc['status']['exit_code']} ({meaning}). "
                  f"kmodcompat {doc['generator']['version']}, diff schema {doc['schema_version']}."))
    return out


def _tree_blocks(doc: dict, limit: int | None, tlimit: int | None, more_hint: str) -> list[Block]:
    out: list[Block] = []
    mods = doc["modules"]
    out.append(_h("Modules"))
    items = [f"added ({len(mods['added'])}): {_names([x['name'] for x in mods['added']], limit)}",
             f"removed ({len(mods['removed'])}): {_names([x['name'] for x in mods['removed']], limit)}"]
    if mods["became_unreadable"]:
        items.append("became unreadable: " + "; ".join(f"{x['name']}: {x['reason']}"
                                                      for x in mods["became_unreadable"]))
    if mods["became_readable"]:
        items.append("became readable: " + _names([x["name"] for x in mods["became_readable"]], limit))
    out.append(_list(items))
    if doc["patterns"]:
        out.append(_h("Changes by cause"))
        out.append(_p("Each row is one kind of change and the number of modules showing it; the most common "
                      "concrete forms are on the right."))
        rows, more = _cut(doc["patterns"], tlimit)
        out.append(_table(["modules", "times", "area", "change", "subject", "most common"], [
            [p["modules"], p["count"], p["area"], p["change"], p["subject"],
             "; ".join(f"{d['text']} ({d['count']})" for d in p["details"][:3])
             + (f"; {p['distinct'] - 3} more forms" if p["distinct"] > 3 else "")] for p in rows]))
        if more:
            out.append(_p(f"... and {more} more patterns ({more_hint})."))
    k = doc["kabi"]
    if k is not None:
        out += _kabi_blocks(k, limit, tlimit, more_hint)
    d = doc["dependencies"]
    if d is not None:
        out.append(_h("Dependencies"))
        out.append(_p(f"{len(d['dep_changed'])} modules.dep line(s) changed (modules in both trees, compared by "
                      f"module name); {len(d['new_cycles'])} new cycle(s), {len(d['resolved_cycles'])} gone; "
                      + (f"{len(d['newly_unresolved'])} newly unresolved import(s)." if d["unresolved_checked"]
                         else "unresolved imports not compared (kernel exports unknown on one side).")))
        rows, more = _cut(d["dep_changed"], tlimit)
        if rows:
            out.append(_table(["module", "dependencies added", "dependencies removed", "order only"],
                              [[c["module"], _names(c["added"], 8), _names(c["removed"], 8),
                                "yes" if not c["added"] and not c["removed"] else ""] for c in rows]))
        if more:
            out.append(_p(f"... and {more} more."))
        if d["new_cycles"]:
            out.append(_list([f"new cycle: {' ↔ '.join(c)}" for c in d["new_cycles"]]))
        if d["newly_unresolved"]:
            rows, more = _cut(d["newly_unresolved"], tlimit)
            out.append(_list([f"{u['module']} needs {u['symbol']}{' (weak)' if u['weak'] else ''}" for u in rows]
                             + ([f"... and {more} more"] if more else [])))
    return out


def _kabi_blocks(k: dict, limit: int | None, tlimit: int | None, more_hint: str) -> list[Block]:
    out = [_h("kABI: exports")]
    changes = k["changes"]
    kinds = {"added": 0, "removed": 0, "changed": 0}
    for c in changes:
        kinds[c["kind"]] += 1
    judged = any(c["policy"] is not None for c in changes)
    counted = f", {sum(1 for c in changes if c['breaks'])} counted by the kABI policy" if judged else ""
    out.append(_p(f"{k['old_exports']} exports before, {k['new_exports']} after"
                  f"{'' if k['kernel_compared'] else ' (modules only: the kernel image was not compared)'}: "
                  f"{kinds['added']} added, {kinds['removed']} removed, {kinds['changed']} changed, "
                  f"{sum(1 for c in changes if c['incompatible'])} incompatible{counted}."))
    if k["by_exporter"]:
        out.append(_h("By exporting module", 3))
        rows, more = _cut(k["by_exporter"], tlimit)
        out.append(_table(["exporter", "added", "removed", "CRC changed", "GPL-only changed", "namespace changed",
                           "moved only", "incompatible", "importers affected"],
                          [[e["exporter"], e["added"], e["removed"], e["crc"], e["gpl_only"], e["namespace"],
                            e["moved"], e["incompatible"], e["importers"]] for e in rows]))
        if more:
            out.append(_p(f"... and {more} more exporters."))
    if k["groups"]:
        out.append(_h("Incompatible exports that changed together (same importers)", 3))
        rows, more = _cut(k["groups"], tlimit)
        counts = {c["name"]: c["breaks"] for c in changes}
        out.append(_table(["exports", "change", "exporters", "importers", "old builds it breaks"]
                          + ["counted by the kABI policy"] * judged, [
            [f"{len(g['exports'])}: {_names(g['exports'], 6)}", ", ".join(f"{kk} {n}" for kk, n in g["kinds"].items()),
             _names(g["exporters"], 4), f"{len(g['importers'])}: {_names(g['importers'], 6)}" if g["importers"]
             else "none in the tree", ", ".join(f"{c} {n}" for c, n in g["old_builds_breaking"].items()) or "-"]
            + [f"{sum(1 for x in g['exports'] if counts.get(x))} of {len(g['exports'])}"] * judged
            for g in rows]))
        if more:
            out.append(_p(f"... and {more} more groups."))
    if k["effects"]:
        out.append(_h("Old builds of the importers on the new exports", 3))
        out.append(_table(["consumer", "old builds checked", "effects", "verdicts on the new exports"], [
            [e["consumer"], e["modules"], ", ".join(f"{kk} {n}" for kk, n in e["effects"].items()),
             ", ".join(f"{kk} {n}" for kk, n in e["verdicts"].items())] for e in k["effects"]]))
    # What counts first, then most used: a removed export nobody imports matters less than a CRC every
    # driver checks.
    bad = sorted((c for c in changes if c["incompatible"]),
                 key=lambda c: (judged and not c["breaks"], -len(c["importers"]), c["name"]))
    if bad:
        out.append(_h("Incompatible export changes, " + ("counted by the kABI policy first, then " if judged else "")
                      + "most imported first", 3))
        rows, more = _cut(bad, tlimit)
        out.append(_export_table(rows, limit))
        if more:
            out.append(_p(f"... and {more} more ({more_hint})."))
    return out


def _policy_blocks(p: dict | None, tlimit: int | None, more_hint: str) -> list[Block]:
    """The kABI policy: its lists, its rules with what each decided, the rules that decided nothing."""
    if p is None:
        return []
    out = [_h("kABI policy"), _p(p["summary"])]
    if p["symbol_lists"]:
        out.append(_table(["symbol list", "kind", "sections", "names", "wildcards", "exported by neither side"],
                          [[sl["path"], sl["kind"], ", ".join(sl["sections"]) or "-", sl["names"], sl["patterns"],
                            sl["unexported"]] for sl in p["symbol_lists"]]))
    if p["rules"]:
        out.append(_p("Rules, in the order they are tried (the first match decides; no match counts the change):"))
        rows, more = _cut(p["rules"], tlimit)
        out.append(_table(["where", "rule", "changes decided", "exports it is the first match of"],
                          [[f"{r['path']}:{r['line']}", r["text"], r["changes"], r["exports"]] for r in rows]))
        if more:
            out.append(_p(f"... and {more} more rules ({more_hint})."))
        unused = [p["rules"][i] for i in p["unused_rules"]]
        if unused:
            never = sum(1 for r in unused if not r["exports"])
            out.append(_p(f"{len(unused)} rule(s) decided no change ({never} match no export of either side; "
                          "--report-unused-rules lists them)."))
    return out


# -- emitters ---------------------------------------------------------------------------------------


def _cell(v) -> str:
    return "-" if v is None else str(v)


def text(doc: dict, details: bool = False, width: int | None = None) -> str:
    """The text rendering; with ``width``, fitted to that many columns (report/text.py)."""
    out: list[str] = []
    for b in blocks(doc, details):
        if b.kind == "h":
            if out:
                out.append("")
            out.append(plain.paragraph(b.text if b.level == 1 else f"{'=' if b.level == 2 else '-'}"
                                                                   f"{'=' if b.level == 2 else '-'} {b.text}", width))
        elif b.kind == "p":
            out.append(plain.paragraph(b.text, width))
        elif b.kind == "table":
            out.append(plain.table([[_cell(c) for c in r] for r in b.rows], list(b.headers), width,
                                   tablefmt="simple", disable_numparse=True))
            out.append("")
        else:
            out += [plain.paragraph(f"- {i}", width, "  ") for i in b.items] + [""]
    return "\n".join(out).rstrip("\n") + "\n"


def _md_cell(v) -> str:
    return _cell(v).replace("|", "\\|").replace("\n", " ")


def markdown(doc: dict, details: bool = False, heading_offset: int = 0, more_hint: str = CLI_HINT) -> str:
    """The diff as Markdown; ``heading_offset`` 1 when it is a section of the report."""
    out: list[str] = []
    for b in blocks(doc, details, more_hint):
        if b.kind == "h":
            out += ["#" * min(6, b.level + heading_offset) + " " + b.text, ""]
        elif b.kind == "p":
            out += [f"**{b.text}**" if b.bad else b.text, ""]
        elif b.kind == "table":
            out += [tabulate([[_md_cell(c) for c in r] for r in b.rows], headers=list(b.headers), tablefmt="pipe",
                             disable_numparse=True), ""]
        else:
            out += [f"- {i}" for i in b.items] + [""]
    return "\n".join(out).rstrip("\n") + "\n"


def html_fragment(doc: dict, details: bool = False, heading_offset: int = 1, more_hint: str = CLI_HINT) -> str:
    """A ``<section id="diff">`` for the report page: headings start at ``<h2>`` (``heading_offset`` 1)."""
    # Symbol names run to 100+ characters (Rust): a table scrolls inside its own box (class "scroll"),
    # words are never broken and the page never widens.
    out = ['<section id="diff" class="kmodcompat-diff">']
    for b in blocks(doc, details, more_hint):
        if b.kind == "h":
            lvl = min(6, b.level + heading_offset)
            out.append(f"<h{lvl}>{escape(b.text)}</h{lvl}>")
        elif b.kind == "p":
            cls = "headline bad" if b.bad else "small" if b.text.startswith(("Note:", "Consumers compared")) else ""
            out.append(f'<p class="{cls}">{escape(b.text)}</p>' if cls else f"<p>{escape(b.text)}</p>")
        elif b.kind == "table":
            head = "".join(f"<th>{escape(h)}</th>" for h in b.headers)
            body = "".join("<tr>" + "".join(
                f'<td class="num">{c}</td>' if isinstance(c, int) else f"<td>{escape(_cell(c))}</td>" for c in r)
                + "</tr>" for r in b.rows)
            out.append(f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>')
        else:
            out.append("<ul>" + "".join(f"<li>{escape(i)}</li>" for i in b.items) + "</ul>")
    out.append("</section>")
    return "\n".join(out)


_CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:1200px;color:#1d2430;padding:0 1em}
h2{margin-top:2em;border-bottom:1px solid #d8dee8;padding-bottom:.2em}
table{border-collapse:collapse;margin:.6em 0}th,td{border:1px solid #d8dee8;padding:.25em .55em;text-align:left}
th{background:#f1f4f9}td.num{text-align:right}.small{color:#5b6575;font-size:.9em}
.scroll{overflow-x:auto;max-width:100%}*{box-sizing:border-box}
.headline{background:#fff7e6;border-left:4px solid #e0a100;padding:.4em .8em;margin:.3em 0}
.bad{color:#b42318}
"""


def html_page(doc: dict, details: bool = False) -> str:
    """The diff as a self-contained page (no network)."""
    title = escape(f"kmodcompat diff: {doc['old']['label']} → {doc['new']['label']}")
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{title}</title>'
            f"<style>{_CSS}</style></head><body>\n{html_fragment(doc, details, 0)}\n</body></html>\n")


RENDERERS: dict[str, Callable[[dict, bool], str]] = {"text": text, "markdown": markdown, "html": html_page}
