"""A module tree loaded the way kmod's depmod finds and orders it.

``load_tree(basedir, kver)`` reproduces, step by step, what tools/depmod.c
does before it reads any symbol (kmod 30 and 34.2; differences are
:class:`~kmodcompat.consumers.kmod.Kmod` knobs):

1. ``depmod_modules_search()``: walk ``BASEDIR/lib/modules/KVER`` in readdir
   order (so the same file system gives the same walk), skipping ``.``, ``..``,
   ``build``, ``source`` and every ``exclude`` name at any depth; keep files
   whose name ends with a suffix this kmod build reads (Debian builds both
   releases without zlib: ``.ko``, ``.ko.xz``, ``.ko.zst``; ``.ko.gz`` files are
   not even seen); then walk each ``external`` directory.
2. Two files with the same module name (basename up to the first '.', '-' as
   '_'): ``depmod_module_is_higher_priority()`` keeps one, by ``override``, then
   by ``search`` position (``built-in`` standing for every other directory),
   and the first one found on a tie.
3. ``depmod_modules_build_array()``: the modules in libkmod hash order of their
   names; ``depmod_modules_sort()``: those named in ``modules.order`` first, in
   that file's order, the others after them in hash order.

Each module file is then parsed once (:func:`kmodcompat.parse.scan.parse_many`) and
kept with its record, or with its read error: a file kmod cannot read stays
in the tree (depmod still lists it in modules.dep) and is reported.
``modules.builtin`` and ``modules.builtin.modinfo`` are kept verbatim for the
built-in indexes.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

from ..kmod.file import as_opened
from ..kmod.profile import DEFAULT_KMOD, Kmod
from .config import SEARCH_BUILTIN, SEARCH_EXTERNAL, DepmodConfig, config_paths, load_config
from .diagnostics import ERROR, WARNING, Diagnostic, diag
from .libkmod_hash import MODULES_BY_NAME_BUCKETS, hash_order
from ..errors import ModuleReadError
from ..records import ModuleRecord, path_to_modname, raw
from ..cache import RecordCache, parse_cached
from ..files.stdio import fgets_lines

__all__ = ["ModuleTree", "TreeModule", "load_tree", "make_absolute", "parse_tree", "path_to_modname"]

#: glibc PATH_MAX: fgets() buffer of depmod_modules_sort().
_PATH_MAX = 4096


def make_absolute(path: str) -> str:
    """``path_make_absolute_cwd()``: absolute paths verbatim, others prefixed with cwd (no normalising)."""
    if path.startswith("/"):
        return path
    return f"{os.getcwd()}/{path}"


@dataclass(frozen=True, slots=True)
class TreeModule:
    """One module of the tree, where depmod puts it."""

    name: str  # mod->modname
    path: str  # mod->path: the absolute path depmod prints in warnings
    relpath: str | None  # mod->relpath (None outside the module directory: external)
    opened: ModuleRecord | ModuleReadError  # the parse as this kmod release opens it

    @property
    def record(self) -> ModuleRecord | None:
        return self.opened if isinstance(self.opened, ModuleRecord) else None

    @property
    def error(self) -> ModuleReadError | None:
        return self.opened if isinstance(self.opened, ModuleReadError) else None

    @property
    def output_path(self) -> str:
        """``mod_get_compressed_path()``: relpath, else the full path."""
        return self.relpath if self.relpath is not None else self.path


@dataclass(frozen=True, slots=True)
class ModuleTree:
    """A module directory as depmod sees it, in depmod's module order (``mod->idx``)."""

    dirname: str  # cfg->dirname: BASEDIR/lib/modules/KVER (absolute, as depmod builds it)
    kver: str
    kmod: Kmod  # the kmod release whose rules loaded it
    config: DepmodConfig
    modules: tuple[TreeModule, ...]
    shadowed: tuple[tuple[str, str], ...]  # (path, module name) of files a higher-priority file hid
    modules_order: bytes | None  # modules.order, None when missing
    builtin: bytes | None  # modules.builtin, None when missing
    builtin_modinfo: bytes | None  # modules.builtin.modinfo, None when missing
    diagnostics: tuple[Diagnostic, ...] = field(default=())  # config, search and sort messages, in order
    skipped: tuple[tuple[str, str], ...] = ()  # (path, reason) the search could not follow
    @property
    def failures(self) -> tuple[TreeModule, ...]:
        """Modules whose file could not be read (kept in the tree, listed here with the reason)."""
        return tuple(m for m in self.modules if m.error is not None)

    @property
    def builtin_names(self) -> tuple[str, ...]:
        """Module names of ``modules.builtin`` lines depmod accepts (first byte a letter)."""
        if not self.builtin:
            return ()
        out = []
        for line in self.builtin.split(b"\n"):
            if line[:1].isalpha():
                out.append(path_to_modname(line.decode("utf-8", "surrogateescape")))
        return tuple(out)

    def by_name(self) -> dict[str, TreeModule]:
        return {m.name: m for m in self.modules}


