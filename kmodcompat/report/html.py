"""The report as one self-contained HTML page that works like a tool. Reads only the report dict.

The answer first: a header with the verdict and the key figures, a table of
contents, then one consumer × format matrix (a heat map: each cell is the
number of modules that cost that consumer something in that format, coloured
by the worst verdict, the counts in its tooltip). Risks, the diff and the
findings come before the details; the per-module table is last, collapsed,
with a search box, filters and paging.

One file: inline CSS, SVG and JavaScript, nothing fetched. Without
JavaScript the header, the matrix, the risks and every summary table are
plain HTML; only the module table needs the script (its rows travel as one
compact JSON block, so a 5,000-module tree stays far under 2 MB). Narrow
screens get one column; wide tables scroll inside their own box, never the page.
"""

from __future__ import annotations

import json
from html import escape as _escape

from ..cli.output import shown
from .diff_render import html_fragment
from ..consumers import (KERNEL_6_13_DEBIAN, KERNEL_6_13_DEBIAN_FORCE, KERNEL_6_13_FORCE, KERNEL_6_14_DEBIAN,
                         KERNEL_6_14_DEBIAN_FORCE, KERNEL_6_14_FORCE, KERNEL_HASHED_RFC, MIT, WEAK_MODULES, WEAK_MODULES2,
                         short_title, title as consumer_title)
from ..kmod.profile import KMOD_PR270
from .markdown import (FORMAT_TITLES, LONG_NAMES_LISTED, ksym_requires_line, long_names_rows, long_names_summary,
                       table_title, verdicts_text)
from .summary import BAD_VERDICTS, SEVERITY, affected, not_applicable, worst

_CSS = """
*{box-sizing:border-box}
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0;color:#1d2430;background:#fff}
main{max-width:1200px;margin:0 auto;padding:0 14px 2em}
h1{font-size:1.3em;margin:.5em 0 .3em;overflow-wrap:break-word}
h2{font-size:1.2em;margin:1.6em 0 .4em;border-bottom:1px solid #d8dee8;padding-bottom:.15em}
h3{font-size:1.05em;margin:1.1em 0 .3em}
.verdict{padding:.45em .8em;border-left:6px solid;font-weight:600;margin:.3em 0}
.verdict.ok{background:#e6f4ec;border-color:#17803d}.verdict.bad{background:#fdecea;border-color:#b42318}
.na{background:#eef1f5;border-left:6px solid #8792a2;padding:.2em .8em;margin:.3em 0;font-size:.88em}
ul.figures{display:flex;flex-wrap:wrap;gap:2px 18px;list-style:none;padding:0;margin:.4em 0;color:#3c4656}
ul.figures b{color:#1d2430}
nav.toc{font-size:.92em;margin:.4em 0;line-height:1.8}nav.toc a{margin-right:.9em;white-space:nowrap}
.scroll{overflow-x:auto;max-width:100%;margin:.5em 0}
table{border-collapse:collapse}th,td{border:1px solid #d8dee8;padding:.2em .5em;text-align:left;vertical-align:top}
th{background:#f1f4f9;font-weight:600}td.num{text-align:right;font-variant-numeric:tabular-nums}
table.sortable th{cursor:pointer}
.matrix td.c{text-align:center;min-width:3.4em;font-variant-numeric:tabular-nums}
.matrix th[scope=row]{white-space:nowrap;font-size:.92em}.matrix th,.matrix td{vertical-align:middle}
.matrix th.f{text-align:center;font-size:.85em}.matrix th.tier{background:#fff;border:0;padding-top:.6em;
 font-size:.85em;color:#5b6575;text-align:left}
.v-ok{background:#d9f0e1}.v-warn{background:#fbe3a6}.v-bad{background:#f4b9b1}.v-info{background:#dde7f7}
.v-na{background:#eceff3;color:#6b7585}
.legend{font-size:.85em;color:#3c4656}.legend span{display:inline-block;padding:0 .5em;margin:0 .3em .2em 0}
ol.risks{padding-left:1.6em;margin:.3em 0}ol.risks li{margin:.15em 0}
.tag{font-size:.78em;border-radius:3px;padding:0 .35em;margin-right:.3em;background:#eef1f5;color:#3c4656}
.tag.hyp{background:#efe6fb;color:#5a2ca0}.tag.legacy{background:#f1f1f1;color:#666}
.small{color:#5b6575;font-size:.9em}code{font-size:.92em}
.headline{background:#fff7e6;border-left:4px solid #e0a100;padding:.3em .8em;margin:.3em 0}.headline.bad{color:#b42318}
svg.chart{display:block;max-width:100%;height:auto;margin:.6em 0}
details>summary{cursor:pointer;font-weight:600}
.controls{display:flex;flex-wrap:wrap;gap:6px 12px;align-items:center;margin:.5em 0}
.controls input[type=search]{min-width:14em;max-width:100%;padding:.25em .4em}
#modules-table td{white-space:nowrap;font-size:.9em}
@media (max-width:640px){body{font-size:14px}main{padding:0 8px 2em}ul.figures{gap:0 12px}
 .matrix td.c{min-width:2.3em}th,td{padding:.15em .3em}.matrix th.f{font-size:.78em}}
"""

