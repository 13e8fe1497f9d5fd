#!/usr/bin/env python3
"""Screenshots of report pages at 1,400 x 900 and 420 x 900 in headless chromium, and their layout.

  tools/report-screenshots.py reports/trixie-amd64/report.html [...]

writes reports/<dir>-1400.png and reports/<dir>-420.png (the first viewport) for each page and prints
the page's scroll width and height and where the verdict and the matrix are, at both widths.
"""
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from tests.cdp import Browser  # noqa: E402
from tests.test_report_browser import _LAYOUT, WIDTHS  # noqa: E402

with Browser() as b:
    for arg in sys.argv[1:]:
        page_path = Path(arg).resolve()
        for w in WIDTHS:
            page = b.page(w, 900)
            page.goto(page_path.as_uri())
            lay = page.eval(_LAYOUT)
            out = REPO / "reports" / f"{page_path.parent.name}-{w}.png"
            page.screenshot(str(out))
            print(json.dumps({"page": arg, "width": w, "scrollWidth": lay["scrollWidth"],
                              "scrollHeight": lay["scrollHeight"], "verdict": lay["verdict"],
                              "matrix": lay["matrix"], "errors": page.errors(), "screenshot": str(out)}))
