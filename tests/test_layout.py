"""One home for each low-level fact (issue 14): no consumer id, modversions format or table id, ELF
layout or Module.symvers reading written in a second module of the package.

The check reads the package's syntax trees, not its text: a comment or a docstring may name any of
these (they cite), code may not spell them. What counts as a spelling comes from the homes
themselves (the consumer registry, :class:`~kmodcompat.records.ModversionsFormat`,
:class:`~kmodcompat.modversions.VersionTable`, :mod:`kmodcompat.elf.layout`), so a new consumer or
format is checked without editing this file. Each check is shown to fail on a duplicate planted in
a copy of a real module (the ``_planted`` tests), so none of them passes vacuously.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from kmodcompat.consumers import CONSUMERS
from kmodcompat.elf import layout
from kmodcompat.modversions import VersionTable
from kmodcompat.records import ModversionsFormat

from .paths import REPO

PACKAGE = REPO / "kmodcompat"

#: A spelling found outside its homes: (module, line, value).
Hit = tuple[str, int, object]


def _constants(tree: ast.Module) -> Iterator[ast.Constant]:
    """The str and bytes literals of a module's code: docstrings left out (they cite, and may name anything),
    and ``__all__`` (Python names, such as parse/accel.py's ``ext``)."""
    skipped = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                skipped.add(id(first.value))
        elif isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets):
            skipped.update(id(c) for c in ast.walk(node.value))
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, (str, bytes)) and id(node) not in skipped:
            yield node


def _names(tree: ast.Module) -> Iterator[tuple[int, str]]:
    """Every name the module's code refers to, bare or as an attribute (``MODULE_SYMVERS``, ``bounded.MODULE_SYMVERS``)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            yield node.lineno, node.id
        elif isinstance(node, ast.Attribute):
            yield node.lineno, node.attr
        elif isinstance(node, ast.alias):
            yield getattr(node, "lineno", 0), node.name


def _modules(root: Path = PACKAGE) -> Iterator[tuple[str, ast.Module]]:
    for path in sorted(root.rglob("*.py")):
        yield path.relative_to(root).as_posix(), ast.parse(path.read_text(), str(path))


def _literals(wanted: Callable[[object], bool], homes: dict[object, set[str]] | set[str],
              modules: Iterator[tuple[str, ast.Module]]) -> list[Hit]:
    """Literals ``wanted`` accepts, in a module that is not a home of that value (``homes``: one set for every
    value, or by value)."""
    hits = []
    for rel, tree in modules:
        for node in _constants(tree):
            if wanted(node.value):
                allowed = homes if isinstance(homes, set) else homes.get(node.value, set())
                if rel not in allowed:
                    hits.append((rel, node.lineno, node.value))
    return hits


# --- the checks --------------------------------------------------------------------------------

#: Where consumer ids are written: the registry, and the kmod releases' profiles (kmod30, kmod34, kmod-pr270).
CONSUMER_HOMES = {"consumers/__init__.py", "kmod/profile.py"}


def consumer_ids(modules=None) -> list[Hit]:
    ids = set(CONSUMERS)
    return _literals(lambda v: v in ids, CONSUMER_HOMES, modules or _modules())


#: The words a format id or a table id shares with prose and other vocabularies ("none": no compression,
#: ``--fail-on none``), left out: every other id is distinctive.
_COMMON_WORDS = {"none"}


def format_ids(modules=None) -> list[Hit]:
    """A modversions format id (records.ModversionsFormat) or version-table id (modversions.VersionTable),
    outside the enum that defines it. "basic" and "varlen" are both: a format, and the table it consists of."""
    homes: dict[object, set[str]] = {}
    for fmt in ModversionsFormat:
        homes.setdefault(fmt.value, set()).add("records.py")
    for table in VersionTable:
        for spelling in {table.value, table.diff_id}:
            homes.setdefault(spelling, set()).add("modversions/__init__.py")
    ids = set(homes) - _COMMON_WORDS
    return _literals(lambda v: v in ids, homes, modules or _modules())


def _struct_formats() -> set[str]:
    """Elf_Ehdr, Elf_Shdr and Elf_Sym's layouts as struct formats, in every byte-order spelling."""
    bare = {*layout.EHDR.values(), *layout.SHDR.values()}
    return {prefix + f for f in bare for prefix in ("", "<", ">", "=", "!", "@")}


