"""Adding a consumer is one model and one :func:`~kmodcompat.consumers.register` call.

A throwaway consumer, defined here and registered the way every real one is,
runs through views (the library and the ``views`` command's text, markdown
and JSON), the report (JSON, markdown, HTML) and a tree diff on trees made of
fixture modules, and its numbers are those its model implies, computed here
from the parsed records without it. tally.py has no counting rule for it:
compute_views counts it from its model's views. Unregistered, it is gone.
"""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

import jsonschema
import pytest

from kmodcompat.cli import main
from kmodcompat.cli.report import report_text
from kmodcompat.consumers import CONSUMERS, Consumer, register, standard, title, unregister
from kmodcompat.consumers.base import OK, PARTIAL, ConsumerView, Reading, own_crcs
from kmodcompat.depmod.tree import load_tree
from kmodcompat.diff import diff_trees
from kmodcompat.parse.module import parse_module
from kmodcompat.records import Modversion
from kmodcompat.report import build_report, schema
from kmodcompat.report import markdown as md_report
from kmodcompat.report import html as html_report
from kmodcompat.report.diff_json import to_json as diff_to_json
from kmodcompat.views import ALL_FORMATS, AS_IS, compute_views

from .paths import X86_64 as FIX

KVER = "6.1.0-registry-test"
ID = "short-sighted"
TITLE = "short-sighted reader (test model, names ≤ 20)"
LIMIT = 20


def short_sighted(r: Reading) -> ConsumerView:
    """Reads every version table as kmod would, but loses each name longer than LIMIT characters,
    and says so once per name."""
    recorded = own_crcs(r.rec)
    visible = tuple(Modversion(crc, name) for name, crc in recorded.items() if len(name) <= LIMIT)
    seen = {m.name for m in visible}
    lost = tuple(name for name in r.truth if name not in seen)
    messages = tuple(f"{ID}: {r.path}: {name}: name too long" for name in recorded if len(name) > LIMIT)
    return ConsumerView(ID, r.path, PARTIAL if lost else OK, visible, lost, messages=messages)


@pytest.fixture
def registered():
    before = dict(CONSUMERS)
    consumer = register(Consumer(ID, TITLE, short_sighted))
    try:
        yield consumer
    finally:
        unregister(ID)
    assert CONSUMERS == before and list(CONSUMERS) == list(before)  # the registry as it was, in its order


def make_tree(root: Path, files: list[str]) -> Path:
    """ROOT/lib/modules/KVER/kernel/<fixture modules>: a tree with no kernel exports (each module's own CRCs)."""
    mods = root / "lib" / "modules" / KVER / "kernel"
    mods.mkdir(parents=True)
    for name in files:
        shutil.copyfile(FIX / name, mods / name)
    return root


def implied(recs) -> dict[str, Counter]:
    """Format → the model's totals, computed from the records alone (exporter CRCs: each module's own).

    As built: what the module records. ``none``: nothing, every versioned import lost. The other
    formats hold modpost's table of the versioned imports, so the recorded names are the imports'."""
    out = {f: Counter() for f in (AS_IS, "none", "ext-only")}
    for rec in recs:
        recorded = own_crcs(rec)
        short = sum(len(n) <= LIMIT for n in recorded)
        longs = len(recorded) - short
        for fmt, visible, lost, messages in ((AS_IS, short, longs, longs), ("none", 0, len(recorded), 0),
                                             ("ext-only", short, longs, longs)):
            if fmt == "ext-only" and not recorded:
                continue  # modpost cannot build it: nothing to version
            t = out[fmt]
            t["modules"] += 1
            t["visible"] += visible
            t["lost"] += lost
            t["modules_losing"] += lost > 0
            t["messages"] += messages
            t["verdict " + (PARTIAL if lost else OK)] += 1
    return out


FILES = ["basic.ko", "ext-only.ko", "basic+ext.ko", "exports-rel.ko", "none.ko"]


def test_fixtures_have_what_the_test_needs():
    recs = [parse_module(str(FIX / f)) for f in FILES]
    names = [n for r in recs for n in own_crcs(r)]
    assert any(len(n) > LIMIT for n in names) and any(len(n) <= LIMIT for n in names)
    assert any(not own_crcs(r) for r in recs)  # one module modpost cannot build in ext-only


