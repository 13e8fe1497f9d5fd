"""Every command over the same list of bad inputs (issue 18 item 1).

The answer to a wrong input is one line on stderr, ``kmodcompat: WHAT: WHY``, naming what was wrong, and exit
status 2 (README "Exit status"); nothing on stdout, never a traceback. Where a command's job is to check
the input, a bad input is its finding instead (``validate``: 1, named in its output; ``diff``: its bitmask's
error bit, 1). The kmod-compatible commands (modinfo, dump-modversions, depmod) answer what kmod answers:
each such cell runs the real kmod 30 and 34.2 on the same arguments and compares stdout, stderr and status
byte for byte; only kmodcompat's own forms (a tree as a directory operand) and options it does not know
get its own line.

The table covers every command in ``kmodcompat.cli.COMMANDS``: a command added without a row fails
:func:`test_every_command_has_a_row`, and each row must answer every input (or say why it does not apply).
"""

from __future__ import annotations

import importlib
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from kmodcompat.cli import COMMANDS, main

from . import oracle
from .test_depmod import FIX, KVER, build_tree
from .paths import REPO


#: The bad inputs, the same for every command.
INPUTS = ("missing", "file-for-directory", "directory-for-file", "not-a-module", "unwritable-out",
          "two-operands", "unknown-release", "unknown-release-alone", "bad-option")

#: An unknown kernel release: no /lib/modules/9.9.9 (the cells that read it skip where one exists).
UNKNOWN = "9.9.9"


@dataclass(frozen=True)
class Paths:
    base: Path
    root: Path  # a root holding lib/modules/KVER
    tree: Path  # that module directory
    missing: Path
    text: Path  # a regular file that is neither a module nor a tree
    empty: Path  # a directory holding no module
    bad: Path  # bad.ko: not an ELF file
    good: Path  # a real module


@pytest.fixture(scope="module")
def paths(tmp_path_factory) -> Paths:
    base = tmp_path_factory.mktemp("bad-inputs")
    root = build_tree(base)
    (base / "notes.txt").write_text("not a module, not a tree\n")
    # Named like a module directory, so that depmod's answer is the real depmod -b BASE/empty-root 0.0-empty's
    (base / "empty-root" / "lib" / "modules" / "0.0-empty").mkdir(parents=True)
    (base / "bad.ko").write_bytes(b"not an ELF file at all\n" * 4)
    shutil.copyfile(FIX / "basic.ko", base / "good.ko")
    return Paths(base, root, root / "lib" / "modules" / KVER, base / "missing", base / "notes.txt",
                 base / "empty-root" / "lib" / "modules" / "0.0-empty",
                 base / "bad.ko", base / "good.ko")


# --- what each command is given for each input ---------------------------------------------------------

#: Which operand an input puts where a command expects a tree, or a module file.
def _operand(case: str, p: Paths, expects: str) -> list[str] | None:
    tree_like = expects == "tree"
    return {
        "missing": [str(p.missing)],
        "file-for-directory": [str(p.text)] if tree_like else None,
        "directory-for-file": [str(p.empty)],  # a tree command: a directory with no module in it
        "not-a-module": [str(p.bad)],
        "two-operands": [str(p.tree), str(p.tree)] if tree_like else None,
        "unknown-release": ["-b", str(p.root), UNKNOWN],
        "unknown-release-alone": [UNKNOWN],
        "bad-option": ["--no-such-option"] if tree_like else [str(p.good), "--no-such-option"],
    }.get(case)


def argv_for(command: str, case: str, p: Paths) -> list[str] | None:
    """The command line for ``command`` given input ``case``; None where the input does not apply (see NA)."""
    out = str(p.base / f"out-{command}")
    if case == "unwritable-out":
        return {"report": ["report", "--no-cache", "--out", "/proc/kmodcompat-nope", str(p.tree)],
                "simulate": ["simulate", "--format-as", "basic", "--out", "/proc/kmodcompat-nope", str(p.good)]
                }.get(command)
    if (command, case) in NA_CELLS:
        return None
    special = {
        ("modinfo", "unknown-release"): ["modinfo", "-b", str(p.root), "-k", UNKNOWN, "kmc_basic"],
        ("modinfo", "unknown-release-alone"): ["modinfo", "-k", UNKNOWN, "kmc_basic"],
        ("modinfo", "two-operands"): ["modinfo"],  # modinfo takes any number: none is its error
        ("dump-modversions", "two-operands"): ["dump-modversions", str(p.good), str(p.bad)],
        ("diff", "two-operands"): ["diff", str(p.tree), str(p.tree), str(p.tree)],
        ("diff", "unknown-release"): ["diff", "-b", str(p.root), UNKNOWN, KVER],
        ("diff", "unknown-release-alone"): ["diff", UNKNOWN, str(p.tree)],
        ("cache", "two-operands"): ["cache", "info", "clear"],
        ("cache", "missing"): ["cache", str(p.missing)],
        ("cache", "bad-option"): ["cache", "info", "--no-such-option"],
        ("loadable", "unknown-release"): ["loadable", str(p.good), "--kernel", "-b"],
        ("loadable", "unknown-release-alone"): ["loadable", str(p.good), "--kernel", UNKNOWN],
    }
    if (command, case) in special:
        return special[(command, case)]
    shape = SHAPES[command]
    if shape == "cache":
        return None
    ops = _operand(case, p, "tree" if shape in ("tree", "depmod") else "module")
    if ops is None:
        return None
    if shape == "depmod":
        return ["depmod", "-n", *ops]
    if command == "simulate":
        return ["simulate", "--format-as", "basic", "--out", out, *ops]
    if command == "report":
        return ["report", "--no-cache", "--out", out, *ops]
    if command == "diff":
        other = str(p.good) if case in ("not-a-module", "missing") else str(p.tree)
        return ["diff", *ops, other] if ops[0] != "--no-such-option" else ["diff", str(p.good), str(p.good), *ops]
    if command == "loadable":
        return ["loadable", *ops, "--kernel", str(p.tree)]
    if command == "ksyms":
        return ["ksyms", "--requires", *ops]
    return [command, *ops]


