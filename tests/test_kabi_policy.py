"""``diff --symbol-list`` / ``--rules`` / ``--report-unused-rules``: the kABI policy.

The lists and rules under tests/data/kabi/ are real files' excerpts (a provenance line at the top of each:
Android's KMI list, openEuler's stablelist, Red Hat's as show-kabi writes it, SUSE's kabi/severities whole);
the diffs are of Debian bookworm's and trixie's real Module.symvers (linux-headers). What each list or rule
should decide is worked out here from the two files' lines and the rule text (fnmatch), not by the code
under test.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import time
from pathlib import Path

import jsonschema
import pytest

from kmodcompat.cli import main
from kmodcompat.diff.policy import symvers_module_name
from kmodcompat.files.bounded import SYMBOL_LIST, InputFileError
from kmodcompat.files.kabi_lists import MAX_WILDCARDS, KabiListError, read_rules, read_symbol_list, wildmat
from kmodcompat.report import diff_render
from tests.test_diff import SCHEMA, crc_trees  # noqa: F401  (the fixture)

DATA = Path(__file__).resolve().parent / "data" / "kabi"
ANDROID = DATA / "abi_gki_x86_64_virtual_device"
OPENEULER = DATA / "kabi_stablelist_x86_64.openeuler"
RHEL = DATA / "kabi_stablelist_x86_64.rhel"
SUSE = DATA / "severities.suse"


def _run(argv, capsys) -> tuple[int, dict, str]:
    status = main(["diff", "--format", "json", *argv])
    out = capsys.readouterr()
    return status, json.loads(out.out) if out.out.strip() else {}, out.err


# -- the readers -------------------------------------------------------------------------------------


def test_each_list_format_as_its_tool_reads_it():
    android = read_symbol_list(str(ANDROID))  # libabigail / Android: [abi_symbol_list], "# required by" comments
    assert (android.format, android.sections, android.kind) == ("sectioned", ("abi_symbol_list",),
                                                                "libabigail/Android symbol list")
    assert len(android.names) == 51 and android.names["alloc_etherdev_mqs"] == 4 and android.names["wake_up_bit"] == 56
    oe = read_symbol_list(str(OPENEULER))  # openEuler's kabi_stablelist: [..._whitelist], four spaces
    assert oe.sections == ("oe2203_x86_64_whitelist",) and len(oe.names) == 29 and oe.kind.startswith("kABI stablelist")
    rhel = read_symbol_list(str(RHEL))  # show-kabi -s: [rhel9_x86_64_stablelist], a tab before each name
    assert rhel.sections == ("rhel9_x86_64_stablelist",) and list(rhel.names)[:2] == ["BUG_func", "I_BDEV"]
    assert rhel.names["__alloc_skb"] == 22


def test_plain_lists_and_sections_libabigail_skips(tmp_path):
    plain = tmp_path / "list"
    plain.write_text("# kept by hand\n\nkfree\n  __kmalloc  \nnvme_*\nkfree\n")
    sl = read_symbol_list(str(plain))
    assert (sl.format, sl.names, sl.patterns) == ("plain", {"kfree": 3, "__kmalloc": 4}, (("nvme_*", 5),))
    two = tmp_path / "two"  # libabigail: only sections ending in whitelist / stablelist / symbol_list count
    two.write_text("; ini comment\n[abi_symbol_list]\n a\n[other]\n b\n[abi2_whitelist]\n c\n")
    assert read_symbol_list(str(two)).names == {"a": 3, "c": 7}


def test_suse_rules_types_and_verdicts_as_suse_kabi_tools_infers_them(tmp_path):
    rules = read_rules(str(SUSE))
    assert len(rules) == 84 and all(r.format == "suse-kabi-tools" for r in rules)
    by_line = {r.line: r for r in rules}
    assert by_line[12].text == "MODULE drivers/message/fusion/* PASS"  # a '/' makes it a module's
    assert by_line[18].text == "SYMBOL kvmppc_* PASS"
    assert by_line[67].text == "MODULE drivers/nvme/host/nvme-fc* FAIL" and by_line[68].verdict == "PASS"
    assert by_line[142].text == "SYMBOL xfrm_bpf_md_dst PASS"  # "PASS\t# bsc#1223415": the comment cut
    f = tmp_path / "typed"
    f.write_text("vmlinux FAIL\nTEST_IMPORTANT FAIL\nNAMESPACE local PASS\nSYMBOL NS_LIKE PASS\n*not_stable* PASS\n")
    assert [r.text for r in read_rules(str(f))] == ["MODULE vmlinux FAIL", "NAMESPACE TEST_IMPORTANT FAIL",
                                                    "NAMESPACE local PASS", "SYMBOL NS_LIKE PASS",
                                                    "SYMBOL *not_stable* PASS"]


def test_ubuntu_abi_ignore_and_the_older_blacklist(tmp_path, capsys):
    f = tmp_path / "abi.ignore"  # debian/scripts/checks/abi-check: a name a line, '#' lines comments
    f.write_text("# ignore these\n__alloc_skb\nnet/ceph/libceph\n")
    rules = read_rules(str(f))
    assert [(r.kind, r.pattern, r.verdict, r.format) for r in rules] == [
        ("ENTRY", "__alloc_skb", "PASS", "abi.ignore"), ("ENTRY", "net/ceph/libceph", "PASS", "abi.ignore")]
    assert main(["diff", "--symbol-list", str(f), str(SUSE), str(SUSE)]) == 2  # the opposite of a list
    assert "an Ubuntu abi.ignore excuses the names it lists: give it to --rules" in capsys.readouterr().err
    old = tmp_path / "blacklist"  # the Perl abi-check: "M: module" lines
    old.write_text("M: drivers/staging/foo\nsome_symbol\n")
    assert [(r.kind, r.pattern) for r in read_rules(str(old))] == [("MODULE", "drivers/staging/foo"),
                                                                   ("ENTRY", "some_symbol")]


@pytest.mark.parametrize("pattern,text", [
    ("drivers/staging/*", "drivers/staging/rtl8723bs/r8723bs"), ("__SC[KT]__tp_func_x", "__SCT__tp_func_x"),
    ("__SC[KT]__tp_func_x", "__SCX__tp_func_x"), ("a*b*c", "aXbYc"), ("a*b*c", "aXbY"), ("?", ""), ("*", ""),
    ("[a-c]x", "bx"), ("[!a]x", "!x"), ("kvm*", "kvm"), ("*.ko", "a/b.ko")])
def test_wildmat_agrees_with_fnmatch_where_their_syntax_does(pattern, text):
    assert (re.fullmatch(wildmat(pattern), text, re.DOTALL) is not None) == fnmatch.fnmatchcase(text, pattern)


def test_wildmat_own_syntax():
    m = lambda p, t: re.fullmatch(wildmat(p), t, re.DOTALL) is not None  # noqa: E731
    assert m("[^a]x", "bx") and not m("[^a]x", "ax")  # '^' negates (fnmatch's is '!')
    assert m("[]]", "]") and m("[a-]", "-") and m("\\*x", "*x") and not m("\\*x", "ax")
    start = time.monotonic()  # atomic groups: no exponential backtracking on a hostile pattern
    assert not m("*a" * 40 + "*b", "a" * 4000)
    assert time.monotonic() - start < 2


# -- hostile files -----------------------------------------------------------------------------------

BAD_LISTS = [
    (b"[abi_symbol_list]\n  a\0b\n", ":2: binary data (a NUL byte)"),
    (b"kfree\n\x1b[31mred\n", ":2: control character 0x1b"),
    (b"kfree\n" + b"x" * 5000 + b"\n", ":2: line longer than 4096 characters"),
    (b"[abi_symbol_list\n a\n", ":1: malformed section header"),
    (b"[abi_symbol_list]\n a = b\n", ":2: 'a = b' is a property with a value"),
    (b"[abi_symbol_list]\n a b\n", ":2: more than one word"),
    (b"[other]\n a\n", ": no [...whitelist], [...stablelist] or [...symbol_list] section"),
    (b"kfree\nkmalloc vmlinux\n", ":2: more than one word"),
    (b"kfree\nnvme_[abc\n", ":2: pattern 'nvme_[abc': a '[' without its ']'"),
    (b"# nothing\n\n", ": no symbol names in it"),
]
BAD_RULES = [
    (b"foo PASS\nbar\tMAYBE\n", ":2: Invalid verdict 'MAYBE', must be either PASS or FAIL"),
    (b"foo PASS\nbar\n", ":2: The rule is incomplete"),
    (b"MODULES a/* PASS\n", ":1: Invalid rule type 'MODULES', must be either MODULE, NAMESPACE or SYMBOL"),
    (b"SYMBOL a PASS extra\n", ":1: Unexpected string found after the verdict"),
    (b"foo[ PASS\n", ":1: pattern 'foo[': a '[' without its ']'"),
    (b"foo\\ PASS\n", ":1: pattern 'foo\\\\': ends in a lone '\\'"),
    (b"# only comments\n", ": no rules in it"),
    (b"\x7fELF\x02\x01\x01\0\0\0", ":1: binary data (a NUL byte)"),
]


@pytest.mark.parametrize("option,read,content,message", [("--symbol-list", read_symbol_list, *bad) for bad in BAD_LISTS]
                         + [("--rules", read_rules, *bad) for bad in BAD_RULES])
def test_bad_lists_and_rules_are_refused_with_file_and_line(tmp_path, option, read, content, message, capsys):
    f = tmp_path / option.strip("-")
    f.write_bytes(content)
    with pytest.raises(KabiListError) as e:
        read(str(f))
    assert str(e.value).startswith(str(f)) and message in str(e.value), str(e.value)
    assert main(["diff", option, str(f), str(SUSE), str(SUSE)]) == 2  # before any operand is read
    assert capsys.readouterr().err == f"kmodcompat: {e.value}\n"


def test_huge_fifo_and_too_many_wildcards(tmp_path, capsys):
    huge = tmp_path / "huge"
    with open(huge, "wb") as fh:  # sparse: 17 MiB of NULs past the cap, never read whole
        fh.truncate(SYMBOL_LIST.limit + 1)
    with pytest.raises(InputFileError, match="larger than the 16 MiB limit for a kABI symbol list"):
        read_symbol_list(str(huge))
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    assert main(["diff", "--rules", str(fifo), str(SUSE), str(SUSE)]) == 2  # refused unopened: never blocks
    assert "not a regular file (FIFO)" in capsys.readouterr().err
    many = tmp_path / "many"
    many.write_text("".join(f"sym{i}_* PASS\n" for i in range(MAX_WILDCARDS + 1)))
    with pytest.raises(KabiListError, match=f"more than {MAX_WILDCARDS} wildcard patterns"):
        read_rules(str(many))
    half = tmp_path / "half"  # within the cap alone, over it with a list of as many
    half.write_text("".join(f"*sym{i}_* PASS\n" for i in range(MAX_WILDCARDS // 2 + 1)))
    listing = tmp_path / "listing"
    listing.write_text("".join(f"*sym{i}_*\n" for i in range(MAX_WILDCARDS // 2)))
    assert main(["diff", "--rules", str(half), "--symbol-list", str(listing), str(SUSE), str(SUSE)]) == 2
    assert f"more than {MAX_WILDCARDS} wildcard patterns ({MAX_WILDCARDS + 1})" in capsys.readouterr().err
    assert main(["diff", "--report-unused-rules", str(SUSE), str(SUSE)]) == 2
    assert "--report-unused-rules needs --rules FILE" in capsys.readouterr().err


def test_module_names_as_module_symvers_spells_them():
    assert symvers_module_name("kernel/drivers/net/tun.ko.xz") == "drivers/net/tun"
    assert symvers_module_name("updates/dkms/foo.ko") == "updates/dkms/foo"
    assert symvers_module_name("/home/u/build/foo-bar.ko.zst") == "foo-bar"


# -- small trees and module files ---------------------------------------------------------------------


def test_tree_diff_judged_by_a_list_and_by_rules(crc_trees, tmp_path, capsys):  # noqa: F811
    """short_sym's CRC changed in exports-rel.ko: outside a list it is excused; a rule names its module."""
    old, new = crc_trees
    status, doc, _ = _run([str(old), str(new)], capsys)
    assert status == 12 and doc["policy"] is None
    other = tmp_path / "list"
    other.write_text("kfree\n")
    status, doc, _ = _run(["--symbol-list", str(other), str(old), str(new)], capsys)
    jsonschema.validate(doc, SCHEMA)
    (c,) = [c for c in doc["kabi"]["changes"] if c["name"] == "short_sym"]
    assert c["incompatible"] and not c["breaks"] and c["policy"] == {
        "counts": False, "by": "symbol-list", "source": None, "why": "not in the symbol lists"}
    assert not any(r.startswith("exports:") for r in doc["status"]["reasons"])
    assert doc["totals"]["exports_excused"] == 1
    rules = tmp_path / "rules"
    rules.write_text("# first match wins\nSYMBOL nothing_* FAIL\nMODULE exports-rel PASS\nshort_* FAIL\n")
    status, doc, _ = _run(["--rules", str(rules), str(old), str(new)], capsys)
    (c,) = [c for c in doc["kabi"]["changes"] if c["name"] == "short_sym"]
    assert c["policy"] == {"counts": False, "by": "rule", "source": f"{rules}:3",
                           "why": f"PASS by {rules}:3 (MODULE exports-rel PASS)"}
    assert [r["changes"] for r in doc["policy"]["rules"]] == [0, 1, 0] and doc["policy"]["unused_rules"] == [0, 2]
    assert [r["exports"] > 0 for r in doc["policy"]["rules"]] == [False, True, False]  # short_* shadowed