def test_a_registered_consumer_runs_in_views(registered, tmp_path, capsys):
    assert ID in standard() and title(ID) == TITLE
    recs = [(str(FIX / f), parse_module(str(FIX / f))) for f in FILES]
    want = implied(r for _, r in recs)
    # Kept and not kept: the model's own views, and the counts compute_views derives from them
    # where tally.py counts the other consumers.
    for keep in ((), ALL_FORMATS):
        res = compute_views(recs, formats=ALL_FORMATS, keep_formats=keep)
        assert ID in res.consumers
        for fmt, w in want.items():
            t = res.total(fmt, ID)
            got = Counter({k: getattr(t, k) for k in ("modules", "visible", "lost", "modules_losing", "messages")})
            got.update({"verdict " + v: n for v, n in t.verdicts.items()})
            assert +got == +w, fmt
            assert t.false_messages == t.misread == t.unchecked == 0
    # The views command, in each of its formats.
    tree = make_tree(tmp_path, FILES)
    moddir = str(tree / "lib" / "modules" / KVER)
    assert main(["views", moddir, "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert ID in doc["consumers"]
    t = next(t for t in doc["totals"] if t["consumer"] == ID and t["format"] == AS_IS)
    assert (t["visible"], t["lost"], t["messages"]) == (want[AS_IS]["visible"], want[AS_IS]["lost"],
                                                       want[AS_IS]["messages"])
    a = want[AS_IS]
    for fmt, row in (("text", f"{ID} "), ("markdown", f"| {ID} ")):  # the views command names consumers by id
        assert main(["views", moddir, "--format", fmt, "--consumer", ID]) == 0
        line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith(row))
        assert f" ok {a['verdict ok']}, partial {a['verdict partial']} " in line
        assert f" {a['lost']} ({a['modules_losing']}) " in line


def test_a_registered_consumer_is_in_the_report(registered, tmp_path):
    tree = make_tree(tmp_path, FILES)
    doc = json.loads(report_text(build_report(load_tree(str(tree), KVER), jobs=1)))  # report.json, as written
    jsonschema.validate(doc, schema())
    want = implied(parse_module(str(FIX / f)) for f in FILES)
    t = doc["consumers"]["totals"][ID]
    assert (t["modules"], t["visible"], t["lost"], t["modules_losing"], t["messages"]) == tuple(
        want[AS_IS][k] for k in ("modules", "visible", "lost", "modules_losing", "messages"))
    losing = [m for m in doc["consumers"]["per_module"] if ID in m.get("counts", {})]
    assert len(losing) == want[AS_IS]["modules_losing"]
    assert all(m["verdicts"][ID] == PARTIAL for m in losing)
    for fmt in ("none", "ext-only"):  # the simulated formats, counted from the model beside tally's counts
        t = doc["simulation"][fmt][ID]
        assert (t["modules"], t["visible"], t["lost"], t["messages"]) == tuple(
            want[fmt][k] for k in ("modules", "visible", "lost", "messages")), fmt
    assert TITLE in md_report.render(doc)
    assert TITLE in html_report.render(doc)


def test_a_registered_consumer_is_compared_by_diff(registered, tmp_path):
    # The same module with and without modversions: the model loses every import, then only the long ones.
    old = make_tree(tmp_path / "old", ["none.ko"])
    new = make_tree(tmp_path / "new", ["none.ko"])
    shutil.copyfile(FIX / "ext-only.ko", old / "lib" / "modules" / KVER / "kernel" / "none.ko")
    rec = parse_module(str(FIX / "ext-only.ko"))
    versioned = own_crcs(rec)
    doc = diff_to_json(diff_trees(load_tree(str(old), KVER), load_tree(str(new), KVER), consumers=(ID,), jobs=1))
    text = json.dumps(doc)
    assert ID in text
    changes = [c for m in doc["modules"]["changed"] for c in m["consumers"] if c["consumer"] == ID]
    assert len(changes) == 1
    c = changes[0]
    longs = sum(len(n) > LIMIT for n in versioned)
    assert c["old"]["lost"] == longs and c["new"]["lost"] == 0  # none.ko records nothing: nothing versioned to lose