@dataclass(slots=True)
class _Found:
    name: str
    path: str
    relpath: str | None
    rel_for_prio: str | None  # the part after dirname+'/' when path starts with dirname (strncmp only)


class _Search:
    """depmod_modules_search*() and depmod_module_is_higher_priority()."""

    def __init__(self, dirname: str, config: DepmodConfig, suffixes: tuple[str, ...]):
        self.dirname = dirname
        self.config = config
        self.suffixes = suffixes
        self.found: dict[str, _Found] = {}
        self.shadowed: list[tuple[str, str]] = []
        self.diags: list[Diagnostic] = []
        self.excluded = {".", "..", "build", "source", *config.excludes}
        # Paths the walk could not follow, with why. Not depmod diagnostics (its
        # stderr stays byte-exact): the tree reports them so nothing is dropped silently.
        self.skipped: list[tuple[str, str]] = []

    def run(self) -> None:
        if not self._walk_root(self.dirname, fatal=True):
            return
        for ext in self.config.externals:
            self._walk_root(ext, fatal=False)

    def _walk_root(self, path: str, fatal: bool) -> bool:
        try:
            st = os.stat(path)
            it = os.scandir(path)
        except OSError as e:
            if fatal or e.errno != 2:
                self.diags.append(diag(ERROR, "directory-unreadable",
                                       f"could not open directory {path}: {os.strerror(e.errno or 0)}"))
            return False
        self._walk(it, path + "/", frozenset({(st.st_dev, st.st_ino)}))
        return True

    def _walk(self, it: os.ScandirIterator, prefix: str, ancestors: frozenset[tuple[int, int]]) -> None:
        with it:
            entries = list(it)
        for ent in entries:
            name = ent.name
            if name in self.excluded:
                continue
            path = prefix + name
            try:
                if ent.is_dir():
                    st = os.stat(path)
                    key = (st.st_dev, st.st_ino)
                    if key in ancestors:  # a link back to a directory we are inside: a loop
                        self.skipped.append((path, "directory already walked (symbolic link loop)"))
                        continue
                    self._walk(os.scandir(path), path + "/", ancestors | {key})
                    continue
                if not ent.is_file():
                    if ent.is_symlink() and any(name.endswith(x) for x in self.suffixes):
                        self.skipped.append((path, "broken or looping symbolic link"))
                    continue
            except OSError as e:
                self.skipped.append((path, f"cannot read: {e.strerror or e}"))
                continue
            self._file(path, name)

    def _file(self, path: str, name: str) -> None:
        """depmod_modules_search_file()."""
        if not any(len(name) > len(s) and name.endswith(s) for s in self.suffixes):
            return
        modname = path_to_modname(path)
        old = self.found.get(modname)
        if old is not None:
            if self._existing_wins(old, path, modname):
                self.shadowed.append((path, modname))
                return
            self.shadowed.append((old.path, modname))
        dn = self.dirname
        relpath = path[len(dn) + 1:] if path.startswith(dn) and path[len(dn):len(dn) + 1] == "/" else None
        rel_for_prio = path[len(dn) + 1:] if path.startswith(dn) else None
        self.found.pop(modname, None)  # depmod_module_del(): the name is re-added (hash position unchanged)
        self.found[modname] = _Found(modname, path, relpath, rel_for_prio)

    def _existing_wins(self, old: _Found, newpath: str, modname: str) -> bool:
        """depmod_module_is_higher_priority(): True when the module already found is kept.

        Paths are compared on their prefix up to the end of the module name in
        the basename (``baselen + modnamelen``), as the C code does.
        """
        cut = len(modname)
        new_rel = newpath[len(self.dirname) + 1:] if newpath.startswith(self.dirname) else None
        new_key = newpath[:newpath.rfind("/") + 1 + cut]
        old_key = old.path[:old.path.rfind("/") + 1 + cut]
        new_relkey = new_key[len(self.dirname) + 1:] if new_rel is not None else None
        old_relkey = old_key[len(self.dirname) + 1:] if old.rel_for_prio is not None else None
        for mod, subdir in self.config.overrides:
            ov = f"{subdir}/{mod}"
            if new_relkey == ov:
                return False
            if old_relkey == ov:
                return True
        bprio = oldprio = newprio = -1
        i = 0
        for se in self.config.searches:
            if se.kind == SEARCH_BUILTIN:
                bprio = i
            elif se.kind == SEARCH_EXTERNAL:
                for ext in self.config.externals:
                    if _starts_with_dir(new_key, ext):
                        newprio = i
                    if _starts_with_dir(old_key, ext):
                        oldprio = i
                    i += 1
            elif new_relkey is not None and _starts_with_dir(new_relkey, se.path):
                newprio = i
            elif old_relkey is not None and _starts_with_dir(old_relkey, se.path):
                oldprio = i
            i += 1
        if newprio < 0:
            newprio = bprio
        if oldprio < 0:
            oldprio = bprio
        return newprio <= oldprio


