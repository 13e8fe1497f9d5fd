"""``--format junit`` and ``--format sarif`` of ``report`` and ``diff``: valid against the published schemas
(tests/data/ci-schemas: Jenkins' junit-10.xsd, OASIS SARIF 2.1.0), GitHub code scanning's own rules, one
case per module or change, failing exactly where the exit status says so."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import jsonschema
import pytest
import xmlschema

from kmodcompat.cli import main
from kmodcompat.cli.report import demo_tree
from kmodcompat.depmod.tree import load_tree
from kmodcompat.report import build_report, ci, junit, sarif
from kmodcompat.report.policy import evaluate, outcomes, parse_policy

from . import oracle
from .test_diff import FIX, KVER, kernel_exports, make_tree, patched_export_crc, patched_modinfo
from .paths import DATA, MODULES, REPO

SCHEMAS = DATA / "ci-schemas"
JUNIT_XSD = xmlschema.XMLSchema(str(SCHEMAS / "junit-10.xsd"))
SARIF_SCHEMA = json.loads((SCHEMAS / "sarif-schema-2.1.0.json").read_text())
#: RFC 3986 URI-reference characters: unreserved, reserved, and percent-encoded octets only.
URI_REFERENCE = re.compile(r"(?:[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=]|%[0-9A-F]{2})+")


def check_junit(text: str) -> ET.Element:
    """Valid against junit-10.xsd; the counts on <testsuites> and each <testsuite> are the elements'."""
    assert text.startswith('<?xml version="1.0" encoding="UTF-8"?>\n')
    JUNIT_XSD.validate(text)
    top = ET.fromstring(text.encode("utf-8"))
    assert top.tag == "testsuites"
    cases = top.findall("testsuite/testcase")
    assert int(top.get("tests")) == len(cases)
    assert int(top.get("failures")) == sum(1 for c in cases if c.find("failure") is not None)
    for suite in top.findall("testsuite"):
        assert int(suite.get("tests")) == len(suite.findall("testcase"))
        assert int(suite.get("failures")) == len(suite.findall("testcase/failure"))
    for c in cases:
        f = c.find("failure")
        assert f is None or (f.get("type") and f.get("message") and ("file: " in f.text or "tree: " in f.text))
    return top


def check_sarif(text: str) -> dict:
    """Valid against the SARIF 2.1.0 schema, and what GitHub code scanning requires besides: every result
    at an artifact location with a non-empty URI (its 'locationFromSarifResult' rejects the whole file
    otherwise), rules referenced by id and index, URIs that are RFC 3986 references."""
    log = json.loads(text)
    jsonschema.Draft4Validator(SARIF_SCHEMA).validate(log)
    assert log["version"] == "2.1.0" and len(log["runs"]) == 1
    run = log["runs"][0]
    rules = [r["id"] for r in run["tool"]["driver"]["rules"]]
    assert len(set(rules)) == len(rules)
    for r in run["results"]:
        assert rules[r["ruleIndex"]] == r["ruleId"] and r["level"] in ("error", "warning")
        assert r["message"]["text"] and r["partialFingerprints"]
        (loc,) = r["locations"]
        art = loc["physicalLocation"]["artifactLocation"]
        assert art["uri"] and URI_REFERENCE.fullmatch(art["uri"]), art
        assert art["uri"].startswith("file:///") or art["uriBaseId"] in run["originalUriBaseIds"]
    for base in run["originalUriBaseIds"].values():
        assert "uri" not in base or (base["uri"].startswith("file:///") and base["uri"].endswith("/"))
    return run


def failing_names(top: ET.Element) -> set[str]:
    return {c.get("name") for c in top.iter("testcase") if c.find("failure") is not None}


def errors(run: dict) -> list[dict]:
    return [r for r in run["results"] if r["level"] == "error"]


# -- report ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def demo_doc():
    base, kver = demo_tree()
    return build_report(load_tree(base, kver), jobs=1)


POLICIES = ["unreadable", "none", "false-warnings", "lost:kmod34", "lost:kmod-pr270@basic",
            "refuses:kernel-6.13@ext-only", "refuses:kernel-6.14", "findings:versions-varlen", "findings",
            "unresolved,cycles", "false-warnings,lost:kmod34@ext-only,findings,refuses:kernel-6.14"]