#: How each command takes its input: a tree (exports ...), module files (show ...), or both.
SHAPES = {
    "modinfo": "module", "dump-modversions": "module", "modversions": "module", "show": "module",
    "depmod": "depmod", "exports": "tree", "graph": "tree", "symvers": "tree", "report": "tree",
    "views": "tree", "simulate": "tree", "diff": "tree", "validate": "tree", "loadable": "module",
    "ksyms": "module", "cache": "cache",
}

#: Commands whose answers are kmod's: the real tool that is compared, and the arguments it gets before ours.
KMOD = {"modinfo": ("modinfo", []), "dump-modversions": ("modprobe", ["--dump-modversions"]),
        "depmod": ("depmod", [])}

#: Cells that are not the one-line exit-2 answer, and why. "kmod": compared with both real kmods.
EXPECTED: dict[tuple[str, str], tuple[str, int]] = {
    # validate checks modules: an unreadable one is its finding (exit 1), named in its output
    ("validate", "not-a-module"): ("finding", 1),
    # diff's bitmask: bit 0 is "an error", an unreadable module file (abidiff's ABIDIFF_ERROR)
    ("diff", "not-a-module"): ("one-line", 1),
    ("validate", "file-for-directory"): ("finding", 1),
}
for _cmd in KMOD:
    for _case in INPUTS:
        # an unknown option: kmod's getopt error for modinfo and depmod (kmod/getopt.py); modprobe's options
        # are not emulated, so dump-modversions answers with kmodcompat's line, 2
        if _case != "bad-option" or _cmd != "dump-modversions":
            EXPECTED[(_cmd, _case)] = ("kmod", 0)
# kmodcompat's own forms (a tree as a directory operand) in depmod: its own line for two trees; a module
# directory named directly is depmod -b of its root, so an empty one is what the real depmod -b says of it
EXPECTED[("depmod", "two-operands")] = ("one-line", 2)
EXPECTED[("depmod", "directory-for-file")] = ("kmod-b", 0)

#: Inputs that cannot be given to a command at all, and why.
NA = {
    "unwritable-out": "only report and simulate write into a directory they are given",
    "file-for-directory": "takes module files: a text file is the not-a-module input",
    "two-operands": "takes any number of operands",
}

#: Single cells that do not apply, and why.
NA_CELLS = {
    ("dump-modversions", "unknown-release"): "a module file only: modprobe --dump-modversions reads no release "
                                             "(unknown-release-alone gives it one as a file name)",
    ("validate", "two-operands"): "takes any number of module files and trees",
    **{("cache", case): "takes an action, no file or tree" for case in
       ("directory-for-file", "not-a-module", "unknown-release", "unknown-release-alone")},
}

CELLS = [(c, i) for c in COMMANDS for i in INPUTS]


def _run(argv, capsys) -> tuple[int, str, str]:
    status = main(list(argv))
    out = capsys.readouterr()
    return status, out.out, out.err


def test_every_command_has_a_row():
    assert set(SHAPES) == set(COMMANDS), "a command without a row in the bad-input table"


@pytest.mark.parametrize(("command", "case"), CELLS, ids=[f"{c}-{i}" for c, i in CELLS])
def test_bad_input(paths, command, case, capsys):
    argv = argv_for(command, case, paths)
    if argv is None:
        assert case in NA or (command, case) in NA_CELLS, f"{command} has no command line for {case}"
        return
    if "unknown-release" in case and os.path.exists(f"/lib/modules/{UNKNOWN}"):
        pytest.skip(f"/lib/modules/{UNKNOWN} exists here")
    kind, want = EXPECTED.get((command, case), ("one-line", 2))
    if kind == "kmod":
        _compare_with_kmod(command, argv, capsys)
        return
    if kind == "kmod-b":  # depmod DIR against the real depmod -b ROOT KVER of that DIR
        root, kver = str(paths.empty.parent.parent.parent), paths.empty.name
        _compare_with_kmod(command, argv, capsys, ["-n", "-b", root, kver])
        return
    status, out, err = _run(argv, capsys)
    assert "Traceback" not in err
    if kind == "finding":  # validate: each check the file fails, in the output
        assert status == want and err == "" and f"{argv[-1]}: FAIL kernel elf_validity_ehdr" in out, (status, out, err)
        return
    assert status == want, (argv, status, err)
    assert err.count("\n") == 1 and err.startswith("kmodcompat: "), (argv, err)
    assert out == "", (argv, out[:300])
    named = _named(argv, case, paths)
    assert named in err, (argv, named, err)