#: The module table: rows come from the JSON block #module-data; filters, search, sort and paging.
_JS = r"""
(function(){
var data = JSON.parse(document.getElementById('module-data').textContent);
var C = data.consumers, V = data.verdicts, F = data.formats, rows = data.rows, bad = data.bad, cls = data.classes;
var q = document.getElementById('m-search'), fc = document.getElementById('m-consumer'),
    fv = document.getElementById('m-verdict'), ff = document.getElementById('m-format'),
    fp = document.getElementById('m-problem'), body = document.getElementById('m-body'),
    info = document.getElementById('m-info'), prev = document.getElementById('m-prev'),
    next = document.getElementById('m-next');
var PAGE = 50, page = 0, sortCol = -1, asc = true, shown = rows;
function problem(r){ for (var i = 0; i < C.length; i++) if (data.counted[i] && bad[r[2][i]]) return true; return false; }
function apply(){
  var s = q.value.toLowerCase(), c = fc.value, v = fv.value, f = ff.value, p = fp.checked;
  shown = rows.filter(function(r){
    if (s && r[0].toLowerCase().indexOf(s) < 0) return false;
    if (f !== '' && String(r[1]) !== f) return false;
    if (v !== '') {
      if (c !== '') { if (String(r[2][+c]) !== v) return false; }
      else if (r[2].indexOf(+v) < 0) return false;
    } else if (c !== '' && p && !bad[r[2][+c]]) return false;
    if (p && c === '' && !problem(r)) return false;
    return true;
  });
  if (sortCol >= 0) shown.sort(function(a, b){
    var x = key(a, sortCol), y = key(b, sortCol), r = x < y ? -1 : x > y ? 1 : 0; return asc ? r : -r; });
  page = 0; draw();
}
function key(r, col){
  if (col === 0) return r[0]; if (col === 1) return F[r[1]];
  if (col === C.length + 2) return r[3]; if (col === C.length + 3) return r[4];
  return V[r[2][col - 2]];
}
function esc(t){ return t.replace(/[&<>"]/g, function(ch){ return {'&':'&amp;','<':'&lt;','>':'&gt;','"':'&quot;'}[ch]; }); }
function draw(){
  var start = page * PAGE, part = shown.slice(start, start + PAGE), html = [];
  part.forEach(function(r){
    var cells = '<td><code>' + esc(r[0]) + '</code></td><td>' + esc(F[r[1]]) + '</td>';
    r[2].forEach(function(v){ cells += '<td class="' + cls[v] + '">' + esc(V[v]) + '</td>'; });
    html.push('<tr>' + cells + '<td class="num">' + r[3] + '</td><td class="num">' + r[4] + '</td></tr>');
  });
  body.innerHTML = html.join('');
  var n = shown.length;
  info.textContent = n ? ('rows ' + (start + 1) + '\u2013' + Math.min(start + PAGE, n) + ' of ' + n +
    (n < rows.length ? ' (of ' + rows.length + ' modules)' : '')) : 'no module matches';
  prev.disabled = page === 0; next.disabled = start + PAGE >= n;
}
[q, fc, fv, ff, fp].forEach(function(el){ el.addEventListener('input', apply); el.addEventListener('change', apply); });
prev.addEventListener('click', function(){ if (page > 0) { page--; draw(); } });
next.addEventListener('click', function(){ if ((page + 1) * PAGE < shown.length) { page++; draw(); } });
document.querySelectorAll('#modules-table th').forEach(function(th, col){
  th.addEventListener('click', function(){ asc = sortCol === col ? !asc : true; sortCol = col; apply(); });
});
document.getElementById('m-controls').hidden = false;
apply();
})();
document.querySelectorAll('table.sortable').forEach(function(table){
  table.querySelectorAll('th').forEach(function(th, col){
    th.addEventListener('click', function(){
      var body = table.tBodies[0], rows = Array.prototype.slice.call(body.rows);
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
});
"""

