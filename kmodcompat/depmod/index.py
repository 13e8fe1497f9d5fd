"""kmod binary index files (``modules.*.bin``): the writer, byte for byte.

depmod writes five of these files: ``modules.dep.bin``, ``modules.alias.bin``,
``modules.symbols.bin``, ``modules.builtin.bin`` and ``modules.builtin.alias.bin``.
This module reproduces kmod's writer byte for byte (kmod ``tools/depmod.c``:
``index_create``, ``index_insert``, ``index_add_value``, ``index_write``,
``index_write__node``; the disk format is documented in ``libkmod/libkmod-index.c``).
The reader, and the derivation of index entries from depmod's *text* outputs that
the tests use to check real depmod's files, are test oracles: tests/index_oracle.py.

File format (all integers big-endian u32)::

    magic 0xB007F457, version 0x00020001, root node offset
    node: [prefix NUL]                         if offset & 0x80000000
          [first u8, last u8, u32 child[last-first+1]]   if offset & 0x20000000
          [u32 count, count * (u32 priority, value NUL)] if offset & 0x40000000

The low 28 bits of a node offset are its file position, the high nibble its flags.
A child slot with no child holds 0.  There is no padding anywhere.

The one difference between kmod versions is the node *order* in the file:

* kmod <= 33 writes the trie in **post-order** (every child subtree, in ascending
  character order, before its parent; the root is the last node and the header's
  root offset is back-patched).  See the comment above ``index_write__node``:
  "Recursive post-order traversal".
* kmod >= 34 writes it in **pre-order** (a node, then each child subtree in
  ascending character order; the root sits right after the header at offset 12).
  This is kmod PR #188 "depmod: Write index in pre-order" (2024-10, first
  released in 34; the "90 % less lseek()" change): depmod now precomputes node
  sizes to know child offsets before writing the parent.

Verified on five Debian trees (bookworm/trixie/sid amd64, trixie armmp and s390x):
kmod 30 and kmod 34.2 produce files of identical size and identical decoded
content, only the node order differs; both orders are reproduced here exactly.
Everything else (trie shape, value order, duplicates) is the same in both versions.

Notes for the depmod writer that uses this module:

* An empty :class:`Index` serialises to the 12-byte header (root offset 12), which
  is what depmod writes for ``modules.dep.bin``/``alias``/``symbols`` of a tree
  without modules, and for the builtin indexes when their source file is empty.
* When ``modules.builtin`` or ``modules.builtin.modinfo`` is *missing*, depmod
  still creates ``modules.builtin.bin`` / ``modules.builtin.alias.bin`` but leaves
  them **0 bytes long** (the output callback returns before index_write()).
  Observed with kmod 30 and 34.2.
* Priorities of the module indexes are ``mod->idx``; they can be recovered from
  ``modules.dep`` line numbers only when no module is in a dependency loop (such
  modules keep an idx but get no line).
"""

from __future__ import annotations

import re
import struct
from bisect import bisect_left

from ..records import PATH_MAX

__all__ = [
    "INDEX_MAGIC",
    "INDEX_MAGIC_OLD",
    "INDEX_VERSION",
    "LAYOUT_POSTORDER",
    "LAYOUT_PREORDER",
    "Index",
    "alias_normalize",
    "builtin_alias_index_from_modinfo",
    "layout_for_kmod_version",
]

INDEX_MAGIC = 0xB007F457
"""Magic of kmod/m-i-t versioned index files ("BOOTFAST")."""
INDEX_MAGIC_OLD = 0xB007FA57
"""Magic of pre-versioning module-init-tools index files (no version word); not supported."""
INDEX_VERSION = 0x00020001
"""INDEX_VERSION_MAJOR 2 << 16 | INDEX_VERSION_MINOR 1."""

INDEX_NODE_PREFIX = 0x80000000
INDEX_NODE_VALUES = 0x40000000
INDEX_NODE_CHILDS = 0x20000000
INDEX_NODE_FLAGS = 0xF0000000
INDEX_NODE_MASK = 0x0FFFFFFF
INDEX_CHILDMAX = 128
HEADER_SIZE = 12  # magic, version, root offset
_U32_MAX = 0xFFFFFFFF


LAYOUT_POSTORDER = "postorder"
"""Node order written by kmod <= 33 (children before parent, root last)."""
LAYOUT_PREORDER = "preorder"
"""Node order written by kmod >= 34 (parent before children, root at offset 12)."""
_LAYOUTS = (LAYOUT_POSTORDER, LAYOUT_PREORDER)