def test_two_module_files_judged(tmp_path, capsys):
    from tests.test_diff import FIX, NEW_CRC, patched_export_crc

    new = tmp_path / "exports-rel.ko"
    new.write_bytes(patched_export_crc(FIX / "exports-rel.ko", "short_sym", NEW_CRC))
    old = str(FIX / "exports-rel.ko")
    assert main(["diff", old, str(new)]) == 12
    capsys.readouterr()
    rules = tmp_path / "rules"
    rules.write_text("MODULE exports-rel PASS\n")  # a module file alone is named by its file name
    status, doc, _ = _run(["--rules", str(rules), old, str(new)], capsys)
    jsonschema.validate(doc, SCHEMA)
    assert status == 0 and doc["headlines"][0] == "Nothing the kABI policy fails (exit status 0)."
    (x,) = doc["modules"]["changed"][0]["exports"]
    assert x["policy"]["why"] == f"PASS by {rules}:1 (MODULE exports-rel PASS)"


# -- real Module.symvers: bookworm against trixie --------------------------------------------------------


@pytest.fixture(scope="module")
def symvers():
    from tests import oracle

    roots = [oracle.tree_root(n) for n in ("bookworm-amd64", "trixie-amd64")]
    if None in roots:
        pytest.skip("bookworm-amd64 / trixie-amd64 not under $REALTREES")
    return [str(next((r / "usr" / "src").glob("linux-headers-*/Module.symvers"))) for r in roots]