_BLUE, _RED, _GREY = "#3b6fd8", "#b42318", "#8792a2"
#: Row labels of the matrix, short enough for one line at 420 px (the full title is the row's tooltip).
_MATRIX_TITLES = {KMOD_PR270.id: "kmod PR #270", MIT.id: "m-i-t 3.16", KERNEL_6_13_FORCE.id: "kernel ≤ 6.13 +force",
                  KERNEL_6_14_FORCE.id: "kernel ≥ 6.14 +force", KERNEL_6_13_DEBIAN.id: "Debian ≤ 6.13",
                  KERNEL_6_13_DEBIAN_FORCE.id: "Debian ≤ 6.13 +force", KERNEL_6_14_DEBIAN.id: "Debian ≥ 6.14",
                  KERNEL_6_14_DEBIAN_FORCE.id: "Debian ≥ 6.14 +force", WEAK_MODULES.id: WEAK_MODULES.id,
                  WEAK_MODULES2.id: WEAK_MODULES2.id,
                  KERNEL_HASHED_RFC.id: "kernel + hash RFC"}


def escape(value: object) -> str:
    """HTML text of a value (perhaps from the tree): escaped, on one line, control characters and the
    bytes of non-UTF-8 names shown as ``\\xNN`` (:func:`~kmodcompat.cli.output.shown`)."""
    return _escape(shown(value))


class _Raw(str):
    """Markup already escaped."""


