"""Test oracle: kmod's index files read back, and the index entries derived from depmod's text outputs.

Only the tests use these (the package writes indexes, it never reads one), so they live here, not in
kmodcompat/depmod/index.py: the reader follows libkmod/libkmod-index.c's disk format, the derivations
follow tools/depmod.c's ``output_*_bin`` functions, so a real depmod's ``.bin`` files can be rebuilt
from its text files and compared byte for byte.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping

from kmodcompat.depmod.index import (HEADER_SIZE, INDEX_MAGIC, INDEX_MAGIC_OLD, INDEX_NODE_CHILDS, INDEX_NODE_MASK,
                                     INDEX_NODE_PREFIX, INDEX_NODE_VALUES, INDEX_VERSION, LAYOUT_POSTORDER,
                                     LAYOUT_PREORDER, Index, alias_normalize)
from kmodcompat.records import path_to_modname as _path_to_modname


class IndexFormatError(ValueError):
    """Bytes that are not a well-formed kmod index file."""


# -- reader --------------------------------------------------------------------


def _read_header(data: bytes) -> int:
    if len(data) < HEADER_SIZE:
        raise IndexFormatError(f"index too short ({len(data)} bytes)")
    magic, version, root = struct.unpack_from(">III", data, 0)
    if magic == INDEX_MAGIC_OLD:
        raise IndexFormatError("old module-init-tools index (magic 0xB007FA57) is not supported")
    if magic != INDEX_MAGIC:
        raise IndexFormatError(f"bad index magic 0x{magic:08X}")
    # libkmod index_file_open(): major must match, minor is not checked.
    if version >> 16 != INDEX_VERSION >> 16:
        raise IndexFormatError(f"unsupported index version 0x{version:08X}")
    return root


def _cstring(data: bytes, pos: int) -> tuple[str, int]:
    end = data.find(b"\0", pos)
    if end < 0:
        raise IndexFormatError(f"unterminated string at offset {pos}")
    return data[pos:end].decode("latin-1"), end + 1


def read_index(data: bytes) -> dict[str, list[tuple[int, str]]]:
    """Decode a kmod index file into ``{key: [(priority, value), ...]}``.

    Keys come out in trie order (sorted); values in file order.  Works for both
    node layouts.  Strings are decoded as latin-1 so that no byte is lost.
    Raises :class:`IndexFormatError` on malformed input (bad magic/version,
    offsets outside the file, ``first > last``, unterminated strings, cycles).
    """
    data = bytes(data)
    size = len(data)
    root = _read_header(data)
    result: dict[str, list[tuple[int, str]]] = {}
    visited: set[int] = set()
    u32 = struct.Struct(">I").unpack_from
    # Depth-first, children in ascending character order -> keys come out sorted.
    stack: list[tuple[int, str]] = [(root, "")]
    while stack:
        ref, key = stack.pop()
        pos = ref & INDEX_NODE_MASK
        if pos < HEADER_SIZE or pos > size:
            raise IndexFormatError(f"node offset {pos} outside the file")
        if pos in visited:
            raise IndexFormatError(f"node at offset {pos} reached twice")
        visited.add(pos)
        if ref & INDEX_NODE_PREFIX:
            prefix, pos = _cstring(data, pos)
            key += prefix
        kids: list[tuple[int, str]] = []
        if ref & INDEX_NODE_CHILDS:
            if pos + 2 > size:
                raise IndexFormatError("truncated child table")
            first, last = data[pos], data[pos + 1]
            pos += 2
            if first > last:
                raise IndexFormatError(f"child range first {first} > last {last}")
            n = last - first + 1
            if pos + 4 * n > size:
                raise IndexFormatError("truncated child table")
            offs = struct.unpack_from(f">{n}I", data, pos)
            pos += 4 * n
            kids = [(o, key + chr(first + i)) for i, o in enumerate(offs) if o]
        if ref & INDEX_NODE_VALUES:
            if pos + 4 > size:
                raise IndexFormatError("truncated value count")
            (count,) = u32(data, pos)
            pos += 4
            vals: list[tuple[int, str]] = []
            for _ in range(count):
                if pos + 4 > size:
                    raise IndexFormatError("truncated value")
                (prio,) = u32(data, pos)
                val, pos = _cstring(data, pos + 4)
                vals.append((prio, val))
            result[key] = vals
        stack.extend(reversed(kids))
    return dict(sorted(result.items()))


def detect_layout(data: bytes) -> str | None:
    """Tell which node order wrote ``data``: LAYOUT_PREORDER, LAYOUT_POSTORDER, or None.

    Pre-order puts the root right after the header; post-order puts it last.
    None when both agree (an index with a single node).
    """
    root = _read_header(bytes(data))
    if root & INDEX_NODE_MASK != HEADER_SIZE:
        return LAYOUT_POSTORDER
    # Root at 12 with children can only be pre-order (post-order writes children
    # first); a childless root is the only node, which both orders place at 12.
    return LAYOUT_PREORDER if root & INDEX_NODE_CHILDS else None


def path_to_modname(path: str) -> str | None:
    """libkmod's ``path_to_modname()``: None when the basename is empty (kmod returns NULL)."""
    return _path_to_modname(path) if path[path.rfind("/") + 1:] else None