def _starts_with_dir(key: str, prefix: str) -> bool:
    """``depmod_is_path_starts_with()``: ``prefix`` then '/' inside the compared length."""
    return len(key) > len(prefix) and key[len(prefix)] == "/" and key.startswith(prefix)


def _uncrelpath(relpath: str, modname: str) -> str:
    """mod->uncrelpath: the relpath cut after "<dir>/" + strlen(modname) + strlen(".ko") bytes.

    That is "dir/<stem>.ko" for any suffix, which is how modules.order names it.
    """
    b = raw(relpath)
    cut = b.rfind(b"/") + 1 + len(raw(modname)) + 3
    return b[:cut].decode("utf-8", "surrogateescape")


def _sort_by_order(names: list[str], found: dict[str, _Found], order: bytes | None, dirname: str,
                   kmod: Kmod, diags: list[Diagnostic]) -> list[str]:
    """depmod_modules_sort(): modules.order entries first, in its order; the rest keep hash order."""
    if order is None:
        diags.append(diag(WARNING, "modules-order-missing",
                          f"could not open modules.order at {dirname}: {os.strerror(2)}"))
        return names
    by_unc = {}
    for n in names:
        f = found[n]
        if f.relpath is not None:
            by_unc[_uncrelpath(f.relpath, n)] = n
    sort_idx = dict.fromkeys(names, 1)  # depmod_module_add(): modules.count + 1 while the array is empty
    lines = fgets_lines(order, _PATH_MAX)
    nxt = -len(names)
    total = len(lines) + 1
    for idx, chunk in enumerate(lines, 1):
        clen = chunk.find(b"\0")
        clen = len(chunk) if clen < 0 else clen
        if clen == 0:
            continue
        if chunk[clen - 1:clen] != b"\n":
            diags.append(diag(ERROR, "modules-order-corrupt",
                              f"{dirname}/modules.order:{idx} corrupted line misses '\\n'"))
            return names  # both releases leave the array unsorted
    for idx, chunk in enumerate(lines, 1):
        clen = chunk.find(b"\0")
        clen = len(chunk) if clen < 0 else clen
        if clen == 0:
            continue
        name = by_unc.get(chunk[:clen - 1].decode("utf-8", "surrogateescape"))
        if name is None:
            continue
        if kmod.modules_order_first_wins:
            if sort_idx[name] < 0:
                continue
            sort_idx[name] = nxt
            nxt += 1
        else:
            sort_idx[name] = idx - total
    return sorted(names, key=sort_idx.__getitem__)  # qsort is glibc's stable merge sort here