@pytest.mark.parametrize("policy_text", POLICIES)
def test_report_cases_fail_where_the_policy_does(demo_doc, policy_text):
    policy = parse_policy(policy_text)
    broken = evaluate(policy, demo_doc)
    status = 1 if broken else 0
    cases = ci.report_cases(demo_doc, policy, policy_text, status)
    top = check_junit(junit.render(cases))
    run = check_sarif(sarif.render(cases))
    modules = top.find("testsuite[@name='kmodcompat report 6.14.0-kmodcompat-demo: modules']")
    assert len(modules.findall("testcase")) == demo_doc["counts"]["modules"]  # passing ones too
    assert bool(top.get("failures") != "0") == bool(broken) == bool(errors(run))
    assert run["invocations"][0]["exitCode"] == status
    policy_cases = top.findall("testsuite[@name='kmodcompat report 6.14.0-kmodcompat-demo: policy']/testcase")
    assert [c.get("name") for c in policy_cases] == [t.text for t in policy]
    assert [c.find("failure").get("message").split(" (")[0] for c in policy_cases if c.find("failure") is not None] \
        == broken
    # Per module: a failing test case and an error result for each module behind a tripped term.
    hit_paths = {h.path for o in outcomes(policy, demo_doc) if o.broken for h in o.hits}
    assert failing_names(modules) == hit_paths
    located = {r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] for r in errors(run)}
    assert hit_paths <= located
    for r in errors(run):
        assert any(r["ruleId"] == t.text or r["ruleId"].startswith(f"{t.kind}:") for t in policy)


def test_report_per_module_figures_add_up_to_the_totals(demo_doc):
    """What the cases list per module is the tree-wide figure --fail-on checks, nothing lost on the way."""
    for text in ("lost:kmod34", "false-warnings:kmod34", "lost:kmod30", "refuses:kernel-6.14", "findings"):
        (o,) = outcomes(parse_policy(text), demo_doc)
        assert o.broken and o.hits and o.unlisted == 0, o
    (o,) = outcomes(parse_policy("lost:kmod34@ext-only"), demo_doc)
    assert o.broken and not o.hits and o.unlisted == 59  # simulated formats: totals only, said so
    run = check_sarif(sarif.render(ci.report_cases(demo_doc, [o.term], o.term.text, 1)))
    (r,) = errors(run)
    assert r["locations"][0]["physicalLocation"]["artifactLocation"] == {"uri": "modules.dep", "uriBaseId": "TREE"}
    assert "tree-wide" in r["message"]["text"]


def test_report_warnings_are_what_the_policy_does_not_gate(demo_doc):
    run = check_sarif(sarif.render(ci.report_cases(demo_doc, parse_policy("lost:kmod34"), "lost:kmod34", 1)))
    levels = {(r["ruleId"], r["level"]) for r in run["results"]}
    assert ("lost:kmod34", "error") in levels and ("false-warnings:kmod34", "warning") in levels
    assert not {rule for rule, level in levels if level == "error"} - {"lost:kmod34"}
    rules = {r["id"]: r["defaultConfiguration"]["level"] for r in run["tool"]["driver"]["rules"]}
    assert rules["lost:kmod34"] == "error" and rules["false-warnings:kmod34"] == "warning"


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "kmodcompat", *args], capture_output=True, text=True, cwd=REPO,
                          env={**os.environ, "PYTHONPATH": str(REPO)})


HOSTILE = "kmc_a&b<c>\"d'\x01e"  # XML's five specials and a control character XML 1.0 cannot carry at all


@pytest.fixture(scope="module")
def hostile_tree(tmp_path_factory):
    """The demo tree with one module renamed to a name that needs XML escaping and holds a control
    character, and an unreadable module of such a name."""
    base, kver = demo_tree()
    root = tmp_path_factory.mktemp("hostile") / "root"
    shutil.copytree(base, root, symlinks=True)
    demo = root / "lib" / "modules" / kver / "kernel" / "drivers" / "demo"
    (demo / "kmc_basic.ko").rename(demo / f"{HOSTILE}.ko")
    (demo / f"{HOSTILE}x .ko").write_bytes(b"\x7fELF\x02\x01\x01" + bytes(20))
    return root, kver


