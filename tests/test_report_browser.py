"""The HTML report in a real browser: Debian's chromium, headless, driven over the DevTools protocol (tests/cdp.py).

On the demo tree and (realtree) on a real Debian tree, at 1,400 × 900 and 420 × 900: the verdict and
the consumer × format matrix are in the first viewport, the page never scrolls sideways, the search
box filters the module table, and nothing is logged as an error.

``KMODCOMPAT_SAVE_SCREENSHOT=1`` refreshes the committed screenshots under reports/.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from kmodcompat.cli.report import demo_tree
from kmodcompat.depmod.tree import load_tree
from kmodcompat.report import build_report
from kmodcompat.report import html as html_report

from . import cdp
from .paths import REPO

WIDTHS = (1400, 420)

NO_CHROMIUM = "chromium not installed (tools/test.sh installs Debian's chromium)"

_LAYOUT = """(function(){
  var box = function(id){ var e = document.getElementById(id); if (!e) return null;
    var r = e.getBoundingClientRect(); return [r.top, r.bottom, r.left, r.right]; };
  return {scrollWidth: document.documentElement.scrollWidth, scrollHeight: document.documentElement.scrollHeight,
          innerWidth: innerWidth, innerHeight: innerHeight, verdict: box('verdict'),
          matrix: box('consumer-matrix'), body: document.body.scrollWidth};
})()"""

_SEARCH = """(function(){
  document.getElementById('modules-details').open = true;
  var rows = function(){ return document.querySelectorAll('#m-body tr').length; };
  var info = function(){ return document.getElementById('m-info').textContent; };
  var before = [rows(), info()];
  var q = document.getElementById('m-search'); q.value = %s; q.dispatchEvent(new Event('input'));
  var after = [rows(), info(), Array.prototype.map.call(document.querySelectorAll('#m-body tr td:first-child'),
                                                       function(td){ return td.textContent; })];
  q.value = ''; q.dispatchEvent(new Event('input'));
  var p = document.getElementById('m-problem'); p.checked = true; p.dispatchEvent(new Event('change'));
  var problems = info(); p.checked = false; p.dispatchEvent(new Event('change'));
  return {before: before, after: after, problems: problems, matrixCells: document.querySelectorAll(
    '#consumer-matrix td.c').length};
})()"""


def check_page(page_path: Path, needle: str, shots: dict[int, Path] | None = None) -> dict:
    """Load ``page_path`` at each width and check it; returns the layout measured per width."""
    measured = {}
    with cdp.Browser() as b:
        for width in WIDTHS:
            page = b.page(width, 900)
            page.goto(page_path.as_uri())
            lay = page.eval(_LAYOUT)
            measured[width] = lay
            assert lay["scrollWidth"] <= width, (width, lay)  # no horizontal scroll of the page
            assert lay["verdict"] and lay["verdict"][1] <= 900, (width, lay)
            assert lay["matrix"] and lay["matrix"][0] < 900 * 0.75 and lay["matrix"][1] <= 900, (width, lay)
            if shots:
                page.screenshot(str(shots[width]))
            r = page.eval(_SEARCH % repr(needle))
            assert r["before"][0] > 0 and r["matrixCells"] > 10, r
            names = r["after"][2]
            assert names and all(needle in n for n in names), r  # the search box filters the table
            assert r["after"][0] <= r["before"][0] and "of" in r["after"][1]
            assert page.errors() == []  # no console error, no uncaught exception
    return measured


@pytest.mark.skipif(cdp.chromium() is None, reason=NO_CHROMIUM)
def test_demo_report_in_chromium(tmp_path):
    base, kver = demo_tree()
    doc = build_report(load_tree(base, kver), jobs=1)
    page = tmp_path / "report.html"
    page.write_text(html_report.render(doc))
    shots = {w: tmp_path / f"demo-{w}.png" for w in WIDTHS}
    check_page(page, "ext_only", shots)
    for shot in shots.values():
        assert shot.stat().st_size > 10_000
    if os.environ.get("KMODCOMPAT_SAVE_SCREENSHOT") == "1":
        for w, shot in shots.items():
            shutil.copy(shot, REPO / "reports" / f"demo-{w}.png")


def check_real_report(name: str, doc: dict, tmp_path: Path) -> dict:
    """The browser checks on a real tree's report (tests/test_report.py calls it with the report it built,
    so CI builds each real tree's report once)."""
    text = html_report.render(doc)
    assert len(text.encode()) < 2_000_000 * len(doc["consumers"]["per_module"]) / 5000  # < 2 MB for 5,000
    page = tmp_path / "report.html"
    page.write_text(text)
    shots = {w: tmp_path / f"{name}-{w}.png" for w in WIDTHS}
    measured = check_page(page, "ext4", shots)
    if os.environ.get("KMODCOMPAT_SAVE_SCREENSHOT") == "1":
        for w, shot in shots.items():
            shutil.copy(shot, REPO / "reports" / f"{name}-{w}.png")
    return measured