def _named(argv: list[str], case: str, p: Paths) -> str:
    """What the error line must name: the option, the path or the release that is wrong."""
    if case == "bad-option":
        return "--no-such-option"
    if case == "unwritable-out":
        return "/proc/kmodcompat-nope"
    if case == "two-operands":
        return argv[-1] if argv[0] in ("diff", "cache") else "one tree at a time"
    if case == "unknown-release":  # commands without -b: the option they do not know
        return {"loadable": "--kernel", "show": "-b", "modversions": "-b", "ksyms": "-b"}.get(argv[0], UNKNOWN)
    if case == "unknown-release-alone":
        return UNKNOWN
    return next(a for a in argv if a in (str(p.missing), str(p.text), str(p.empty), str(p.bad)))


def _compare_with_kmod(command: str, argv: list[str], capsys, kmod_args: list[str] | None = None) -> None:
    tool, pre = KMOD[command]
    for version in ("kmod30", "kmod34"):
        if not oracle.kmod_available(version):
            pytest.skip(f"{version} not available")
        real = oracle.run_kmod(version, tool, pre + (argv[1:] if kmod_args is None else kmod_args))
        status, out, err = _run([argv[0], "--as", version, *argv[1:]], capsys)
        assert (out.encode(), err.encode(), status) == (real.stdout, real.stderr, real.status), (version, argv)


def test_depmod_of_an_unknown_release_is_kmods_byte_for_byte(capsys):
    """The issue's own case: ``kmodcompat depmod -n 9.9.9`` and both real kmods (stdout, stderr, status)."""
    if os.path.exists(f"/lib/modules/{UNKNOWN}"):
        pytest.skip(f"/lib/modules/{UNKNOWN} exists here")
    for version in ("kmod30", "kmod34"):
        if not oracle.kmod_available(version):
            pytest.skip(f"{version} not available")
        real = oracle.run_kmod(version, "depmod", ["-n", UNKNOWN])
        assert real.stderr.endswith(b"depmod: FATAL: could not search modules: No such file or directory\n")
        assert real.status == 1
        status, out, err = _run(["depmod", "--as", version, "-n", UNKNOWN], capsys)
        assert (out.encode(), err.encode(), status) == (real.stdout, real.stderr, real.status)


@pytest.mark.parametrize("version", ["4.2", " 5.10", "+1.2-rc", "1.-2", "1.2.3-amd64", "x1.2", "1", "1.x", ".1.2"])
def test_depmod_version_check_is_kmods(version, tmp_path, capsys):
    """tools/depmod.c is_version_number() (``sscanf("%u.%u")``) decides which operands kmod refuses."""
    if not oracle.kmod_available("kmod34"):
        pytest.skip("kmod34 not available")
    real = oracle.run_kmod("kmod34", "depmod", ["-n", "-b", str(tmp_path), version])
    status, out, err = _run(["depmod", "--as", "kmod34", "-n", "-b", str(tmp_path), version], capsys)
    assert (err.encode(), status) == (real.stderr, real.status)


def test_usage_errors_are_one_line(capsys):
    """argparse's two-to-four-line usage and error become one line, exit 2, naming the command."""
    for argv in (["exports", "-j", "x"], ["report", "--format"], ["views", "--consumer", "nobody"],
                 ["nosuchcommand"], [], ["simulate", "--format-as", "sideways", "x.ko"]):
        status, out, err = _run(argv, capsys)
        assert status == 2 and out == "" and err.count("\n") == 1 and err.startswith("kmodcompat: "), (argv, err)
        if argv and argv[0] in COMMANDS:
            assert err.startswith(f"kmodcompat: {argv[0]}: ") and f"kmodcompat {argv[0]} --help" in err


def test_every_help_ends_with_its_exit_status_and_the_readme_says_the_same(capsys):
    readme = " ".join((REPO / "README.md").read_text().split())
    for command, module in COMMANDS.items():
        text = " ".join(importlib.import_module(f"kmodcompat.cli.{module}").HELP.exit_status.split())
        assert f"- `{command}`: {text}" in readme, f"README's Exit status section lacks {command}'s line"
        status, out, _ = _run([command, "--help"], capsys)
        assert status == 0
        assert " ".join(out[out.rindex("exit status:"):].split()) == f"exit status: {text}", command


def test_messages_are_escaped(paths, capsys):
    """A name with a newline cannot forge a second line of the one-line answer."""
    evil = paths.base / "evil\nkmodcompat: all good"
    for argv in (["exports", str(evil)], ["show", str(evil)], ["views", str(evil)]):
        status, _, err = _run(argv, capsys)
        assert status == 2 and err.count("\n") == 1 and re.search(r"evil\\x0akmodcompat", err), (argv, err)