# -- derivation of index entries from depmod's text outputs ----------------------


def _text(data: str | bytes) -> str:
    return data.decode("latin-1") if isinstance(data, (bytes, bytearray)) else data


def _lines(data: str | bytes) -> list[str]:
    """Lines without their newline; a missing final newline is tolerated."""
    text = _text(data)
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return lines


def module_priorities_from_dep_text(modules_dep: str | bytes) -> dict[str, int]:
    """Map module name -> depmod priority (``mod->idx``) from ``modules.dep`` text.

    depmod's ``output_*_bin`` use ``mod->idx``, the module's position in the
    modules array after ``depmod_modules_sort()`` (modules.order order, then the
    rest).  ``output_deps()`` writes one line per module in that array order, so
    line number == idx.  Exception: modules caught in a dependency loop keep an idx
    but get no line, so priorities after them cannot be recovered from the text.
    """
    prios: dict[str, int] = {}
    for idx, line in enumerate(_lines(modules_dep)):
        name = path_to_modname(line.split(":", 1)[0])
        if name is None:
            raise ValueError(f"modules.dep line {idx + 1}: no module path: {line!r}")
        prios.setdefault(name, idx)
    return prios


def dep_index_from_text(modules_dep: str | bytes) -> Index:
    """Build ``modules.dep.bin`` from ``modules.dep`` text.

    ``output_deps_bin()``: key = ``mod->modname`` (path_to_modname of the path:
    basename up to the first '.', '-' -> '_'), value = the very line
    ``output_deps()`` prints ("relpath: dep1 dep2", no newline), priority = ``mod->idx``
    (= line number, see :func:`module_priorities_from_dep_text`).
    """
    idx = Index()
    for n, line in enumerate(_lines(modules_dep)):
        name = path_to_modname(line.split(":", 1)[0])
        if name is None:
            raise ValueError(f"modules.dep line {n + 1}: no module path: {line!r}")
        idx.insert(name, line, n)
    return idx


def _prio(priorities: Mapping[str, int], modname: str, what: str) -> int:
    try:
        return priorities[modname]
    except KeyError:
        raise ValueError(f"{what}: module {modname!r} is not in modules.dep") from None


def alias_index_from_text(modules_alias: str | bytes, priorities: Mapping[str, int]) -> Index:
    """Build ``modules.alias.bin`` from ``modules.alias`` text.

    ``output_aliases_bin()``: for every ``alias`` modinfo entry of every module (in
    module array order, which is the order of the text), key = alias_normalize(pattern)
    (unmatched brackets are skipped), value = module name, priority = ``mod->idx``
    taken from ``priorities`` (:func:`module_priorities_from_dep_text`).  The text line
    is ``"alias %s %s\\n"`` (pattern, modname); the module name has no spaces, so the
    last space separates them.
    """
    idx = Index()
    for line in _lines(modules_alias):
        if not line.startswith("alias "):
            continue  # the "# Aliases extracted ..." header
        pattern, sep, modname = line[6:].rpartition(" ")
        if not sep:
            raise ValueError(f"modules.alias: malformed line {line!r}")
        key = alias_normalize(pattern)
        if key is None:
            continue
        idx.insert(key, modname, _prio(priorities, modname, "modules.alias"))
    return idx


def symbols_index_from_text(modules_symbols: str | bytes, priorities: Mapping[str, int]) -> Index:
    """Build ``modules.symbols.bin`` from ``modules.symbols`` text.

    ``output_symbols_bin()``: for each symbol with an owner module, key =
    ``"symbol:" + name`` (not normalised), value = owner's modname, priority =
    owner's ``mod->idx``.  The text is ``"alias symbol:%s %s\\n"``; its order is a
    hash-table order, which does not matter because symbol keys are unique.
    """
    idx = Index()
    for line in _lines(modules_symbols):
        if not line.startswith("alias "):
            continue
        key, sep, modname = line[6:].rpartition(" ")
        if not sep:
            raise ValueError(f"modules.symbols: malformed line {line!r}")
        idx.insert(key, modname, _prio(priorities, modname, "modules.symbols"))
    return idx


def builtin_index_from_text(modules_builtin: str | bytes) -> Index:
    """Build ``modules.builtin.bin`` from ``modules.builtin``.

    ``output_builtin_bin()`` reads the file with fgets(); lines whose first byte is
    not a letter (isalpha, C locale) are rejected ("Invalid modules.builtin line");
    key = path_to_modname(line), value = "", priority 0.  As in kmod, the line still
    carries its newline when path_to_modname runs, so only a basename without any
    '.' would keep it (never the case for "kernel/.../foo.ko").
    """
    idx = Index()
    text = _text(modules_builtin)
    parts = text.split("\n")
    raw = [p + "\n" for p in parts[:-1]]
    if parts[-1]:
        raw.append(parts[-1])
    for line in raw:
        c = line[:1]
        if not ("a" <= c <= "z" or "A" <= c <= "Z"):
            continue
        name = path_to_modname(line)
        if name is None:
            continue
        idx.insert(name, "", 0)
    return idx