def layout_for_kmod_version(version: int | str) -> str:
    """Return the node layout a given kmod release writes.

    ``version`` is the kmod release number (``30``, ``"34.2"``, ``"kmod version 34.2"``).
    Pre-order came with kmod 34 (PR #188); every earlier kmod writes post-order.
    """
    if isinstance(version, int):
        major = version
    else:
        m = re.search(r"\d+", version)
        if m is None:
            raise ValueError(f"no kmod version number in {version!r}")
        major = int(m.group())
    return LAYOUT_PREORDER if major >= 34 else LAYOUT_POSTORDER


def _check_string(what: str, s: str) -> None:
    # depmod index__checkstring(): only 7-bit ASCII is supported, anything else is
    # CRIT("Module index: bad character ...") which aborts depmod.  (kmod tests
    # `ch >= INDEX_CHILDMAX` on a plain char; we refuse all non-ASCII.)  NUL cannot
    # occur in a C string at all.
    if not s.isascii() or "\0" in s:
        raise ValueError(f"Module index: {what} must be 7-bit ASCII without NUL: {s!r}")


class Index:
    """In-memory depmod index: key -> values ordered exactly as kmod orders them.

    Mirrors ``struct index_node`` built by ``index_create()``/``index_insert()``.
    Only the key -> value lists are stored; the Patricia trie is derived at
    :meth:`to_bytes` time, because the trie kmod builds incrementally is the
    canonical compressed trie of the key set (splits happen only at a mismatch or a
    key end, new leaves take the whole remaining key, the root never gets a prefix),
    so its shape does not depend on insertion order.
    """

    __slots__ = ("_values",)

    def __init__(self) -> None:
        self._values: dict[str, list[tuple[int, str]]] = {}

    def insert(self, key: str, value: str, priority: int) -> bool:
        """Add ``value`` under ``key`` with ``priority``; return True if it is a duplicate.

        Mirrors ``index_insert()`` -> ``index_add_value()``:

        * duplicates are **kept**; the return value only reports that the same value
          string was already present under the key (depmod prints "duplicate module
          ..." for it with ``-w``);
        * values are kept sorted by ascending priority; a new value goes *before*
          the first existing value whose priority is >= its own
          (``while ((*values)->priority < priority) values = &next``), so values of
          equal priority end up in reverse insertion order.
        """
        _check_string("key", key)
        _check_string("value", value)
        if not 0 <= priority <= _U32_MAX:
            raise ValueError(f"priority must fit in u32: {priority}")
        vals = self._values.get(key)
        if vals is None:
            self._values[key] = [(priority, value)]
            return False
        duplicate = any(v == value for _, v in vals)
        pos = 0
        n = len(vals)
        while pos < n and vals[pos][0] < priority:
            pos += 1
        vals.insert(pos, (priority, value))
        return duplicate

    def __len__(self) -> int:
        """Number of distinct keys."""
        return len(self._values)

    def __contains__(self, key: object) -> bool:
        return key in self._values

    def get(self, key: str) -> list[tuple[int, str]] | None:
        """The (priority, value) list stored under ``key``, in file order, or None."""
        vals = self._values.get(key)
        return list(vals) if vals is not None else None

    def as_dict(self) -> dict[str, list[tuple[int, str]]]:
        """All entries as ``{key: [(priority, value), ...]}``, keys sorted (file/trie order).

        The result compares equal to :func:`read_index` of :meth:`to_bytes`.
        """
        return {k: list(self._values[k]) for k in sorted(self._values)}

    # -- serialisation -----------------------------------------------------------

    def _build_trie(self) -> tuple[list[bytes], list[list[tuple[int, str]] | None], list[int], list[list[int]]]:
        """Build the compressed trie kmod's index_insert() would have built.

        Returns parallel lists indexed by node id (root = 0): prefix bytes, value
        list (or None), first child character, child node ids for first..last (-1
        for an empty slot).
        """
        keys = sorted(self._values)  # ASCII: str order == byte order == trie order
        prefixes: list[bytes] = []
        values: list[list[tuple[int, str]] | None] = []
        firsts: list[int] = []
        children: list[list[int]] = []
        # work item: (lo, hi, start, parent id, slot in parent's child list)
        # keys[lo:hi] all share keys[lo][:start]; start is past the edge character.
        stack: list[tuple[int, int, int, int, int]] = [(0, len(keys), 0, -1, -1)]
        while stack:
            lo, hi, start, parent, slot = stack.pop()
            node = len(prefixes)
            if parent >= 0:
                children[parent][slot] = node
                # Path compression: the node's prefix is everything all keys below
                # it still share (first and last of a sorted range bound the LCP).
                a, b = keys[lo], keys[hi - 1]
                end = start
                lim = min(len(a), len(b))
                while end < lim and a[end] == b[end]:
                    end += 1
            else:
                end = start  # root: index_create() gives prefix "" and it never changes
            prefixes.append(keys[lo][start:end].encode("ascii") if end > start else b"")
            if lo < hi and len(keys[lo]) == end:
                values.append(self._values[keys[lo]])
                lo += 1
            else:
                values.append(None)
            if lo >= hi:
                firsts.append(INDEX_CHILDMAX)
                children.append([])
                continue
            base = keys[lo][:end]
            groups: list[tuple[int, int, int]] = []  # (char, lo, hi)
            i = lo
            while i < hi:
                c = keys[i][end]
                j = bisect_left(keys, base + chr(ord(c) + 1), i, hi)
                groups.append((ord(c), i, j))
                i = j
            first, last = groups[0][0], groups[-1][0]
            firsts.append(first)
            children.append([-1] * (last - first + 1))
            for ch, glo, ghi in groups:
                stack.append((glo, ghi, end + 1, node, ch - first))
        return prefixes, values, firsts, children

    def to_bytes(self, layout: str = LAYOUT_PREORDER) -> bytes:
        """Serialise exactly as depmod's ``index_write()`` does.

        ``layout`` is :data:`LAYOUT_PREORDER` (kmod >= 34, the default) or
        :data:`LAYOUT_POSTORDER` (kmod <= 33); see :func:`layout_for_kmod_version`.
        An empty index is the 12-byte header plus an empty root node (no bytes),
        root offset 12 in both layouts.
        """
        if layout not in _LAYOUTS:
            raise ValueError(f"unknown layout {layout!r}; use one of {_LAYOUTS}")
        prefixes, values, firsts, children = self._build_trie()
        count = len(prefixes)

        # Per-node encoded value block and size; flags (index_write__node): prefix
        # only if non-empty, child table only if the node has children, value block
        # only if it has values.
        vblocks: list[bytes | None] = [None] * count
        sizes = [0] * count
        flags = [0] * count
        pack_u32 = struct.Struct(">I").pack
        for n in range(count):
            size = 0
            fl = 0
            if prefixes[n]:
                size += len(prefixes[n]) + 1
                fl |= INDEX_NODE_PREFIX
            if children[n]:
                size += 2 + 4 * len(children[n])
                fl |= INDEX_NODE_CHILDS
            vals = values[n]
            if vals is not None:
                parts = [pack_u32(len(vals))]
                for prio, val in vals:
                    parts.append(pack_u32(prio))
                    parts.append(val.encode("ascii"))
                    parts.append(b"\0")
                blk = b"".join(parts)
                vblocks[n] = blk
                size += len(blk)
                fl |= INDEX_NODE_VALUES
            sizes[n] = size
            flags[n] = fl

        # Node order.  Pre-order: node, then child subtrees by ascending character.
        # Post-order (kmod <= 33, recursive index_write__node): child subtrees by
        # ascending character, then the node -- which is the reverse of a pre-order
        # walk that visits children in *descending* order.
        order: list[int] = []
        stack = [0]
        if layout == LAYOUT_PREORDER:
            while stack:
                n = stack.pop()
                order.append(n)
                stack.extend(c for c in reversed(children[n]) if c >= 0)
        else:
            while stack:
                n = stack.pop()
                order.append(n)
                stack.extend(c for c in children[n] if c >= 0)
            order.reverse()

        offsets = [0] * count
        pos = HEADER_SIZE
        for n in order:
            offsets[n] = pos
            pos += sizes[n]
        if pos - 1 > INDEX_NODE_MASK:
            raise ValueError(f"index too large for 28-bit node offsets ({pos} bytes)")

        def ref(n: int) -> int:
            return offsets[n] | flags[n] if n >= 0 else 0

        out: list[bytes] = [struct.pack(">III", INDEX_MAGIC, INDEX_VERSION, ref(0))]
        for n in order:
            if prefixes[n]:
                out.append(prefixes[n])
                out.append(b"\0")
            kids = children[n]
            if kids:
                first = firsts[n]
                out.append(bytes((first, first + len(kids) - 1)))
                out.append(struct.pack(f">{len(kids)}I", *(ref(c) for c in kids)))
            vblk = vblocks[n]
            if vblk is not None:
                out.append(vblk)
        data = b"".join(out)
        assert len(data) == pos
        return data