def _read(path: str) -> bytes | None:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return None


def load_tree(basedir: str, kver: str | None = None, config: DepmodConfig | Sequence[str] | None = None,
              jobs: int | None = None, progress: Callable[[int, int], None] | None = None,
              cache: "RecordCache | None" = None,
              kmod: Kmod = DEFAULT_KMOD, parse: bool = True) -> ModuleTree:
    """Load a module tree as ``depmod -b BASEDIR KVER`` finds it.

    ``kver`` None: ``basedir`` is the module directory itself (its last
    component is taken as the kernel version). ``config``: a parsed
    :class:`DepmodConfig`, or the paths to read depmod.d files from (like
    repeated ``-C``); None reads the default directories under ``basedir``
    (see :func:`kmodcompat.depmod.config.config_paths`). ``parse`` False skips
    reading the module files (their records are then read errors "not parsed"):
    the survey alone, which :func:`parse_tree` completes.
    """
    if kver is None:
        dirname = make_absolute(basedir.rstrip("/") or "/")
        kver = dirname.rsplit("/", 1)[-1]
    else:
        root = make_absolute(basedir) if basedir else ""
        dirname = f"{root}/lib/modules/{kver}"
    if config is None:
        config = load_config(config_paths(kmod, basedir if basedir else ""), kver)
    elif not isinstance(config, DepmodConfig):
        config = load_config(list(config), kver)
    diags: list[Diagnostic] = list(config.diagnostics)
    search = _Search(dirname, config, kmod.module_suffixes)
    search.run()
    diags += search.diags
    names = [n.decode("utf-8", "surrogateescape")
             for n in hash_order((raw(n) for n in search.found), MODULES_BY_NAME_BUCKETS)]
    order = _read(os.path.join(dirname, "modules.order"))
    names = _sort_by_order(names, search.found, order, dirname, kmod, diags)
    modules = tuple(TreeModule(n, search.found[n].path, search.found[n].relpath,
                               ModuleReadError(search.found[n].path, "not parsed", "not-parsed")) for n in names)
    tree = ModuleTree(dirname, kver, kmod, config, modules, tuple(search.shadowed), order,
                      _read(os.path.join(dirname, "modules.builtin")),
                      _read(os.path.join(dirname, "modules.builtin.modinfo")), tuple(diags), tuple(search.skipped))
    return parse_tree(tree, jobs=jobs, progress=progress, cache=cache) if parse else tree


def parse_tree(tree: ModuleTree, jobs: int | None = None, progress: Callable[[int, int], None] | None = None,
               cache: "RecordCache | None" = None) -> ModuleTree:
    """``tree`` (as ``load_tree(..., parse=False)`` surveyed it) with every module file parsed once."""
    parsed = parse_cached([m.path for m in tree.modules], cache, jobs=jobs, progress=progress)
    return replace(tree, modules=tuple(TreeModule(m.name, m.path, m.relpath, as_opened(tree.kmod, p))
                                       for m, p in zip(tree.modules, parsed)))