def _table(headers: list[str], rows: list[list], sortable: bool = False, cls: str = "", tid: str = "") -> str:
    head = "".join(f"<th>{escape(str(h))}</th>" for h in headers)
    body = []
    for r in rows:
        cells = []
        for v in r:
            if isinstance(v, (int, float)):
                cells.append(f'<td class="num" data-v="{v}">{v:,}</td>')
            else:
                cells.append(f"<td>{v if isinstance(v, _Raw) else escape(str(v))}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    classes = " ".join(x for x in ("sortable" if sortable else "", cls) if x)
    attrs = (f' class="{classes}"' if classes else "") + (f' id="{tid}"' if tid else "")
    return (f'<div class="scroll"><table{attrs}><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody>'
            "</table></div>")


def _cell_class(t: dict | None, na: bool) -> str:
    if t is None:
        return "v-na"
    if na:
        return "v-na"
    w = worst(t)
    if w is None:
        return "v-info" if set(t["verdicts"]) == {"ignores-versions"} else "v-ok"
    return "v-bad" if SEVERITY[w] >= 3 else "v-warn"


def _matrix(doc: dict) -> str:
    """Consumers (rows, those that matter for the tree first) × formats (columns): modules affected."""
    s = doc["summary"]
    roles = s["audience"]
    na = not_applicable(doc)
    formats = [("as-is", "as built", doc["consumers"]["totals"])] + [
        (f, f, totals) for f, totals in doc["simulation"].items()]
    head = "".join(f'<th class="f" title="{escape(FORMAT_TITLES.get(f, f))}">{escape(label)}</th>'
                   for f, label, _ in formats)
    out = ['<div class="scroll"><table class="matrix" id="consumer-matrix"><thead><tr><th>consumer</th>'
           f"{head}</tr></thead><tbody>"]
    tiers = (("tree", "matter for this tree"), ("other", "other consumers"), ("legacy", "legacy"))
    for tier, label in tiers:
        members = [c for c in doc["consumers"]["totals"] if roles.get(c) == tier]
        if not members:
            continue
        out.append(f'<tr><th class="tier" colspan="{len(formats) + 1}">{escape(label)}</th></tr>')
        for cid in members:
            cells = []
            for fmt, _label, totals in formats:
                t = totals.get(cid)
                klass = _cell_class(t, cid in na)
                if t is None:
                    cells.append('<td class="c v-na" title="not computed">–</td>')
                    continue
                n = affected(t)
                tip = (f"{consumer_title(cid)}, {FORMAT_TITLES.get(fmt, 'as built')}: {n:,} of "
                       f"{t['modules']:,} module(s) affected; verdicts: {verdicts_text(t['verdicts'])}; "
                       f"lost {t['lost']:,} import version(s), {t['false_messages']:,} false warning(s)"
                       + (f"; {t['not_buildable']:,} not buildable" if t["not_buildable"] else "")
                       + (f"; does not apply: {na[cid]}" if cid in na else ""))
                shown_n = "n/a" if cid in na else f"{n:,}"
                cells.append(f'<td class="c {klass}" title="{escape(tip)}">{shown_n}</td>')
            out.append(f'<tr><th scope="row" title="{escape(consumer_title(cid))}">'
                       f'{escape(_MATRIX_TITLES.get(cid, short_title(cid)))}</th>{"".join(cells)}</tr>')
    out.append("</tbody></table></div>")
    out.append('<p class="legend">Each cell: modules that cost this consumer something (lost or misread '
               'versions, false warnings, refused, unreadable, kABI-incompatible) as built and if the tree were '
               'built in each other format; hover for the counts. <span class="v-ok">none</span>'
               '<span class="v-warn">some partial / tainted</span><span class="v-bad">refused, unreadable or '
               'false warnings</span><span class="v-info">never checks versions</span>'
               '<span class="v-na">does not apply</span></p>')
    return "".join(out)


def _axis_ticks(top: int, n: int = 4) -> list[int]:
    """Round tick values from 0 to at least ``top``."""
    if top <= 0:
        return [0, 1]
    raw_step = top / n
    mag = 10 ** (len(str(int(raw_step))) - 1)
    step = next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw_step)
    return list(range(0, top + step, step))[: n + 2]