def elf_layouts(modules=None) -> list[Hit]:
    """An ELF header or section header layout, or the ELF magic, written outside elf/layout.py."""
    formats = _struct_formats()
    return _literals(lambda v: v in formats or v == layout.ELFMAG, {"elf/layout.py"}, modules or _modules())


#: The export types Module.symvers lines carry (modpost's write_dump()): read and written by files/symvers.py alone.
EXPORT_TYPES = {"EXPORT_SYMBOL", "EXPORT_SYMBOL_GPL", "EXPORT_SYMBOL_GPL_FUTURE", "EXPORT_UNUSED_SYMBOL",
                "EXPORT_UNUSED_SYMBOL_GPL"}
#: Readers of a Module.symvers's bytes besides files/symvers.py: the RPM ksym requirement generators, which
#: model Red Hat's find-requires.ksyms reading it with awk (ksyms.py), not depmod; they are handed the bytes;
#: and simulate_tree.py, which copies the kernel's Module.symvers into the simulated tree unparsed.
SYMVERS_BYTES_READERS = {"cli/ksyms.py", "report/__init__.py", "simulate_tree.py"}


def symvers_readings(modules=None) -> list[Hit]:
    """A Module.symvers read (its bounded input kind) or an export type spelled, outside files/symvers.py."""
    modules = list(modules or _modules())
    hits = _literals(lambda v: v in EXPORT_TYPES, {"files/symvers.py"}, iter(modules))
    for rel, tree in modules:
        if rel not in {"files/symvers.py", "files/bounded.py"} | SYMVERS_BYTES_READERS:
            hits += [(rel, line, name) for line, name in _names(tree) if name == "MODULE_SYMVERS"]
    return hits


CHECKS = {"consumer ids": consumer_ids, "format and table ids": format_ids, "ELF layouts": elf_layouts,
          "Module.symvers readings": symvers_readings}


@pytest.mark.parametrize("check", CHECKS)
def test_one_home(check):
    hits = CHECKS[check]()
    assert not hits, "\n".join(f"kmodcompat/{rel}:{line}: {value!r}" for rel, line, value in hits)


# --- each check fails on a planted duplicate -----------------------------------------------------

#: For each check: a module that is not a home, and a line that spells what the check looks for.
PLANTED = {
    "consumer ids": ("report/diff_json.py", 'DEFAULT = "kmod34"\n'),
    "format and table ids": ("simulate.py", 'WANTED = "ext-only"\n'),
    "ELF layouts": ("validate.py", 'SHDR64 = "<IIQQQQIIQQ"\n'),
    "Module.symvers readings": ("diff/kabi.py", 'GPL = "EXPORT_SYMBOL_GPL"\n'),
}


@pytest.mark.parametrize("check", CHECKS)
def test_planted(check):
    """The package with one duplicate planted in a real module: the check names it, and only it."""
    rel, line = PLANTED[check]
    planted = []
    for name, tree in _modules():
        if name == rel:
            tree = ast.parse((PACKAGE / rel).read_text() + line)
        planted.append((name, tree))
    hits = CHECKS[check](iter(planted))
    assert [(h[0], h[2]) for h in hits] == [(rel, ast.literal_eval(line.split("=", 1)[1].strip()))], hits


def test_planted_symvers_read():
    """A second reader of a Module.symvers (its input kind named elsewhere) is found too."""
    rel = "diff/kabi.py"
    planted = [(name, ast.parse((PACKAGE / rel).read_text() + "from ..files.bounded import MODULE_SYMVERS\n")
                if name == rel else tree) for name, tree in _modules()]
    assert [(h[0], h[2]) for h in symvers_readings(iter(planted))] == [(rel, "MODULE_SYMVERS")]