def _lines(path: str) -> dict[str, tuple[str, str, str, str]]:
    """symbol → (CRC, module, export type, namespace), the oracle's own read of the file."""
    out = {}
    for line in Path(path).read_text().splitlines():
        f = line.split("\t")
        out[f[1]] = (f[0], f[2], f[3], f[4] if len(f) > 4 else "")
    return out


def _incompatible(a, b) -> set[str]:
    """Removed, CRC changed, made GPL-only, put in another namespace: kmodcompat's rule, from the lines."""
    return {s for s, x in a.items() if s not in b or b[s][0] != x[0]
            or (b[s][2] == "EXPORT_SYMBOL_GPL" and x[2] != "EXPORT_SYMBOL_GPL") or (b[s][3] and b[s][3] != x[3])}


@pytest.mark.realtree
def test_real_diff_exits_0_when_every_change_is_outside_the_list(symvers, tmp_path, capsys):
    a, b = (_lines(p) for p in symvers)
    status, doc, _ = _run(symvers, capsys)
    assert status == 12 and doc["totals"]["exports_incompatible"] == len(_incompatible(a, b)) > 19000
    same = sorted(s for s in a if b.get(s) == a[s])[:300]  # 300 exports equal on both sides
    plain = tmp_path / "stable"
    plain.write_text("\n".join(same) + "\n")
    status, doc, _ = _run(["--symbol-list", str(plain), *symvers], capsys)
    jsonschema.validate(doc, SCHEMA)
    n = len(_incompatible(a, b))
    assert status == 0 and doc["status"]["reasons"] == [] and doc["status"]["changed"]
    assert doc["headlines"][:2] == [
        "Nothing the kABI policy fails (exit status 0).",
        f"kABI policy (1 symbol list(s), 300 name(s)): {n} of {n} incompatible export change(s) excused "
        f"({n} not in the symbol lists), 0 counted."]
    assert doc["policy"]["symbol_lists"][0]["unexported"] == 0
    assert main(["diff", "--symbol-list", str(plain), *symvers]) == 0
    text = capsys.readouterr().out
    assert text.splitlines()[1] == "Nothing the kABI policy fails (exit status 0)."  # the first screen
    assert f"{n} of {n} incompatible export change(s) excused" in text.splitlines()[2]


