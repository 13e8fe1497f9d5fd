"""cli/inputs.py: one way to name a tree in every command (module directory, root, -b BASEDIR KVER, tar)."""

from __future__ import annotations

import json
import tarfile

import pytest

from kmodcompat.cli import main
from tests.test_depmod import KVER, build_tree

from .paths import REPO

COMMANDS = (["exports", "--format", "json"], ["graph", "--format", "json"], ["symvers", "--modules-only"],
            ["depmod", "-n"], ["views", "--format", "json"], ["validate", "--format", "json"])


@pytest.fixture(scope="module")
def forms(tmp_path_factory):
    """The fixture tree named five ways; a root named after nothing its release is."""
    tmp = tmp_path_factory.mktemp("forms")
    root = build_tree(tmp).rename(tmp / "some-root-name")
    archive = tmp / "root.tar.xz"
    with tarfile.open(archive, "w:xz") as t:
        t.add(root / "lib", "lib")
    moddir = root / "lib" / "modules" / KVER
    return root, {"module directory": [str(moddir)], "root": [str(root)], "-b": ["-b", str(root), KVER],
                  "--moddir": [f"--moddir={moddir}"], "tar": [str(archive)]}


def _out(argv, capsys) -> tuple[int, str, str]:
    status = main(argv)
    out = capsys.readouterr()
    return status, out.out, out.err


@pytest.mark.parametrize("cmd", COMMANDS, ids=lambda c: c[0])
def test_every_form_names_the_same_tree(forms, cmd, capsys):
    root, named = forms
    results = {}
    for form, operands in named.items():
        status, out, err = _out([*cmd, *operands], capsys)
        assert status in (0, 1), (form, err)
        assert "kmodcompat-packages" not in out + err
        if cmd[0] in ("views", "validate"):  # these name what they read: the operand, the package
            out = json.dumps({k: v for k, v in json.loads(out).items() if k not in ("input", "inputs")})
            out = out.replace(str(root), "").replace("root.tar.xz:", "")
        results[form] = out
    assert len(set(results.values())) == 1, {k: v[:300] for k, v in results.items()}
    if cmd[0] in ("exports", "graph", "symvers"):
        assert len(results["root"]) > 200  # not the empty result of a tree not found


def test_root_operand_reads_the_release_inside(forms, tmp_path, capsys):
    root, _ = forms
    status, _, err = _out(["report", "--no-cache", "--fail-on", "none", "--out", str(tmp_path), str(root)], capsys)
    doc = json.loads((tmp_path / "report.json").read_text())
    assert status == 0 and doc["tree"]["kernel_release"] == KVER and doc["counts"]["builtin"] == 2
    assert f"report for {KVER} " in err


def test_wrong_operands_are_one_line_exit_2(forms, tmp_path, capsys):
    root, named = forms
    two = tmp_path / "two"
    for kver in ("1.0", "2.0"):
        (two / "lib" / "modules" / kver).mkdir(parents=True)
    afile = tmp_path / "notes.txt"
    afile.write_text("x")
    cases = [
        (["exports", str(two)], f"{two}: several kernels (1.0, 2.0): name one with -b {two} KVER"),
        (["graph", str(root), str(root)], f"{root}: one tree at a time"),
        (["symvers", str(afile)], f"{afile}: not a module directory, a root holding lib/modules/KVER or a package"),
        (["exports", str(tmp_path / "missing")], f"{tmp_path / 'missing'}: no such file or directory"),
        (["exports", "-b", str(root), "9.9.9-none"], f"{root}/lib/modules/9.9.9-none: cannot open directory"),
        (["report", str(root), str(root)], f"{root}: one tree at a time"),
        (["views", str(afile) + ".deb"], f"{afile}.deb: no such file or directory"),
    ]
    for argv, message in cases:
        status, out, err = _out(argv, capsys)
        assert status == 2 and err.startswith(f"kmodcompat: {message}") and err.count("\n") == 1, (argv, err)


def test_no_command_imports_another_as_a_library():
    """Shared operand and option code lives in cli/inputs.py (issue 14 item 7)."""
    import re

    from kmodcompat.cli import COMMANDS

    cli = REPO / "kmodcompat" / "cli"
    commands = set(COMMANDS.values())
    assert commands <= {p.stem for p in cli.glob("*.py")}
    for p in cli.glob("*.py"):
        imported = set(re.findall(r"^from \.(\w+) import", p.read_text(), re.M))
        assert not imported & commands, (p.name, imported & commands)


def test_kver_alone_is_under_lib_modules(capsys):
    status, _, err = _out(["exports", "0.0.0-kmodcompat-none"], capsys)
    assert status == 2 and err.startswith("kmodcompat: /lib/modules/0.0.0-kmodcompat-none: cannot open directory")


def test_report_reads_every_form_the_same(forms, tmp_path, capsys):
    """report: the same document for the tree named each way (what names the input aside)."""
    _, named = forms
    docs = {}
    for form, operands in named.items():
        out = tmp_path / form.strip("-").replace(" ", "-")
        status, _, err = _out(["report", "--no-cache", "--fail-on", "none", "--out", str(out), *operands], capsys)
        assert status == 0, (form, err)
        doc = json.loads((out / "report.json").read_text())
        docs[form] = (doc["tree"]["kernel_release"], doc["counts"], doc["consumers"]["totals"],
                      sorted(m["name"] for m in doc["modules"]) if "modules" in doc else None)
    assert len({json.dumps(d) for d in docs.values()}) == 1, docs
    assert docs["root"][0] == KVER


def test_diff_of_one_tree_named_two_ways_is_empty(forms, capsys):
    """diff: any two forms of the same tree compare equal (exit 0: nothing changed)."""
    _, named = forms
    base = named["module directory"]
    for form, operands in named.items():
        if form in ("-b", "--moddir"):  # diff's -b takes KVER operands; it has no --moddir
            continue
        status, out, err = _out(["diff", "--format", "json", *base, *operands], capsys)
        assert status == 0, (form, err)
        assert json.loads(out)["status"]["exit_code"] == 0
    root = str(forms[0])
    status, _, err = _out(["diff", "-b", root, KVER, *base], capsys)
    assert status == 2 and err.startswith("kmodcompat: ")  # -b ROOT takes releases on both sides
    status, _, err = _out(["diff", "-b", root, "-b", root, KVER, KVER], capsys)
    assert status == 0, err