# -- normalisation helpers (libkmod/libkmod-util.c) ------------------------------


def alias_normalize(alias: str) -> str | None:
    """``alias_normalize()``: '-' -> '_' except inside ``[...]``; None on an unmatched bracket.

    depmod skips such aliases (with "Unmatched bracket" warning).  Output longer
    than PATH_MAX-1 characters is truncated as kmod's fixed buffer does.
    """
    limit = PATH_MAX - 1
    if "[" not in alias and "]" not in alias:  # fast path, same result as the loop
        return alias[:limit].replace("-", "_")
    out: list[str] = []
    n = len(alias)
    s = 0
    while s < limit and s < n:
        c = alias[s]
        if c == "-":
            out.append("_")
        elif c == "]":
            return None
        elif c == "[":
            close = alias.find("]", s)
            if close < 0:
                return None
            # kmod copies the bracket expression verbatim (it may run past the
            # PATH_MAX bound in C; we clamp like the outer loop's buffer would).
            out.append(alias[s : close + 1])
            s = close
        else:
            out.append(c)
        s += 1
    return "".join(out)[:limit]


def _flush_stream_to(data: bytes, pos: int, endchar: int) -> tuple[bytes, bool, int]:
    """Emulate depmod's ``flush_stream_to(in, endchar, dst, PATH_MAX)`` on ``data[pos:]``.

    Reads characters until ``endchar``, a NUL or EOF (the terminator is consumed).
    Returns (field, ended_on_endchar, new_pos).  A field that fills the 4096-byte
    buffer stops there: one more character is consumed, the field is cut to
    4095 characters (the gcc-12 fix "i--") and it only counts if that extra
    character was ``endchar``.
    """
    size = len(data)
    j = data.find(b"\0", pos)
    if j < 0:
        j = size
    if endchar != 0:
        e = data.find(bytes((endchar,)), pos, j)
        if e >= 0:
            j = e
    n = j - pos
    if n < PATH_MAX:
        c = data[j] if j < size else -1
        return data[pos:j], c == endchar, min(j + 1, size)
    # buffer full: the loop reads (and drops) one more character before stopping
    k = pos + PATH_MAX
    c = data[k] if k < size else -1
    return data[pos : pos + PATH_MAX - 1], c == endchar, min(k + 1, size)