@pytest.mark.parametrize("fmt", ["junit", "sarif"])
def test_report_cli_exit_status_and_hostile_names(hostile_tree, tmp_path, fmt):
    root, kver = hostile_tree
    for policy in ("unreadable", "none", "false-warnings"):
        args = ["report", "-b", str(root), kver, "--fail-on", policy, "--no-cache"]
        text = _cli(*args, "--out", str(tmp_path / "t"))
        p = _cli(*args, "--out", str(tmp_path / fmt), "--format", fmt)
        assert p.returncode == text.returncode and text.stdout == "" and p.returncode == (policy != "none"), p.stderr
        assert p.stderr.splitlines()[-1].replace(f"/{fmt}/", "/t/") == text.stderr.splitlines()[-1]
        if fmt == "junit":
            top = check_junit(p.stdout)
            names = {c.get("name") for c in top.iter("testcase")}
            assert f"kernel/drivers/demo/{HOSTILE}.ko".replace("\x01", "\\x01") in names
            assert "&amp;b&lt;c&gt;&quot;d'\\x01e" in p.stdout and "\x01" not in p.stdout
            bad = f"kernel/drivers/demo/{HOSTILE}x .ko".replace("\x01", "\\x01")
            assert (bad in failing_names(top)) == (policy == "unreadable")
        else:
            run = check_sarif(p.stdout)
            uris = {r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] for r in run["results"]}
            if policy == "unreadable":
                assert "kernel/drivers/demo/kmc_a&b%3Cc%3E%22d'%01ex%20.ko" in uris
                (r,) = errors(run)
                assert r["ruleId"] == "unreadable" and r["message"]["text"].startswith("unreadable: file too short")
            assert "\x01" not in p.stdout and "\\u0001" not in p.stdout


def test_clean_and_uri():
    assert ci.clean("a\x01b\x7f\u202e\udcff") == "a\\x01b\\x7f\\xe2\\x80\\xae\\xff"
    assert ci.clean("two\nlines\tand\x00", newlines=True) == "two\nlines\tand\\x00"
    assert ci.uri("kernel/a b:c.ko") == "kernel/a%20b%3Ac.ko"  # no "kernel/a b:" scheme
    assert ci.uri("x:y.ko") == "x%3Ay.ko"
    assert ci.uri("k/\udcff.ko") == "k/%FF.ko"  # a non-UTF-8 name: its own byte
    assert ci.uri("/usr/src/linux-headers-6.1/Module.symvers") == "file:///usr/src/linux-headers-6.1/Module.symvers"


# -- diff -----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def crc_trees(tmp_path_factory):
    """As test_diff's: NEW has the exporter with short_sym's CRC changed, the importer not rebuilt."""
    base = tmp_path_factory.mktemp("trees")
    imp, exp = (FIX / "basic.ko").read_bytes(), (FIX / "exports-rel.ko").read_bytes()
    old = make_tree(base / "old", {"basic.ko": imp, "exports-rel.ko": exp}, kernel_exports())
    new = make_tree(base / "new", {"basic.ko": imp, "ext-only.ko": (FIX / "ext-only.ko").read_bytes(),
                                   "exports-rel.ko": patched_export_crc(FIX / "exports-rel.ko", "short_sym", 0x12345678)},
                    kernel_exports())
    return old, new


def _diff(capsys, *argv: str) -> tuple[int, str]:
    rc = main(["diff", *argv])
    return rc, capsys.readouterr().out


