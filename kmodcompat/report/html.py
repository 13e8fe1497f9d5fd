"""The report as one self-contained HTML page: inline CSS, inline SVG charts, a sortable table.

Nothing is fetched from the network. Reads only the report dict.
"""

from __future__ import annotations

from html import escape as _escape

from ..cli.output import shown
from .diff_render import html_fragment
from .markdown import CONSUMER_TITLES, FORMAT_TITLES, verdicts_text

_CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:1200px;color:#1d2430;padding:0 1em}
h1{font-size:1.6em}h2{margin-top:2em;border-bottom:1px solid #d8dee8;padding-bottom:.2em}
table{border-collapse:collapse;margin:.6em 0}th,td{border:1px solid #d8dee8;padding:.25em .55em;text-align:left}
th{background:#f1f4f9;cursor:default}table.sortable th{cursor:pointer}td.num{text-align:right}
.headline{background:#fff7e6;border-left:4px solid #e0a100;padding:.4em .8em;margin:.3em 0}
.ok{color:#17803d}.bad{color:#b42318}.chart{margin:1em 0}code{font-size:.92em}
.small{color:#5b6575;font-size:.9em}
"""

_SORT_JS = """
document.querySelectorAll('table.sortable th').forEach(function(th, col){
  th.addEventListener('click', function(){
    var table = th.closest('table'), body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    var asc = th.getAttribute('data-asc') !== '1';
    rows.sort(function(a, b){
      var x = a.cells[col].getAttribute('data-v') || a.cells[col].textContent;
      var y = b.cells[col].getAttribute('data-v') || b.cells[col].textContent;
      var nx = parseFloat(x), ny = parseFloat(y);
      var r = (!isNaN(nx) && !isNaN(ny)) ? nx - ny : x.localeCompare(y);
      return asc ? r : -r;
    });
    rows.forEach(function(r){ body.appendChild(r); });
    th.setAttribute('data-asc', asc ? '1' : '0');
  });
});
"""

def escape(value: object) -> str:
    """HTML text of a value (perhaps from the tree): escaped, on one line, control characters and the
    bytes of non-UTF-8 names shown as ``\\xNN`` (:func:`~kmodcompat.cli.output.shown`)."""
    return _escape(shown(value))


_COLORS = ["#3b6fd8", "#e0a100", "#17803d", "#b42318", "#7a4cc2", "#0f8b8d"]


def _table(headers: list[str], rows: list[list], sortable: bool = False, cls: str = "") -> str:
    head = "".join(f"<th>{escape(str(h))}</th>" for h in headers)
    body = []
    for r in rows:
        cells = []
        for v in r:
            if isinstance(v, (int, float)):
                cells.append(f'<td class="num" data-v="{v}">{v}</td>')
            else:
                cells.append(f"<td>{v if isinstance(v, _Raw) else escape(str(v))}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    classes = " ".join(x for x in ("sortable" if sortable else "", cls) if x)
    return f'<table class="{classes}"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'


class _Raw(str):
    """Markup already escaped."""


def _bar_chart(title: str, items: list[tuple[str, int]], width: int = 640, mark: tuple[str, str] | None = None,
               chart_id: str = "") -> str:
    """Horizontal bars. ``mark``: (label, text) draws a line before that bar's label."""
    bar_h, gap, left = 18, 6, 190
    h = len(items) * (bar_h + gap) + 40
    top = max([v for _, v in items] + [1])
    parts = [f'<svg class="chart" id="{chart_id}" role="img" aria-label="{escape(title)}" width="{width}" '
             f'height="{h}" xmlns="http://www.w3.org/2000/svg">',
             f'<text x="0" y="16" font-weight="bold" font-size="14">{escape(title)}</text>']
    for i, (label, v) in enumerate(items):
        y = 28 + i * (bar_h + gap)
        w = (width - left - 70) * v / top
        parts.append(f'<text x="{left - 6}" y="{y + 13}" text-anchor="end" font-size="12">{escape(label)}</text>')
        parts.append(f'<rect x="{left}" y="{y}" width="{w:.1f}" height="{bar_h}" fill="{_COLORS[0]}"/>')
        parts.append(f'<text x="{left + w + 4:.1f}" y="{y + 13}" font-size="12">{v}</text>')
        if mark and label == mark[0]:
            parts.append(f'<line x1="0" x2="{width}" y1="{y - gap / 2}" y2="{y - gap / 2}" stroke="#b42318" '
                         f'stroke-dasharray="4 3"/><text x="{width - 4}" y="{y - 5}" text-anchor="end" '
                         f'font-size="11" fill="#b42318">{escape(mark[1])}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _histogram(hist: dict[str, int], limit: int | None, width: int = 900, height: int = 260) -> str:
    """Name-length histogram (vertical bars), the __versions limit as a red line."""
    if not hist:
        return ""
    lengths = {int(k): v for k, v in hist.items()}
    lo, hi = 0, max(max(lengths), (limit or 0) + 5)
    n = hi - lo + 1
    left, bottom, top_pad = 50, 30, 30
    plot_w, plot_h = width - left - 10, height - bottom - top_pad
    bw = plot_w / n
    top = max(lengths.values())
    parts = [f'<svg class="chart" id="name-length-histogram" role="img" aria-label="import name lengths" '
             f'width="{width}" height="{height}" xmlns="http://www.w3.org/2000/svg">',
             '<text x="0" y="16" font-weight="bold" font-size="14">Import name length (characters), all modules'
             '</text>']
    for length, v in sorted(lengths.items()):
        x = left + (length - lo) * bw
        h = plot_h * v / top
        color = _COLORS[3] if limit is not None and length > limit else _COLORS[0]
        parts.append(f'<rect x="{x:.1f}" y="{top_pad + plot_h - h:.1f}" width="{max(bw - 1, 1):.1f}" '
                     f'height="{h:.1f}" fill="{color}"><title>{length} chars: {v}</title></rect>')
    for tick in range(0, hi + 1, 10):
        x = left + (tick - lo) * bw
        parts.append(f'<text x="{x:.1f}" y="{height - 10}" font-size="11" text-anchor="middle">{tick}</text>')
    parts.append(f'<text x="{left - 6}" y="{top_pad + 10}" font-size="11" text-anchor="end">{top}</text>')
    if limit is not None:
        x = left + (limit + 1 - lo) * bw
        parts.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{top_pad}" y2="{top_pad + plot_h}" stroke="#b42318" '
                     f'stroke-width="2"/><text x="{x + 4:.1f}" y="{top_pad + 12}" font-size="12" fill="#b42318">'
                     f'__versions limit: {limit} chars</text>')
    parts.append("</svg>")
    return "".join(parts)


def _loss_chart(doc: dict, consumers: list[str]) -> str:
    """Per consumer and format: modules with lost imports or false warnings."""
    formats = ["as built"] + list(doc["simulation"])
    totals = {"as built": doc["consumers"]["totals"], **doc["simulation"]}
    width, row_h, left = 900, 22, 200
    group_h = row_h * len(formats) + 28  # the consumer's title sits on its own line above its rows
    height = 50 + group_h * len(consumers)
    top = max([1] + [t.get(c, {}).get("modules_losing", 0) + t.get(c, {}).get("modules_false", 0)
                     for t in totals.values() for c in consumers])
    parts = [f'<svg class="chart" id="consumer-loss-chart" role="img" aria-label="per-consumer loss per format" '
             f'width="{width}" height="{height}" xmlns="http://www.w3.org/2000/svg">',
             '<text x="0" y="16" font-weight="bold" font-size="14">Modules losing import versions (blue) or getting '
             'false warnings (orange), per consumer and format</text>']
    for ci, c in enumerate(consumers):
        y0 = 36 + ci * group_h
        parts.append(f'<text x="0" y="{y0 + 14}" font-size="12" font-weight="bold">'
                     f'{escape(CONSUMER_TITLES.get(c, c))}</text>')
        for fi, fmt in enumerate(formats):
            t = totals[fmt].get(c)
            if t is None:
                continue
            y = y0 + 20 + fi * row_h
            losing, false = t["modules_losing"], t["modules_false"]
            scale = (width - left - 120) / top
            parts.append(f'<text x="{left - 6}" y="{y + 14}" font-size="11" text-anchor="end">'
                         f'{escape(FORMAT_TITLES.get(fmt, fmt))}</text>')
            parts.append(f'<rect x="{left}" y="{y + 3}" width="{losing * scale:.1f}" height="8" fill="{_COLORS[0]}">'
                         f'<title>{losing} module(s) losing versions</title></rect>')
            parts.append(f'<rect x="{left}" y="{y + 11}" width="{false * scale:.1f}" height="8" '
                         f'fill="{_COLORS[1]}"><title>{false} module(s) with false warnings</title></rect>')
            parts.append(f'<text x="{left + max(losing, false) * scale + 4:.1f}" y="{y + 16}" font-size="11">'
                         f'{losing} / {false}</text>')
    parts.append("</svg>")
    return "".join(parts)


def render(doc: dict) -> str:
    t, c = doc["tree"], doc["counts"]
    title = f"kmodcompat report: {t['kernel_release']}"
    consumers = list(doc["consumers"]["totals"])
    out = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
           '<meta name="viewport" content="width=device-width, initial-scale=1">',
           f"<title>{escape(title)}</title><style>{_CSS}</style></head><body>",
           f"<h1>{escape(title)}</h1>",
           f'<p class="small">{escape(t["path"])}: {escape(str(t["arch"]))}, ELF{t["elfclass"]} {t["endian"]}-endian, '
           f'MODVERSIONS flavour <b>{escape(t["modversions"])}</b>'
           f'{" (kernel built without MODVERSIONS)" if t["kernel_modversions"] is False else ""}; {c["modules"]} modules '
           f'({c["unreadable"]} unreadable); exporter CRCs from {escape(doc["consumers"]["exporter_crcs"])}.</p>',
           '<h2 id="top-findings">Top findings</h2>']
    out += [f'<div class="headline">{escape(h)}</div>' for h in doc["headlines"]] or [
        '<p class="ok">Nothing any consumer would trip over.</p>']
    out.append('<h2 id="consumers">What each consumer sees, as built</h2>')
    out.append(_consumer_table(doc["consumers"]["totals"]))
    out.append(_loss_chart(doc, consumers))
    out.append('<h2 id="simulation">If the tree were built in another format</h2>')
    for fmt, totals in doc["simulation"].items():
        out.append(f"<h3>{escape(FORMAT_TITLES.get(fmt, fmt))}</h3>")
        out.append(_consumer_table(totals))
    out.append('<h2 id="census">Format census</h2>')
    out.append(_bar_chart("Modules by modversions format", list(doc["format_census"]["modules_by_format"].items()),
                          chart_id="format-census-chart"))
    u = doc["crc_usefulness"]
    out.append('<h2 id="usefulness">Are these CRCs checking anything?</h2>')
    out.append(_table(["", "imports"], [
        ["imports", u["imports"]], ["versioned in __versions", u["versioned_basic"]],
        ["versioned only in the extended tables", u["versioned_ext_only"]], ["unversioned", u["unversioned"]],
        ["placeholder CRC (crc32 of 'int NAME ')", u["placeholder_int"]],
        ["... on functions: checks only the name", u["placeholder_on_functions"]],
        ["real checks", u["real_checks"]], ["Rust imports", u["rust_imports"]],
        ["Rust imports versioned only in the extended tables", u["rust_ext_only"]]]))
    n = doc["name_lengths"]
    out.append('<h2 id="names">Symbol name lengths</h2>')
    out.append(_histogram(n["histogram"], t["basic_name_limit"]))
    if n["longest"]:
        out.append(_table(["length", "name", "demangled", "module"],
                          [[x["length"], _Raw(f"<code>{escape(x['name'])}</code>"), x["demangled"], x["module"]]
                           for x in n["longest"]]))
    g = doc["graph"]
    out.append('<h2 id="graph">Dependency graph</h2>')
    out.append(_table(["", ""], [
        ["nodes / edges", f"{g['nodes']} / {g['edges']}"], ["longest dependency chain", g["longest_dependency_chain"]],
        ["cycles", len(g["cycles"])], ["unresolved imports", sum(1 for x in g["unresolved"] if not x["weak"])],
        ["symbols exported twice", len(g["duplicate_exports"])],
        ["depmod 'disagrees' warnings", g["disagreements"]["total"]],
        ["... of which false", g["disagreements"]["false_positive"]]]))
    if g["most_depended_on"]:
        out.append(_bar_chart("Most depended-on modules", [(x["module"], x["dependents"])
                                                           for x in g["most_depended_on"]], chart_id="depended-chart"))
    e = doc["exports"]
    out.append('<h2 id="exports">Exported symbols</h2>')
    out.append(f"<p>{e['exported']} exports; {e['unused']} are used by no module of the tree.</p>")
    out.append('<h2 id="modules">Modules</h2><p class="small">Click a column to sort.</p>')
    rows = []
    for m in doc["consumers"]["per_module"]:
        problems = m.get("problems", {})
        lost = sum(p["lost_count"] for p in problems.values())
        false = sum(p["false_count"] for p in problems.values())
        rows.append([m["path"]] + [m["verdicts"].get(cid, "") for cid in consumers] + [lost, false])
    out.append(_table(["module"] + [CONSUMER_TITLES.get(x, x) for x in consumers] + ["lost (all consumers)",
                                                                                       "false warnings"],
                      rows, sortable=True, cls="modules"))
    f = doc["findings"]
    out.append('<h2 id="findings">Findings</h2>')
    out.append(_table(["code", "count"], sorted(f["by_code"].items())) if f["by_code"] else "<p>None.</p>")
    out.append('<h2 id="unreadable">Unreadable modules</h2>')
    out.append(_table(["module", "reason"], [[x["path"], x["reason"]] for x in doc["unreadable"]])
               if doc["unreadable"] else "<p>None.</p>")
    if doc.get("diff"):
        out.append(html_fragment(doc["diff"]))  # a report built with a diff against an older tree
    out.append(f'<p class="small">Generated by kmodcompat {escape(doc["generator"]["version"])}, report schema '
               f'{doc["schema_version"]}.</p>')
    out.append(f"<script>{_SORT_JS}</script></body></html>")
    return "\n".join(out) + "\n"


def _consumer_table(totals: dict) -> str:
    return _table(["consumer", "verdicts (modules)", "lost imports", "modules losing", "false warnings",
                   "modules with false warnings", "misread", "unchecked", "not buildable"],
                  [[CONSUMER_TITLES.get(c, c), verdicts_text(t["verdicts"]), t["lost"], t["modules_losing"],
                    t["false_messages"], t["modules_false"], t["misread"], t["unchecked"], t["not_buildable"]]
                   for c, t in totals.items()])