def _hbar_chart(title: str, items: list[tuple[str, int]], chart_id: str, unit: str, width: int = 720) -> str:
    """Horizontal bars with a labelled x axis (``unit``), grid lines and each bar's value."""
    bar_h, gap, left, top_pad = 18, 6, 230, 28
    plot_w = width - left - 60
    ticks = _axis_ticks(max([v for _, v in items] + [1]))
    scale = plot_w / ticks[-1]
    h = top_pad + len(items) * (bar_h + gap) + 44
    parts = [f'<svg class="chart" id="{chart_id}" role="img" aria-label="{escape(title)}" viewBox="0 0 {width} {h}" '
             f'width="{width}" xmlns="http://www.w3.org/2000/svg" font-family="sans-serif">',
             f'<text x="0" y="16" font-weight="bold" font-size="14">{escape(title)}</text>']
    base = top_pad + len(items) * (bar_h + gap)
    for tv in ticks:
        x = left + tv * scale
        parts.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{top_pad}" y2="{base}" stroke="#e3e7ee"/>'
                     f'<text x="{x:.1f}" y="{base + 14}" font-size="11" text-anchor="middle">{tv:,}</text>')
    parts.append(f'<line x1="{left}" x2="{left}" y1="{top_pad}" y2="{base}" stroke="#5b6575"/>'
                 f'<text x="{left + plot_w / 2:.1f}" y="{base + 32}" font-size="12" text-anchor="middle">'
                 f'{escape(unit)}</text>')
    for i, (label, v) in enumerate(items):
        y = top_pad + i * (bar_h + gap)
        w = v * scale
        short = label if len(label) <= 34 else label[:33] + "…"
        parts.append(f'<text x="{left - 6}" y="{y + 13}" text-anchor="end" font-size="12">{escape(short)}'
                     f'<title>{escape(label)}</title></text>')
        parts.append(f'<rect x="{left}" y="{y}" width="{w:.1f}" height="{bar_h}" fill="{_BLUE}">'
                     f'<title>{escape(label)}: {v:,}</title></rect>')
        parts.append(f'<text x="{left + w + 4:.1f}" y="{y + 13}" font-size="12">{v:,}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _histogram(hist: dict[str, int], limit: int | None, width: int = 900, height: int = 300) -> str:
    """Import name lengths: vertical bars, axes with ticks and titles, the __versions limit and a legend."""
    if not hist:
        return ""
    lengths = {int(k): v for k, v in hist.items()}
    hi = max(max(lengths), (limit or 0) + 5)
    left, bottom, top_pad, right = 64, 48, 44, 12
    plot_w, plot_h = width - left - right, height - bottom - top_pad
    bw = plot_w / (hi + 1)
    yticks = _axis_ticks(max(lengths.values()))
    ys = plot_h / yticks[-1]
    base = top_pad + plot_h
    parts = [f'<svg class="chart" id="name-length-histogram" role="img" aria-label="import name lengths" '
             f'viewBox="0 0 {width} {height}" width="{width}" xmlns="http://www.w3.org/2000/svg" '
             'font-family="sans-serif">',
             '<text x="0" y="16" font-weight="bold" font-size="14">Import name lengths, all modules</text>',
             # the legend, inside the chart
             f'<rect x="0" y="24" width="12" height="12" fill="{_BLUE}"/><text x="16" y="34" font-size="12">'
             'fits __versions</text>',
             f'<rect x="130" y="24" width="12" height="12" fill="{_RED}"/><text x="146" y="34" font-size="12">'
             'too long: only the extended tables can version it</text>']
    for tv in yticks:
        y = base - tv * ys
        parts.append(f'<line x1="{left}" x2="{width - right}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e3e7ee"/>'
                     f'<text x="{left - 6}" y="{y + 4:.1f}" font-size="11" text-anchor="end">{tv:,}</text>')
    parts.append(f'<text x="14" y="{top_pad + plot_h / 2:.1f}" font-size="12" text-anchor="middle" '
                 f'transform="rotate(-90 14 {top_pad + plot_h / 2:.1f})">imports</text>')
    for length, v in sorted(lengths.items()):
        x = left + length * bw
        h = v * ys
        color = _RED if limit is not None and length > limit else _BLUE
        parts.append(f'<rect x="{x:.1f}" y="{base - h:.1f}" width="{max(bw - 1, 1):.1f}" height="{h:.1f}" '
                     f'fill="{color}"><title>{length} characters: {v:,} imports</title></rect>')
    for tick in range(0, hi + 1, 10):
        x = left + (tick + 0.5) * bw
        parts.append(f'<text x="{x:.1f}" y="{base + 14}" font-size="11" text-anchor="middle">{tick}</text>')
    parts.append(f'<line x1="{left}" x2="{width - right}" y1="{base}" y2="{base}" stroke="#5b6575"/>'
                 f'<text x="{left + plot_w / 2:.1f}" y="{height - 8}" font-size="12" text-anchor="middle">'
                 'name length (characters)</text>')
    if limit is not None:
        x = left + (limit + 1) * bw
        anchor, dx = ("end", -4) if x > width - 200 else ("start", 4)
        parts.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{top_pad}" y2="{base}" stroke="{_RED}" '
                     f'stroke-width="2" stroke-dasharray="5 3"/><text x="{x + dx:.1f}" y="{top_pad + 12}" '
                     f'font-size="12" fill="{_RED}" text-anchor="{anchor}">__versions limit: {limit}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _module_data(doc: dict) -> tuple[str, list[str], list[str]]:
    """The module table's rows as compact JSON (verdicts and formats by index), safe inside <script>."""
    consumers = list(doc["consumers"]["totals"])
    roles = doc["summary"]["audience"]
    verdicts: list[str] = []
    formats: list[str] = []
    vidx: dict[str, int] = {}
    fidx: dict[str, int] = {}
    rows = []
    for m in doc["consumers"]["per_module"]:
        fmt = m.get("format", "?")
        if fmt not in fidx:
            fidx[fmt] = len(formats)
            formats.append(fmt)
        vs = []
        for cid in consumers:
            v = m["verdicts"].get(cid, "")
            if v not in vidx:
                vidx[v] = len(verdicts)
                verdicts.append(v)
            vs.append(vidx[v])
        counts = m.get("counts", {})  # consumer -> [lost, misread, false] (problems: listed for some modules)
        counted = [c for c in counts if roles.get(c) != "legacy"]
        rows.append([shown(m["path"]), fidx[fmt], vs, sum(counts[c][0] for c in counted),
                     sum(counts[c][2] for c in counted)])
    classes = ["v-bad" if SEVERITY.get(v, 0) >= 3 else "v-warn" if v in BAD_VERDICTS else
               "v-info" if v == "ignores-versions" else "v-ok" if v else "" for v in verdicts]
    data = {"consumers": consumers, "verdicts": verdicts, "formats": formats, "rows": rows, "classes": classes,
            "bad": [v in BAD_VERDICTS for v in verdicts], "counted": [roles.get(c) != "legacy" for c in consumers]}
    # "<" escaped: the block cannot close the <script> element whatever a module is called.
    text = json.dumps(data, separators=(",", ":"), ensure_ascii=False).replace("<", "\\u003c")
    return text, verdicts, formats


def _modules_section(doc: dict) -> str:
    consumers = list(doc["consumers"]["totals"])
    data, verdicts, formats = _module_data(doc)
    n = len(doc["consumers"]["per_module"])
    opts = lambda items: "".join(f'<option value="{i}">{escape(x)}</option>' for i, x in items)  # noqa: E731
    head = "".join(f'<th title="{escape(consumer_title(c))}">{escape(short_title(c))}</th>'
                   for c in consumers)
    return (f'<details id="modules-details"><summary>Every module ({n:,}): search, filter, sort, page</summary>'
            '<noscript><p>The module table needs JavaScript; report.json lists every module.</p></noscript>'
            '<div class="controls" id="m-controls" hidden>'
            '<input type="search" id="m-search" placeholder="search module paths" aria-label="search modules">'
            f'<label>consumer <select id="m-consumer"><option value="">any</option>'
            f'{opts(enumerate(short_title(c) for c in consumers))}</select></label>'
            f'<label>verdict <select id="m-verdict"><option value="">any</option>{opts(enumerate(verdicts))}'
            '</select></label>'
            f'<label>format <select id="m-format"><option value="">any</option>{opts(enumerate(formats))}'
            '</select></label>'
            '<label><input type="checkbox" id="m-problem"> only modules with a problem (legacy aside)</label>'
            '<button type="button" id="m-prev">previous</button><button type="button" id="m-next">next</button>'
            '<span id="m-info" class="small"></span></div>'
            '<div class="scroll"><table id="modules-table"><thead><tr><th>module</th><th>format</th>'
            f'{head}<th>lost</th><th>false warnings</th></tr></thead><tbody id="m-body"></tbody></table></div>'
            '<p class="small">Click a column to sort. Lost and false warnings: summed over every consumer but the '
            'legacy ones.</p>'
            f'<script type="application/json" id="module-data">{data}</script></details>')


def _consumer_table(totals: dict, na: set[str]) -> str:
    return _table(["consumer", "verdicts (modules)", "lost import versions", "modules losing", "false warnings",
                   "modules with false warnings", "misread", "unchecked", "not buildable"],
                  [[table_title(c, na), verdicts_text(t["verdicts"]), t["lost"], t["modules_losing"],
                    t["false_messages"], t["modules_false"], t["misread"], t["unchecked"], t["not_buildable"]]
                   for c, t in totals.items()])


def _risk_item(r: dict) -> str:
    tag = ('<span class="tag hyp">hypothetical</span>' if r["hypothetical"] else
           '<span class="tag legacy">legacy</span>' if r["audience"] == "legacy" else
           '<span class="tag">this tree</span>' if r["audience"] == "tree" else '<span class="tag">other</span>')
    return f"<li>{tag}{escape(r['text'])}</li>"


def render(doc: dict) -> str:
    t, s = doc["tree"], doc["summary"]
    k = s["key_figures"]
    title = f"{t['kernel_release']}: {s['short']}"
    figures = [("modules", f"{k['modules']:,}"), ("unreadable", f"{k['unreadable']:,}"),
               ("imports", f"{k['imports']:,}"), ("import versions", f"{k['import_versions']:,}"),
               ("real checks", f"{k['real_checks']:,}"), ("format", t["modversions"]),
               ("kernel MODVERSIONS", {True: "yes", False: "no", None: "unknown"}[t["kernel_modversions"]]),
               ("arch", f"{t['arch']} ELF{t['elfclass']} {t['endian']}")]
    toc = [("matrix", "Matrix"), ("risks", "Risks")] + ([("diff", "Diff")] if doc.get("diff") else []) + [
        ("findings", "Findings"), ("unreadable", "Unreadable"), ("consumers", "Consumers"),
        ("usefulness", "CRC checks"), ("names", "Name lengths"), ("census", "Formats"), ("graph", "Graph"),
        ("modules", "Modules")]
    out = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
           '<meta name="viewport" content="width=device-width, initial-scale=1">',
           f"<title>{escape('kmodcompat: ' + title)}</title><style>{_CSS}</style></head><body><main>",
           '<header id="top">', f"<h1>{escape(title)}</h1>",
           f'<div class="verdict {"ok" if s["ok"] else "bad"}" id="verdict">{escape(s["verdict"])}</div>']
    if s["not_applicable"]:  # said once, compactly: it is why some matrix cells read "n/a"
        out.append(f'<div class="na">{escape(" ".join(s["not_applicable"]))}</div>')
    out.append('<ul class="figures" id="key-figures">' + "".join(
        f"<li>{escape(label)} <b>{escape(v)}</b></li>" for label, v in figures) + "</ul>")
    out.append('<nav class="toc" aria-label="contents">' + " ".join(
        f'<a href="#{i}">{escape(x)}</a>' for i, x in toc) + "</nav></header>")
    out.append('<h2 id="matrix">Consumers × formats: modules affected</h2>')
    out.append(_matrix(doc))
    out.append('<h2 id="risks">Risks, costliest for this tree first</h2>')
    out.append('<ol class="risks">' + "".join(_risk_item(r) for r in s["risks"]) + "</ol>"
               if s["risks"] else "<p>None.</p>")
    said = {s["verdict"], *s["not_applicable"], *(r["text"] for r in s["risks"])}
    facts = [h for h in doc["headlines"] if h not in said]
    if facts:
        out.append("<h3>Facts</h3><ul>" + "".join(f"<li>{escape(h)}</li>" for h in facts) + "</ul>")
    out.append(f'<p class="small">{escape(s["units"])}</p>')
    # Where the kernel's exports came from and what that source lacks (files/kernel.py KernelSource.line).
    out.append(f'<p class="small" id="kernel-exports">{escape(t["kernel_exports"]["line"])}</p>')
    if t.get("kernel_loader"):  # the loader profile of the tree's kernel (report kernel_loader)
        out.append(f'<p class="small" id="kernel-loader">{escape(t["kernel_loader"]["line"])}</p>')
    if doc.get("diff"):
        out.append(html_fragment(doc["diff"], more_hint="report.json has all"))
    f = doc["findings"]
    out.append('<h2 id="findings">Findings</h2>')
    out.append(_table(["code", "modules"], sorted(f["by_code"].items())) if f["by_code"] else "<p>None.</p>")
    out.append('<h2 id="unreadable">Unreadable modules</h2>')
    out.append(_table(["module", "reason"], [[_Raw(f"<code>{escape(x['path'])}</code>"), x["reason"]]
                                             for x in doc["unreadable"]]) if doc["unreadable"] else "<p>None.</p>")
    out.append('<h2 id="consumers">What each consumer sees</h2><h3>As built</h3>')
    na = set(not_applicable(doc))
    out.append(_consumer_table(doc["consumers"]["totals"], na))
    for fmt, totals in doc["simulation"].items():
        out.append(f"<details><summary>If built {escape(FORMAT_TITLES.get(fmt, fmt))}</summary>"
                   f"{_consumer_table(totals, na)}</details>")
    u = doc["crc_usefulness"]
    out.append('<h2 id="usefulness">Are these CRCs checking anything?</h2>')
    out.append(_table(["", "imports"], [
        ["imports", u["imports"]], ["versioned in __versions", u["versioned_basic"]],
        ["versioned only in the extended tables", u["versioned_ext_only"]], ["unversioned", u["unversioned"]],
        ["placeholder CRC (crc32 of 'int NAME ')", u["placeholder_int"]],
        ["... on functions: checks only the name", u["placeholder_on_functions"]],
        ["... exporter kind unknown (not counted as real)", u["placeholder_unknown_kind"]],
        ["real checks", u["real_checks"]], ["Rust imports", u["rust_imports"]],
        ["Rust imports versioned only in the extended tables", u["rust_ext_only"]]]))
    n = doc["name_lengths"]
    out.append('<h2 id="names">Symbol name lengths</h2>')
    out.append(_histogram(n["histogram"], t["basic_name_limit"]))
    ln = doc["long_names"]
    out.append(f'<p id="long-names">{escape(long_names_summary(ln))}</p>')
    for kind in ("exports", "imports"):
        if ln[kind]["names"]:
            rows = long_names_rows(ln[kind], LONG_NAMES_LISTED)
            out.append(_table(["length", "", kind[:-1] + "ed", "demangled", "by"],
                              [[length, lang, _Raw(f"<code>{escape(name)}</code>"), readable, by]
                               for length, lang, name, readable, by in rows]))
            if ln[kind]["total"] > LONG_NAMES_LISTED:
                out.append(f"<p>... and {ln[kind]['total'] - LONG_NAMES_LISTED} more in report.json "
                           "(<code>long_names</code>).</p>")
    out.append(f'<p id="ksym-requires">{escape(ksym_requires_line(doc["ksym_requires"]))}</p>')
    out.append('<h2 id="census">Modules by modversions format</h2>')
    out.append(_hbar_chart("Modules by modversions format", [(FORMAT_TITLES.get(f, f), v) for f, v in
                                                             doc["format_census"]["modules_by_format"].items()],
                           "format-census-chart", "modules"))
    g = doc["graph"]
    out.append('<h2 id="graph">Dependency graph</h2>')
    out.append(_table(["", ""], [
        ["nodes / edges", f"{g['nodes']:,} / {g['edges']:,}"],
        ["longest dependency chain", g["longest_dependency_chain"]],
        ["cycles", len(g["cycles"])], ["unresolved imports", g["unresolved"]["strong"]],
        ["imports not checkable (kernel exports unknown)", g["not_checkable"]["total"]],
        ["symbols exported twice", len(g["duplicate_exports"])],
        ["depmod 'disagrees' warnings", g["disagreements"]["total"]],
        ["... of which false", g["disagreements"]["false_positive"]]]))
    if g["most_depended_on"]:
        out.append(_hbar_chart("Most depended-on modules", [(x["module"], x["dependents"])
                                                            for x in g["most_depended_on"]], "depended-chart",
                               "modules depending on it"))
    e = doc["exports"]
    out.append(f"<p>{e['exported']:,} exports; {e['unused']:,} are used by no module of the tree.</p>")
    out.append('<h2 id="modules">Modules</h2>')
    out.append(_modules_section(doc))
    out.append(f'<p class="small">Generated by kmodcompat {escape(doc["generator"]["version"])}, report schema '
               f'{doc["schema_version"]}.</p>')
    out.append(f"</main><script>{_JS}</script></body></html>")
    return "\n".join(out) + "\n"