def test_diff_junit_and_sarif_of_a_breaking_tree_diff(crc_trees, capsys):
    old, new = (str(p) for p in crc_trees)
    rc_text, _ = _diff(capsys, old, new)
    rc, out = _diff(capsys, "--format", "junit", old, new)
    assert rc == rc_text == 12
    top = check_junit(out)
    kabi = top.find(f"testsuite[@name='kmodcompat diff {old} {new}: kabi']")
    (case,) = kabi.findall("testcase")
    assert case.get("name") == "short_sym" and case.get("classname") == "kmodcompat.kabi.exports_rel"
    f = case.find("failure")
    assert f.get("type") == "kabi:changed" and "CRC 0xaf2d4d78 → 0x12345678" in f.get("message")
    assert "file: kernel/exports-rel.ko" in f.text and "old builds failing (1): basic" in f.text
    assert failing_names(top) == {"short_sym", "basic"}  # the export and the module its change breaks
    assert {c.get("name") for c in top.iter("testcase")} == {"short_sym", "basic", "exports_rel"}
    rc, out = _diff(capsys, "--format", "sarif", old, new)
    assert rc == 12
    run = check_sarif(out)
    got = {(r["ruleId"], r["level"], r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"])
           for r in run["results"]}
    assert got == {("kabi:changed", "error", "kernel/exports-rel.ko"), ("module:breaks", "error", "kernel/basic.ko")}
    assert run["invocations"][0]["exitCode"] == 12
    assert run["originalUriBaseIds"]["NEW"]["uri"] == Path(new, "lib", "modules", KVER).as_uri() + "/"


def test_diff_compatible_changes_fail_nothing(crc_trees, tmp_path, capsys):
    """An export added (exit 4): a passing test case and a warning, no failure, no error."""
    old, _ = crc_trees
    imp, exp = (FIX / "basic.ko").read_bytes(), (FIX / "exports-rel.ko").read_bytes()
    new = make_tree(tmp_path / "new", {"basic.ko": imp, "exports-rel.ko": exp,
                                       "ext-only.ko": (FIX / "ext-only.ko").read_bytes()}, kernel_exports())
    for fmt in ("text", "junit", "sarif"):
        rc, out = _diff(capsys, "--format", fmt, str(old), str(new))
        assert rc in (0, 4)
        if fmt == "junit":
            assert check_junit(out).get("failures") == "0"
        elif fmt == "sarif":
            assert not errors(check_sarif(out))
    p = tmp_path / "basic.ko"
    p.write_bytes(patched_modinfo(FIX / "basic.ko", "srcversion", "1" * 23))
    rc, out = _diff(capsys, "--format", "junit", str(FIX / "basic.ko"), str(p))
    assert rc == 4
    top = check_junit(out)
    assert top.get("failures") == "0" and [c.get("name") for c in top.iter("testcase")] == ["basic"]


def test_diff_of_unlike_trees_counts_no_break(tmp_path, capsys):
    """Different machines: every module changed, listed as a passing case; nothing fails (status 4)."""
    arm = MODULES / "arm"
    files = ("basic.ko", "exports-rel.ko")
    x86 = make_tree(tmp_path / "x86", {f: (FIX / f).read_bytes() for f in files}, kernel_exports())
    armt = make_tree(tmp_path / "arm", {f: (arm / f).read_bytes() for f in files}, kernel_exports())
    rc, out = _diff(capsys, "--format", "junit", str(x86), str(armt))
    top = check_junit(out)
    assert rc == 4 and top.get("failures") == "0"
    assert {c.get("name") for c in top.iter("testcase")} == {"basic", "exports_rel"}
    assert "changed: attributes" in top.find("testsuite/testcase/system-out").text
    rc, out = _diff(capsys, "--format", "sarif", str(x86), str(armt))
    assert rc == 4 and not errors(check_sarif(out))


def test_diff_of_module_symvers_files(tmp_path, capsys):
    """kind "kabi" (a Module.symvers each side): one case per export change, at the Module.symvers file."""
    old, new = tmp_path / "old.symvers", tmp_path / "Module.symvers"
    old.write_text("0x00000001\tgone\tvmlinux\tEXPORT_SYMBOL\t\n0x00000002\tkept\tvmlinux\tEXPORT_SYMBOL\t\n")
    new.write_text("0x00000003\tkept\tvmlinux\tEXPORT_SYMBOL\t\n0x00000004\tnew\tvmlinux\tEXPORT_SYMBOL\t\n")
    old = old.rename(tmp_path / "old-Module.symvers")
    rc_text, _ = _diff(capsys, str(old), str(new))
    rc, out = _diff(capsys, "--format", "junit", str(old), str(new))
    assert rc == rc_text == 12
    top = check_junit(out)
    assert failing_names(top) == {"gone", "kept"} and {c.get("name") for c in top.iter("testcase")} == \
        {"gone", "kept", "new"}
    rc, out = _diff(capsys, "--format", "sarif", str(old), str(new))
    run = check_sarif(out)
    assert {(r["ruleId"], r["level"]) for r in run["results"]} == {
        ("kabi:removed", "error"), ("kabi:changed", "error"), ("kabi:added", "warning")}


# -- a real tree ----------------------------------------------------------------------------------------


@pytest.mark.realtree
def test_real_tree_report_in_both_formats(tmp_path):
    root = oracle.tree_root("trixie-amd64", fetch=os.environ.get("KMODCOMPAT_FETCH_TREES") == "1")
    if root is None:
        pytest.skip("tree trixie-amd64 not available")
    krel = oracle.tree_info(root)["krel"]
    doc = build_report(load_tree(str(root), krel))
    n = doc["counts"]["modules"]
    for text in ("unreadable", "lost:mit", "lost:kmod34@ext-only,refuses:kernel-6.13"):
        policy = parse_policy(text)
        broken = evaluate(policy, doc)
        cases = ci.report_cases(doc, policy, text, 1 if broken else 0)
        top = check_junit(junit.render(cases))
        run = check_sarif(sarif.render(cases))
        assert len(top.findall("testsuite")[0].findall("testcase")) == n == len(oracle.tree_modules(root))
        assert bool(errors(run)) == bool(broken) == (top.get("failures") != "0")
        if text == "lost:mit":  # module-init-tools cannot read any module of trixie (.ko.xz): each one fails
            assert len(failing_names(top)) == n + 1 and len(errors(run)) == n