@pytest.mark.realtree
@pytest.mark.parametrize("listing", [ANDROID, OPENEULER, RHEL], ids=lambda p: p.name)
def test_real_lists_count_exactly_their_names_changes(symvers, listing, capsys):
    a, b = (_lines(p) for p in symvers)
    names = {ln.strip() for ln in listing.read_text().splitlines()[1:] if ln.strip() and ln[0] in " \t"}
    lines = {ln.strip(): i for i, ln in enumerate(listing.read_text().splitlines(), 1)}
    want = _incompatible(a, b) & names
    status, doc, _ = _run(["--symbol-list", str(listing), *symvers], capsys)
    jsonschema.validate(doc, SCHEMA)
    counted = {c["name"]: c["policy"] for c in doc["kabi"]["changes"] if c["breaks"]}
    assert set(counted) == want and (status == 12) == bool(want)
    for name, v in counted.items():
        assert v == {"counts": True, "by": "symbol-list", "source": f"{listing}:{lines[name]}",
                     "why": f"listed in {listing}:{lines[name]}"}
    assert doc["policy"]["symbol_lists"][0]["unexported"] == len(names - a.keys() - b.keys())
    added = [c["policy"] for c in doc["kabi"]["changes"] if c["kind"] == "added"]  # listed or not: compatible
    assert len(added) > 3000 and all(v == {"counts": False, "by": "compatible", "source": None,
                                           "why": "a compatible change"} for v in added)
    if listing == ANDROID:
        assert "__alloc_skb" in want and len(want) >= 20  # what a GKI vendor module imports did change


