"""The compatibility report: JSON against its schema, renderings, exit codes, a real browser."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest

from kmodcompat.cli.report import demo_tree
from kmodcompat.report.policy import evaluate, parse_policy
from kmodcompat.report import build_report, schema
from kmodcompat.report import html as html_report
from kmodcompat.report import markdown as md_report
from kmodcompat.depmod.tree import load_tree

from . import oracle
from .paths import REPO


@pytest.fixture(scope="module")
def demo_doc():
    base, kver = demo_tree()
    return build_report(load_tree(base, kver), jobs=1)


def test_a_debian_kernel_adds_its_models_and_is_the_trees_kernel(demo_doc):
    # The demo tree has no boot image: kernel.org's loader, by lack of evidence.
    assert demo_doc["tree"]["kernel_loader"]["profile"] == "mainline" and not demo_doc["tree"]["kernel_loader"]["models"]
    assert not [c for c in demo_doc["consumers"]["totals"] if "debian" in c]
    base, kver = demo_tree()
    d = build_report(load_tree(base, kver), jobs=1, kernel_profile="debian")
    jsonschema.validate(d, schema())
    loader = d["tree"]["kernel_loader"]
    # No config in the tree: CONFIG_MODULE_FORCE_LOAD=y, as every Debian config has it.
    assert loader["models"] == ["kernel-6.13-debian+force", "kernel-6.14-debian+force"]
    totals = d["consumers"]["totals"]
    assert list(totals)[:len(demo_doc["consumers"]["totals"])] == list(demo_doc["consumers"]["totals"])  # era views kept
    assert set(totals) - set(demo_doc["consumers"]["totals"]) == set(loader["models"])
    assert "kernel-6.14-debian+force" in d["summary"]["consumers_for_tree"]  # 6.14.0-kmodcompat-demo
    assert "kernel-6.14" not in d["summary"]["consumers_for_tree"]
    assert "Debian's" in loader["line"] and loader["line"] in md_report.render(d) and 'id="kernel-loader"' in \
        html_report.render(d)


def test_demo_report_validates_against_schema(demo_doc):
    jsonschema.validate(demo_doc, schema())
    assert demo_doc["schema_version"] == 1
    assert demo_doc["tree"]["kernel_exports"]["symvers"].endswith("Module.symvers")  # found in the tree


def test_demo_report_figures(demo_doc):
    d = demo_doc
    assert d["counts"]["modules"] == 10 and d["counts"]["unreadable"] == 0
    assert d["format_census"]["modules_by_format"]["ext-only"] == 1
    assert d["format_census"]["modules_by_format"]["varlen"] == 1
    k = d["consumers"]["totals"]["kmod34"]
    assert k["false_messages"] > 0 and k["lost"] > 0
    assert d["consumers"]["totals"]["kmod-pr270"]["false_messages"] < k["false_messages"]
    assert d["crc_usefulness"]["placeholder_on_functions"] == 1  # kmc_asm_func, from the fixtures
    assert d["name_lengths"]["over_limit"] >= 1 and d["name_lengths"]["longest"][0]["demangled"]
    assert d["simulation"]["ext-only"]["kernel-6.13"]["verdicts"]["refuses"] == 10
    assert any("kmod 34.2 loses" in h for h in d["headlines"])
    paths = {m["path"] for m in d["consumers"]["per_module"]}
    assert "kernel/drivers/demo/kmc_basic_ext_xz.ko.xz" in paths


def test_summary_answers_first(demo_doc):
    s = demo_doc["summary"]
    assert list(demo_doc)[:3] == ["schema_version", "generator", "summary"]
    assert demo_doc["headlines"][0] == s["verdict"] and not s["ok"]
    # The demo's kernel is 6.14 of no known distribution: the current kmods and that kernel matter.
    assert set(s["consumers_for_tree"]) == {"kmod30", "kmod34", "kernel-6.14"}
    assert s["verdict"].startswith("As built: breaks for") and "kmod 34.2" in s["verdict"]
    tiers = [(r["audience"], r["hypothetical"]) for r in s["risks"]]
    assert tiers[0] == ("tree", False)
    first_hypothetical = next(i for i, r in enumerate(s["risks"]) if r["hypothetical"])
    assert all(not r["hypothetical"] for r in s["risks"][:first_hypothetical])
    assert all(r["text"].startswith("If built") for r in s["risks"] if r["hypothetical"])
    assert s["risks"][-1]["consumer"] == "mit"  # legacy last, never drowning the signal
    assert all(len(h) <= 120 for h in demo_doc["headlines"]), [h for h in demo_doc["headlines"] if len(h) > 120]
    md = md_report.render(demo_doc)
    assert md.splitlines()[0].startswith("# 6.14.0-kmodcompat-demo: as built, breaks for")
    for h in demo_doc["headlines"][1:]:
        assert md_report.text(h) in md  # the same headlines, from the JSON


def _healthy(doc: dict, kernel_modversions: bool = True) -> dict:
    """``doc`` with every consumer seeing every module as a healthy Debian 13 tree shows it."""
    import copy

    from kmodcompat.report.summary import headlines, summary

    d = copy.deepcopy(doc)
    d["tree"]["kernel_release"] = "6.12.117+deb13-amd64"
    d["tree"]["kernel_modversions"] = kernel_modversions
    good = {"kmod30": "ok", "kmod34": "ok", "kmod-pr270": "ok", "busybox": "ignores-versions", "mit": "unreadable",
            "kernel-6.13": "loads", "kernel-6.13+force": "loads", "kernel-6.14": "loads",
            "kernel-6.14+force": "loads", "kernel-hashed-rfc": "loads", "weak-modules": "compatible",
            "weak-modules2": "compatible"}
    n = d["counts"]["parsed"]
    for cid, t in d["consumers"]["totals"].items():
        t.update(lost=0, modules_losing=0, false_messages=0, modules_false=0, misread=0, verdicts={good[cid]: n})
    d["consumers"]["totals"]["mit"].update(lost=59, modules_losing=n)
    if not kernel_modversions:
        for cid in ("kernel-6.13", "kernel-6.14"):
            d["consumers"]["totals"][cid]["verdicts"] = {"refuses": n}
    d["counts"]["unreadable"] = 0
    d["summary"] = summary(d)
    d["headlines"] = headlines(d)
    return d


def test_summary_of_a_healthy_tree_says_nothing_is_lost(demo_doc):
    d = _healthy(demo_doc)
    s = d["summary"]
    assert s["ok"] and s["consumers_for_tree"] == ["kmod30", "kmod34", "kernel-6.13"]  # Debian 13 and 12, 6.12
    assert s["verdict"] == ("As built: kmod 30, kmod 34.2 and kernel ≤ 6.13 see every versioned import; "
                            "nothing lost; 0 false warnings.")
    legacy = [r for r in s["risks"] if not r["hypothetical"]]
    assert [r["consumer"] for r in legacy] == ["mit"]  # module-init-tools only, and after the hypotheticals
    assert s["risks"][-1]["consumer"] == "mit"
    assert md_report.render(d).splitlines()[0] == "# 6.12.117+deb13-amd64: as built, nothing lost"
    jsonschema.validate(d, schema())


def test_summary_without_modversions_reports_no_kernel_refusal(demo_doc):
    d = _healthy(demo_doc, kernel_modversions=False)
    s = d["summary"]
    assert s["ok"] and len(s["not_applicable"]) == 2 and "without MODVERSIONS" in s["not_applicable"][0]
    assert not any(r["consumer"].startswith("kernel") for r in s["risks"])
    assert not any("refuses" in h for h in d["headlines"])


def test_markdown_and_html_render_every_section(demo_doc):
    md = md_report.render(demo_doc)
    for heading in ("## Top findings", "## What each consumer sees, as built", "## If the tree were built in another "
                    "format", "## Are these CRCs checking anything?", "## Dependency graph", "## Unreadable modules"):
        assert heading in md
    html = html_report.render(demo_doc)
    for ident in ("name-length-histogram", 'id="consumer-matrix"', "format-census-chart", 'id="modules-table"',
                  'id="verdict"', 'id="module-data"'):
        assert ident in html
    assert "http://" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "")  # nothing fetched
    assert "https://" not in html


def test_policy_terms():
    assert parse_policy("unreadable,lost:kmod34@ext-only,false-warnings,refuses:kernel-6.13")[1] == \
        ("lost", "kmod34", "ext-only")
    for bad in ("lost", "lost:nosuch", "refuses:kmod34@nosuch", "bogus", "cycles:x"):
        with pytest.raises(ValueError):
            parse_policy(bad)


def test_policy_evaluation(demo_doc):
    assert evaluate(parse_policy("unreadable"), demo_doc) == []
    assert evaluate(parse_policy("none"), demo_doc) == []
    assert evaluate(parse_policy("false-warnings"), demo_doc)
    assert evaluate(parse_policy("lost:kmod-pr270@basic"), demo_doc) == []
    assert evaluate(parse_policy("refuses:kernel-6.13@ext-only"), demo_doc)
    assert evaluate(parse_policy("findings:versions-varlen"), demo_doc)


def _cli(*args, cwd=REPO):
    return subprocess.run([sys.executable, "-m", "kmodcompat", *args], capture_output=True, text=True, cwd=cwd)


def test_cli_report_writes_three_files_and_gates(tmp_path):
    base, kver = demo_tree()
    p = _cli("report", "-b", base, kver, "--out", str(tmp_path / "r"))
    assert p.returncode == 0, p.stderr
    assert sorted(os.listdir(tmp_path / "r")) == ["report.html", "report.json", "report.md"]
    jsonschema.validate(json.loads((tmp_path / "r" / "report.json").read_text()), schema())
    p = _cli("report", "-b", base, kver, "--out", str(tmp_path / "r2"), "--fail-on", "false-warnings:kmod34")
    assert p.returncode == 1 and "breaks: kmod34:" in p.stderr
    assert _cli("report", "--fail-on", "nonsense").returncode == 2
    assert _cli("report", "/nonexistent").returncode == 2


def test_cli_report_names_unreadable_modules(tmp_path):
    base, kver = demo_tree()
    tree = tmp_path / "t"
    shutil.copytree(base, tree, symlinks=True)
    bad = tree / "lib" / "modules" / kver / "kernel" / "drivers" / "demo" / "broken.ko"
    bad.write_bytes(b"\x7fELF\x02\x01\x01" + bytes(20))
    p = _cli("report", "-b", str(tree), kver, "--out", str(tmp_path / "r"))
    assert p.returncode == 1  # the default policy: unreadable modules break
    doc = json.loads((tmp_path / "r" / "report.json").read_text())
    assert [u["path"].endswith("broken.ko") for u in doc["unreadable"]] == [True]
    assert "broken.ko" in p.stderr


@pytest.mark.realtree
@pytest.mark.parametrize("name", sorted(oracle.TREES))
def test_real_tree_report_validates(name, tmp_path):
    root = oracle.tree_root(name, fetch=os.environ.get("KMODCOMPAT_FETCH_TREES") == "1")
    if root is None:
        pytest.skip(f"tree {name} not available")
    krel = oracle.tree_info(root)["krel"]
    doc = build_report(load_tree(str(root), krel))
    jsonschema.validate(doc, schema())
    assert doc["counts"]["unreadable"] == 0 and doc["counts"]["modules"] == len(oracle.tree_modules(root))
    assert doc["tree"]["kernel_release"] == krel
    html = html_report.render(doc)
    assert "name-length-histogram" in html
    s = doc["summary"]
    if name in ("bookworm-amd64", "trixie-amd64"):  # healthy trees: the first line says nothing is lost
        assert s["ok"] and "nothing lost" in s["verdict"], s
        assert md_report.render(doc).splitlines()[0].endswith(": as built, nothing lost")
    if doc["tree"]["kernel_modversions"] is False:  # sid: no kernel CRC refusal is a finding
        assert s["not_applicable"] and not any(r["consumer"].startswith("kernel") for r in s["risks"])
    assert all(len(h) <= 120 for h in doc["headlines"]), doc["headlines"]
    if name == "trixie-amd64":  # the page in a real browser, on the report just built
        from . import cdp
        from .test_report_browser import NO_CHROMIUM, check_real_report

        if cdp.chromium() is None:
            pytest.skip(NO_CHROMIUM)
        check_real_report(name, doc, tmp_path)


def test_report_embeds_a_diff_against_an_older_tree(tmp_path):
    base, kver = demo_tree()
    old = tmp_path / "old"
    shutil.copytree(Path(base) / "lib" / "modules" / kver, old)
    (old / "kernel" / "drivers" / "demo" / "kmc_ext_only.ko").unlink()  # the new tree adds this module
    out = tmp_path / "r"
    p = _cli("report", "-b", base, kver, "--out", str(out), "--diff-against", str(old))
    assert p.returncode == 0, p.stderr
    doc = json.loads((out / "report.json").read_text())
    jsonschema.validate(doc, schema())
    assert doc["diff"]["kind"] == "trees"
    from importlib import resources
    diff_schema = json.loads(resources.files("kmodcompat.report").joinpath("diff-schema.json").read_text())
    jsonschema.validate(doc["diff"], diff_schema)
    assert 'id="diff"' in (out / "report.html").read_text()
    assert _cli("report", "-b", base, kver, "--out", str(out), "--diff-against", "/nonexistent").returncode == 2


def test_longest_chain_is_networkx_dag_longest_path_length():
    import random

    import networkx as nx

    from kmodcompat.report import _longest_chain

    rnd = random.Random(7)
    for seed in range(200):
        n = rnd.randint(0, 25)
        g = nx.gnp_random_graph(n, rnd.random() * 0.2, directed=True, seed=seed)
        if rnd.random() < 0.7:  # mostly acyclic, as real trees are
            g = nx.DiGraph([(u, v) for u, v in g.edges() if u < v])
            g.add_nodes_from(range(n))
        g = nx.relabel_nodes(g, {i: f"m{i}" for i in g})
        if rnd.random() < 0.5:
            g.add_edges_from((f"m{i}", "vmlinux") for i in range(0, n, 3))
        mods = [x for x in g if x != "vmlinux"]
        sub = g.subgraph(mods)
        want = nx.dag_longest_path_length(sub) if mods and nx.is_directed_acyclic_graph(sub) else 0
        assert _longest_chain(g, mods, "vmlinux") == want