def builtin_alias_index_from_modinfo(modules_builtin_modinfo: bytes) -> Index:
    """Build ``modules.builtin.alias.bin`` from ``modules.builtin.modinfo``.

    The file is a sequence of NUL-terminated ``"<modname>.<key>=<value>"`` records.
    kmod >= 30 (``output_builtin_alias_bin()`` since "depmod: Stop opening
    modules.modinfo once per module", 2022) does not parse records but streams the
    file with ``flush_stream_to()``, and this reproduces its quirks exactly:

    * modname = text up to the first '.'; if a NUL/EOF comes first (no '.') or the
      modname is empty, that much is dropped and parsing restarts right after it;
    * key = text up to '='; if it is not ``alias`` the stream is flushed to the next
      NUL -- and when the key itself ended at a NUL (a record without '='), that
      flush swallows the *following* record too;
    * value = text up to NUL; empty or unterminated (EOF) values are skipped;
    * key = alias_normalize(value) (unmatched bracket: skipped), value = the modname
      **as written** (not normalised: "a-b" stays "a-b"), priority 0, file order.

    Values sharing a key all have priority 0, so they come out in reverse file
    order (see :meth:`Index.insert`).  Checked against kmod 30 and 34.2 on
    synthetic files (tests/test_depmod_index.py).
    """
    data = bytes(modules_builtin_modinfo)
    idx = Index()
    size = len(data)
    pos = 0
    while pos < size:
        modname, ok, pos = _flush_stream_to(data, pos, ord("."))
        if not ok or not modname:
            continue
        key, ok, pos = _flush_stream_to(data, pos, ord("="))
        if not ok or key != b"alias":
            # flush_stream(in, '\0')
            j = data.find(b"\0", pos)
            pos = size if j < 0 else j + 1
            continue
        value, ok, pos = _flush_stream_to(data, pos, 0)
        if not ok or not value:
            continue
        alias = alias_normalize(value.decode("latin-1"))
        if alias is None:
            continue
        idx.insert(alias, modname.decode("latin-1"), 0)
    return idx