def _first_rule(rules: list[tuple[int, str, str]], symbol: str, module: str, namespace: str) -> int | None:
    """The oracle's suse-kabi-tools: the first (line, pattern, verdict) whose pattern matches the module
    (a pattern with '/', or vmlinux), the namespace (capitals only) or else the symbol."""
    for line, pat, _ in rules:
        if "/" in pat or pat == "vmlinux":
            value = module
        elif pat == pat.upper():
            value = namespace
            if not value:
                continue
        else:
            value = symbol
        if fnmatch.fnmatchcase(value, pat):
            return line
    return None


@pytest.mark.realtree
def test_real_suse_severities_first_match_wins(symvers, tmp_path, capsys):
    a, b = (_lines(p) for p in symvers)
    rules = [(i, *ln.split("#", 1)[0].split()) for i, ln in enumerate(SUSE.read_text().splitlines(), 1)
             if ln.split("#", 1)[0].split()]
    verdict = {line: v for line, _, v in rules}
    want_excused, want_counted = set(), set()
    for s in _incompatible(a, b):
        _, module, _, ns = a[s]
        hit = _first_rule(rules, s, module, ns)
        (want_excused if hit is not None and verdict[hit] == "PASS" else want_counted).add(s)
    status, doc, err = _run(["--rules", str(SUSE), "--report-unused-rules", *symvers], capsys)
    jsonschema.validate(doc, SCHEMA)
    assert status == 12
    changes = {c["name"]: c for c in doc["kabi"]["changes"] if c["incompatible"]}
    assert {n for n, c in changes.items() if not c["breaks"]} == want_excused and len(want_excused) > 1000
    assert {n for n, c in changes.items() if c["breaks"]} == want_counted
    nvme_fc = [n for n in want_counted if a[n][1].startswith("drivers/nvme/host/nvme-fc")]
    assert nvme_fc and all(changes[n]["policy"]["why"] == f"FAIL by {SUSE}:67 (MODULE drivers/nvme/host/nvme-fc* FAIL)"
                           for n in nvme_fc)
    core = [n for n in want_excused if a[n][1] == "drivers/nvme/host/nvme-core"]
    assert core and changes[core[0]]["policy"]["source"] == f"{SUSE}:68"
    # Unused: the rules that decided no change, each said once on stderr as ksymvers unused-rules says it.
    # A rule decides the changes it is the first match of, compatible ones too (an added export: by its new
    # line). The exporter compares by module name, as depmod names it (a module that moved directory is the same).
    key = lambda x: (x[0], x[1].rsplit("/", 1)[-1].replace("-", "_"), x[2], x[3])  # noqa: E731
    changed = {n: a.get(n) or b[n] for n in a.keys() | b.keys() if n not in a or n not in b or key(a[n]) != key(b[n])}
    assert len(changed) == len(doc["kabi"]["changes"])
    decided = {f"{SUSE}:{hit}" for n, x in changed.items() if (hit := _first_rule(rules, n, x[1], x[3])) is not None}
    warned = re.findall(rf"^{re.escape(str(SUSE))}:(\d+): WARNING: Severity rule '([^']+)' is unused \(matched no "
                        r"change; (.*)\)$", err, re.M)
    assert len(warned) == err.count("\n") and {f"{SUSE}:{n}" for n, _, _ in warned} == \
        {f"{SUSE}:{line}" for line, _, _ in rules} - decided
    assert ("18", "SYMBOL kvmppc_* PASS", "matches no export of either side") in warned  # amd64 has none
    assert doc["policy"]["unused_rules"] == [i for i, r in enumerate(doc["policy"]["rules"]) if not r["changes"]]


