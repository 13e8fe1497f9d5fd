"""Views over many modules: totals agree with the per-module views; the CLI renders them."""

from __future__ import annotations

import json
import subprocess
import sys

from kmodcompat.consumers import CONSUMERS
from kmodcompat.parse.module import parse_module
from kmodcompat.views import ALL_FORMATS, AS_IS, compute_views

from .paths import MODULES as FIX, REPO

KINDS = ("none", "basic", "basic+ext", "ext-only", "varlen")


def entries():
    return [(str(p), parse_module(str(p))) for k in KINDS for p in sorted(FIX.glob(f"*/{k}.ko"))]


def test_parallel_views_equal_serial():
    mods = entries() * 8
    a = compute_views(mods, formats=ALL_FORMATS, keep_formats=(AS_IS,), jobs=1)
    b = compute_views(mods, formats=ALL_FORMATS, keep_formats=(AS_IS,), jobs=2)
    assert a.totals == b.totals
    assert [(m.path, {c: v.as_dict() for c, v in m.by_format[AS_IS].items()}) for m in a.modules] == \
        [(m.path, {c: v.as_dict() for c, v in m.by_format[AS_IS].items()}) for m in b.modules]


def test_totals_are_sums_of_module_views():
    mods = entries()
    res = compute_views(mods, formats=ALL_FORMATS, keep_formats=ALL_FORMATS)
    for t in res.totals:
        views = [m.by_format[t.format][t.consumer] for m in res.modules if not isinstance(m.by_format[t.format], str)]
        assert t.modules == len(views)
        assert t.not_buildable == sum(isinstance(m.by_format[t.format], str) for m in res.modules)
        assert t.lost == sum(len(v.lost) for v in views)
        assert t.false_messages == sum(len(v.false_messages) for v in views)
        assert sum(t.verdicts.values()) == t.modules
        assert t.modules + t.not_buildable == len(mods)


def test_as_is_equals_each_consumer_called_directly():
    mods = entries()
    res = compute_views(mods, consumers=list(CONSUMERS), keep_formats=(AS_IS,))  # the Debian profile's too
    for (path, rec), m in zip(mods, res.modules):
        for c, view in CONSUMERS.items():
            assert m.by_format[AS_IS][c].as_dict() == view(rec, path=path, judge_unknown=False).as_dict()


def test_every_format_equals_each_consumer_called_directly():
    # The consumers share their work across the models and the formats of a module; each
    # view must still be what that model alone makes of that simulated record.
    from kmodcompat.consumers.base import exporter_crcs
    from kmodcompat.simulate import BuildError, simulate_record

    mods = entries()
    tree = {}
    for _, rec in mods:
        tree.update({k: v ^ (len(k) % 3 == 0) for k, v in exporter_crcs(rec).items()})  # some CRCs differ
    for expected in (None, tree):
        res = compute_views(mods, list(CONSUMERS), formats=ALL_FORMATS, expected=expected, keep_formats=ALL_FORMATS)
        for (path, rec), m in zip(mods, res.modules):
            truth = exporter_crcs(rec)
            for fmt, views in m.by_format.items():
                try:
                    target = rec if fmt == AS_IS else simulate_record(rec, fmt, extra=expected)
                except BuildError as e:
                    assert views == str(e)
                    continue
                for c, view in CONSUMERS.items():
                    assert views[c] == view(target, expected=truth if expected is None else expected, truth=truth,
                                            path=path, judge_unknown=expected is not None), (path, fmt, c)


def test_simulated_basic_cannot_hold_long_names():
    rec = parse_module(str(FIX / "x86_64" / "basic+ext.ko"))
    res = compute_views([("m", rec)], formats=("basic",), keep_formats=("basic",))
    assert "too long symbol" in res.modules[0].by_format["basic"]
    assert res.total("basic", "kmod34").not_buildable == 1


def test_ext_only_headline_figures():
    rec = parse_module(str(FIX / "x86_64" / "basic.ko"))
    res = compute_views([("m", rec)], consumers=["kmod34", "kernel-6.13", "kernel-6.14"], formats=("ext-only",))
    k = res.total("ext-only", "kmod34")
    n_imports = len(rec.versions.entries) - 1  # module_layout is no .symtab import
    assert (k.lost, k.false_messages, k.modules_false) == (len(rec.versions.entries), n_imports, 1)
    assert res.total("ext-only", "kernel-6.13").verdicts == {"refuses": 1}
    assert res.total("ext-only", "kernel-6.14").verdicts == {"loads": 1}


def test_tree_crcs_catch_a_real_change():
    rec = parse_module(str(FIX / "s390x" / "basic.ko"))
    from kmodcompat.consumers.base import exporter_crcs
    exp = exporter_crcs(rec)
    exp["kfree"] ^= 1
    res = compute_views([("m", rec)], consumers=["kmod34"], expected=exp)
    t = res.total(AS_IS, "kmod34")
    assert t.messages == 1 and t.false_messages == 0


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "kmodcompat", *args], capture_output=True, text=True, cwd=REPO)


def test_cli_views_json_and_text():
    p = _cli("views", "--simulate", "--format", "json", str(FIX / "x86_64" / "basic+ext.ko"),
             str(FIX / "x86_64" / "notelf.ko"))
    assert p.returncode == 2, p.stderr  # a module file named that cannot be read: an input error; the rest shown
    doc = json.loads(p.stdout)
    assert doc["schema_version"] == 1 and doc["formats"] == list(ALL_FORMATS)
    assert doc["unreadable"][0]["path"].endswith("notelf.ko")  # reported, never dropped
    assert "notelf.ko" in p.stderr
    p = _cli("views", "--consumer", "kmod34", str(FIX / "x86_64" / "basic+ext.ko"))
    assert "kmod 34.2 would lose 1 import version(s) in 1 module(s)" in p.stdout


def test_cli_usage_errors_are_one_line_and_status_2():
    p = _cli("views", "/nonexistent/x.ko")
    assert p.returncode == 2 and p.stderr.strip().count("\n") == 0 and "Traceback" not in p.stderr


def test_cli_simulate_writes_readable_modules(tmp_path):
    p = _cli("simulate", "--format-as", "ext-only", "--out", str(tmp_path), str(FIX / "x86_64" / "basic.ko"))
    assert p.returncode == 0, p.stderr
    out = parse_module(str(tmp_path / "basic.ko"))
    assert out.modversions_format == "ext-only"