@pytest.mark.realtree
def test_real_catch_all_rules_and_abi_ignore(symvers, tmp_path, capsys):
    everything = tmp_path / "severities"
    everything.write_text("vmlinux PASS\n*/* PASS\n")  # every module of a Debian tree has a '/' in its path
    status, doc, _ = _run(["--rules", str(everything), *symvers], capsys)
    assert status == 0 and doc["policy"]["counted"] == {} and doc["policy"]["unused_rules"] == []
    ignore = tmp_path / "abi.ignore"
    ignore.write_text("# Ubuntu style\n__alloc_skb\nnet/ceph/libceph\n")
    status, doc, _ = _run(["--rules", str(ignore), *symvers], capsys)
    changes = {c["name"]: c for c in doc["kabi"]["changes"]}
    assert changes["__alloc_skb"]["policy"]["why"] == f"ignored by {ignore}:2 (__alloc_skb)"
    ceph = [c for c in changes.values() if c["incompatible"] and c["old"] and c["old"]["exporter"] == "libceph"]
    assert ceph and all(not c["breaks"] and c["policy"]["source"] == f"{ignore}:3" for c in ceph)
    assert status == 12 and doc["policy"]["excused"] == {"rule": 1 + len(ceph)}


@pytest.mark.realtree
def test_real_policy_in_every_format(symvers, capsys):
    from tests.test_ci_formats import check_junit, check_sarif, errors, failing_names

    argv = ["--rules", str(SUSE), "--symbol-list", str(ANDROID), *symvers]
    status, doc, _ = _run(argv, capsys)
    counted = {c["name"] for c in doc["kabi"]["changes"] if c["breaks"]}
    assert status == 12 and counted
    summary = doc["policy"]["summary"]
    for fmt in ("text", "markdown", "html"):
        assert main(["diff", "--format", fmt, *argv]) == 12
        out = capsys.readouterr().out
        assert summary in out.replace("&#x27;", "'") and "kABI policy" in out
    md = diff_render.markdown(doc)  # one group (no importers: two Module.symvers), its counted exports said
    assert f"| {len(counted)} of {doc['totals']['exports_incompatible']} " in md
    assert "counts: listed in" not in md and "counts: no rule matches: FAIL by default (listed in" in md
    assert main(["diff", "--format", "junit", *argv]) == 12
    top = check_junit(capsys.readouterr().out)
    assert failing_names(top) == counted
    assert main(["diff", "--format", "sarif", *argv]) == 12
    run = check_sarif(capsys.readouterr().out)
    assert {r["message"]["text"].split()[1] for r in errors(run)} == counted
    assert run["invocations"][0]["properties"]["kabi-policy"] == summary
    props = {p.get("name"): p.get("value") for p in top.iter("property")}
    assert props["kabi-policy"] == summary
    excused = [r for r in run["results"] if "the kABI policy excuses it" in r["message"]["text"]]
    assert excused and all(r["level"] == "warning" for r in excused)


@pytest.mark.realtree
def test_real_tree_diff_judged_as_the_module_symvers_diff(symvers, capsys):
    """The trees name a module by its path under the module directory (kernel/drivers/nvme/host/nvme-fc.ko.xz
    is drivers/nvme/host/nvme-fc), the headers' Module.symvers by modpost's: the rules decide the same."""
    from tests import oracle

    roots = [str(oracle.tree_root(n)) for n in ("bookworm-amd64", "trixie-amd64")]
    _, sv, _ = _run(["--rules", str(SUSE), *symvers], capsys)
    status, tr, _ = _run(["--rules", str(SUSE), *roots], capsys)
    jsonschema.validate(tr, SCHEMA)

    def verdicts(doc):
        return {c["name"]: (c["breaks"], c["policy"]) for c in doc["kabi"]["changes"] if c["incompatible"]}

    assert status == 12 and verdicts(tr) == verdicts(sv) and len(verdicts(tr)) > 19000
    assert tr["policy"]["summary"] == sv["policy"]["summary"] and tr["headlines"][1] == tr["policy"]["summary"]
