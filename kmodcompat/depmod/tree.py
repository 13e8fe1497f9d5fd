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

import errno
import os
import resource
import stat
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

from ..files.bounded import (MODULES_BUILTIN, MODULES_BUILTIN_MODINFO, MODULES_ORDER, InputFileError, InputKind,
                             file_type, read_input)
from ..kmod.file import as_opened
from ..kmod.profile import DEFAULT_KMOD, Kmod
from .config import SEARCH_BUILTIN, SEARCH_EXTERNAL, DepmodConfig, config_paths, load_config
from .diagnostics import ERROR, FATAL, WARNING, Diagnostic, diag
from .libkmod_hash import MODULES_BY_NAME_BUCKETS, hash_order
from ..errors import ModuleReadError
from ..records import PATH_MAX, ModuleRecord, path_to_modname, raw
from ..cache import RecordCache, parse_cached
from ..parse.scan import gc_paused
from ..files.stdio import fgets_lines

__all__ = ["ModuleTree", "TreeModule", "load_tree", "make_absolute", "parse_tree", "path_to_modname"]



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
    skipped: tuple[tuple[str, str], ...] = ()  # (path, reason) the search could not follow, or could not read
    #: (file name, reason) of modules.order / modules.builtin / modules.builtin.modinfo files
    #: present but not read (refused or unreadable); a file missing is just None above.
    metadata_errors: tuple[tuple[str, str], ...] = ()
    search_failed: str | None = None  # why the module directory could not be searched (depmod stops)

    def metadata_error(self, name: str) -> str:
        """Why metadata file ``name`` is None: the recorded reason, else "No such file or directory"."""
        return dict(self.metadata_errors).get(name, os.strerror(errno.ENOENT))

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


#: The descriptor depmod's readdir() of the module directory gets: 0-2 are stdio, nothing else is
#: open during the search; each level down holds one more (its messages name them).
_FIRST_DIR_FD = 3


class _Search:
    """depmod_modules_search*() and depmod_module_is_higher_priority().

    The walk is depth first in readdir order, as the C recursion, but with a stack
    (a tree 1,000 directories deep is no recursion). Its messages are depmod's:
    ``unsupported file type``, ``fstatat(FD, NAME)``, ``openat(FD, NAME, O_RDONLY)``
    (FD the descriptor of the directory being read: 3 for the module directory, one
    more per level), ``could not create module``. A directory reached again through
    a link (a loop) is not entered: depmod would descend until it runs out of
    descriptors or path length, printing thousands of lines.
    """

    def __init__(self, dirname: str, config: DepmodConfig, suffixes: tuple[str, ...]):
        self.dirname = dirname
        self.config = config
        self.suffixes = suffixes
        self.found: dict[str, _Found] = {}
        self.shadowed: list[tuple[str, str]] = []
        self.diags: list[Diagnostic] = []
        self.excluded = {".", "..", "build", "source", *config.excludes}
        # Paths the walk could not follow, with why: the facts depmod's messages leave out,
        # for kmodcompat's own report (depmod's stderr stays byte-exact).
        self.skipped: list[tuple[str, str]] = []
        self.failed: str | None = None  # strerror of a module directory depmod cannot open
        self.prio = _Priorities(dirname, config)
        self.fd_limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]

    def run(self) -> None:
        if not self._walk_root(self.dirname, fatal=True):
            return
        for ext in self.config.externals:
            self._walk_root(ext, fatal=False)

    def _walk_root(self, path: str, fatal: bool) -> bool:
        """depmod_modules_search_path(): opendir() the root, then walk it."""
        try:
            fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError as e:
            why = os.strerror(e.errno or 0)
            # Printed for a missing 'external' directory too: depmod_modules_search() ignores
            # the -ENOENT only after depmod_modules_search_path() has said so.
            self.diags.append(diag(ERROR, "directory-unreadable", f"could not open directory {path}: {why}"))
            if fatal:
                self.failed = why
                self.diags.append(diag(FATAL, "search-failed", f"could not search modules: {why}"))
            self.skipped.append((path, f"cannot open directory: {why}"))
            return False
        self._walk(fd, path + "/")
        return True

    def _walk(self, root_fd: int, prefix: str) -> None:
        """depmod_modules_search_dir(), from the root down.

        As in depmod, directories are opened relative to their parent's descriptor
        (openat) and entries stat()ed relative to theirs (fstatat): no path grows
        past PATH_MAX on the way down.
        """
        excluded, skipped, diags = self.excluded, self.skipped, self.diags
        # One frame per directory being read: its entries, the next one's index, its path + '/',
        # its descriptor, the (device, inode) of it and of every directory above it.
        stack: list[tuple[list[os.DirEntry[str]], list[int], str, int, frozenset[tuple[int, int]]]] = []
        try:
            st = os.fstat(root_fd)
            stack.append((_entries(root_fd), [0], prefix, root_fd, frozenset(((st.st_dev, st.st_ino),))))
        except OSError:
            os.close(root_fd)
            raise
        try:
            while stack:
                entries, at, prefix, fd, ancestors = stack[-1]
                if at[0] == len(entries):
                    stack.pop()
                    os.close(fd)
                    continue
                ent = entries[at[0]]
                at[0] += 1
                name = ent.name
                if name in excluded:
                    continue
                path = prefix + name
                dfd = _FIRST_DIR_FD + len(stack) - 1
                try:
                    # d_type DT_REG or DT_DIR is taken as it is; anything else is fstatat()ed, following links.
                    if ent.is_file(follow_symlinks=False):
                        self._file(path, name)
                        continue
                    is_dir = ent.is_dir(follow_symlinks=False)
                except OSError:
                    is_dir = False
                if not is_dir:
                    try:
                        st = ent.stat()
                    except OSError as e:
                        diags.append(diag(ERROR, "search-stat-failed", f"fstatat({dfd}, {name}): "
                                                                       f"{os.strerror(e.errno or 0)}"))
                        skipped.append((path, _unfollowable(ent, e)))
                        continue
                    if stat.S_ISREG(st.st_mode):
                        self._file(path, name)
                        continue
                    if not stat.S_ISDIR(st.st_mode):
                        diags.append(diag(ERROR, "unsupported-file-type",
                                          f"unsupported file type {path}: {stat.S_IFMT(st.st_mode):o}"))
                        link = "symbolic link to a " if ent.is_symlink() else ""
                        skipped.append((path, f"not a regular file ({link}{file_type(st.st_mode)})"))
                        continue
                # A directory: openat(dfd, name, O_RDONLY), fdopendir(), recurse.
                sub = -1
                try:
                    if dfd + 1 >= self.fd_limit:  # depmod holds one descriptor per level
                        raise OSError(errno.EMFILE, os.strerror(errno.EMFILE))
                    sub = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=fd)
                    st = os.fstat(sub)
                    key = (st.st_dev, st.st_ino)
                    if key in ancestors:
                        os.close(sub)
                        skipped.append((path, "directory already walked (symbolic link loop)"))
                        continue
                    listed = _entries(sub)
                except OSError as e:
                    if sub >= 0:
                        os.close(sub)
                    why = os.strerror(e.errno or 0)
                    diags.append(diag(ERROR, "search-open-failed", f"openat({dfd}, {name}, O_RDONLY): {why}"))
                    skipped.append((path, f"cannot open directory: {why}"))
                    continue
                stack.append((listed, [0], path + "/", sub, ancestors | {key}))
        finally:
            for frame in stack:
                os.close(frame[3])

    def _file(self, path: str, name: str) -> None:
        """depmod_modules_search_file()."""
        if not any(len(name) > len(s) and name.endswith(s) for s in self.suffixes):
            return
        modname = path_to_modname(path)
        old = self.found.get(modname)
        if old is not None:
            if self.prio.existing_wins(old, path, modname):
                self.shadowed.append((path, modname))
                return
            self.shadowed.append((old.path, modname))
            del self.found[modname]  # depmod_module_del(), even if the new file fails below
        # kmod_module_new_from_path() stat()s the file; only a path past PATH_MAX (a very deep
        # tree) or a directory we may read but not search fails here.
        try:
            if len(raw(path)) >= PATH_MAX:
                raise OSError(errno.ENAMETOOLONG, os.strerror(errno.ENAMETOOLONG))
            os.stat(path)
        except OSError as e:
            why = os.strerror(e.errno or 0)
            self.diags.append(diag(ERROR, "module-create-failed", f"could not create module {path}: {why}"))
            self.diags.append(diag(ERROR, "search-failed-entry", f"failed {path}: {why}"))
            self.skipped.append((path, f"cannot stat: {why}"))
            return
        dn = self.dirname
        relpath = path[len(dn) + 1:] if path.startswith(dn) and path[len(dn):len(dn) + 1] == "/" else None
        rel_for_prio = path[len(dn) + 1:] if path.startswith(dn) else None
        self.found[modname] = _Found(modname, path, relpath, rel_for_prio)


def _entries(fd: int) -> list[os.DirEntry[str]]:
    """readdir() of an open directory, in the file system's order (scandir() reads a duplicate of
    the descriptor: ours stays open for openat(), and for the entries' fstatat())."""
    with os.scandir(fd) as it:
        return list(it)


def _unfollowable(ent: os.DirEntry[str], e: OSError) -> str:
    """Why an entry cannot be stat()ed, in words: a link that points nowhere, a link loop, ..."""
    if ent.is_symlink():
        if e.errno == errno.ENOENT:
            return "broken symbolic link (its target does not exist)"
        if e.errno == errno.ELOOP:
            return "symbolic link loop"
    return f"cannot stat: {os.strerror(e.errno or 0)}"


class _Priorities:
    """depmod_module_is_higher_priority(), with the configuration's lists indexed once.

    The C function walks every override and every search entry for each pair of
    same-named modules; with a 600,000-word ``search`` line that is 600,000 steps per
    pair. The same answer comes from the directory prefixes of the two paths: a search
    entry counts when its path is one of them, and its position ``i`` as the C loop
    numbers it (each external directory takes one position within its ``external``
    entry).
    """

    def __init__(self, dirname: str, config: DepmodConfig):
        self.dirname = dirname
        self.override_rank: dict[str, int] = {}
        for rank, (mod, subdir) in enumerate(config.overrides):
            self.override_rank.setdefault(f"{subdir}/{mod}", rank)  # the first one written wins
        self.path_prio: dict[str, int] = {}  # search path -> its last position
        self.external_base = -1  # position of the first directory of the last 'external' entry
        self.builtin = -1
        i = 0
        for se in config.searches:
            if se.kind == SEARCH_BUILTIN:
                self.builtin = i
            elif se.kind == SEARCH_EXTERNAL:
                self.external_base = i
                i += len(config.externals)
            else:
                self.path_prio[se.path] = i
            i += 1
        self.external_index = {ext: j for j, ext in enumerate(config.externals)}  # the last index of each

    def existing_wins(self, old: _Found, newpath: str, modname: str) -> bool:
        """True when the module already found is kept.

        Paths are compared on their prefix up to the end of the module name in
        the basename (``baselen + modnamelen``), as the C code does.
        """
        dn = self.dirname
        cut = len(modname)
        new_key = newpath[:newpath.rfind("/") + 1 + cut]
        old_key = old.path[:old.path.rfind("/") + 1 + cut]
        new_relkey = new_key[len(dn) + 1:] if newpath.startswith(dn) else None
        old_relkey = old_key[len(dn) + 1:] if old.rel_for_prio is not None else None
        if self.override_rank:
            inew = self.override_rank.get(new_relkey) if new_relkey is not None else None
            iold = self.override_rank.get(old_relkey) if old_relkey is not None else None
            if inew is not None and (iold is None or inew <= iold):
                return False
            if iold is not None:
                return True
        new_dirs = _dir_prefixes(new_relkey) if new_relkey is not None else set()
        old_dirs = _dir_prefixes(old_relkey) if old_relkey is not None else set()
        newprio = max((self.path_prio[d] for d in new_dirs if d in self.path_prio), default=-1)
        # A search entry the new path matches is not checked against the old one ("else if").
        oldprio = max((self.path_prio[d] for d in old_dirs - new_dirs if d in self.path_prio), default=-1)
        if self.external_base >= 0:
            newprio = max(newprio, self._external_prio(new_key))
            oldprio = max(oldprio, self._external_prio(old_key))
        if newprio < 0:
            newprio = self.builtin
        if oldprio < 0:
            oldprio = self.builtin
        return newprio <= oldprio

    def _external_prio(self, key: str) -> int:
        j = max((self.external_index[d] for d in _dir_prefixes(key) if d in self.external_index), default=-1)
        return self.external_base + j if j >= 0 else -1


def _dir_prefixes(key: str) -> set[str]:
    """Every ``p`` with ``depmod_is_path_starts_with(key, p)``: ``key`` cut before each '/'."""
    out = set()
    i = key.find("/")
    while i >= 0:
        out.add(key[:i])
        i = key.find("/", i + 1)
    return out


def _uncrelpath(relpath: str, modname: str) -> str:
    """mod->uncrelpath: the relpath cut after "<dir>/" + strlen(modname) + strlen(".ko") bytes.

    That is "dir/<stem>.ko" for any suffix, which is how modules.order names it.
    """
    b = raw(relpath)
    cut = b.rfind(b"/") + 1 + len(raw(modname)) + 3
    return b[:cut].decode("utf-8", "surrogateescape")


def _sort_by_order(names: list[str], found: dict[str, _Found], order: bytes | None, dirname: str,
                   kmod: Kmod, diags: list[Diagnostic], why: str = os.strerror(errno.ENOENT)) -> list[str]:
    """depmod_modules_sort(): modules.order entries first, in its order; the rest keep hash order."""
    if order is None:
        diags.append(diag(WARNING, "modules-order-missing", f"could not open modules.order at {dirname}: {why}"))
        return names
    by_unc = {}
    for n in names:
        f = found[n]
        if f.relpath is not None:
            by_unc[_uncrelpath(f.relpath, n)] = n
    sort_idx = dict.fromkeys(names, 1)  # depmod_module_add(): modules.count + 1 while the array is empty
    lines = fgets_lines(order, PATH_MAX)
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


def _read(dirname: str, kind: InputKind, errors: list[tuple[str, str]], skipped: list[tuple[str, str]]) \
        -> bytes | None:
    """A metadata file of the module directory (``dfdopen()``: openat(O_RDONLY), then stdio).

    None when it is missing or cannot be read (the reason kept in ``errors``). A
    directory of that name opens and reads as nothing in depmod: empty here too.
    """
    path = os.path.join(dirname, kind.name)
    try:
        return read_input(path, kind)
    except InputFileError as e:
        if e.errno == errno.EISDIR:
            return b""
        if e.errno != errno.ENOENT:
            errors.append((kind.name, str(e.strerror)))
            skipped.append((path, str(e.strerror)))
        return None


def load_tree(basedir: str, kver: str | None = None, config: DepmodConfig | Sequence[str] | None = None,
              jobs: int | None = None, progress: Callable[[int, int], None] | None = None,
              cache: RecordCache | None = None,
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
        config = load_config(config_paths(kmod, basedir if basedir else ""), kver, kmod)
    elif not isinstance(config, DepmodConfig):
        config = load_config(list(config), kver, kmod)
    diags: list[Diagnostic] = list(config.diagnostics)
    search = _Search(dirname, config, kmod.module_suffixes)
    search.run()
    diags += search.diags
    errors: list[tuple[str, str]] = []
    if search.failed is not None:  # "could not search modules": depmod stops here
        return ModuleTree(dirname, kver, kmod, config, (), (), None, None, None, tuple(diags),
                          tuple(search.skipped), (), search.failed)
    names = [n.decode("utf-8", "surrogateescape")
             for n in hash_order((raw(n) for n in search.found), MODULES_BY_NAME_BUCKETS)]
    order = _read(dirname, MODULES_ORDER, errors, search.skipped)
    why = dict(errors).get(MODULES_ORDER.name, os.strerror(errno.ENOENT))
    names = _sort_by_order(names, search.found, order, dirname, kmod, diags, why)
    not_parsed = ModuleReadError(dirname, "not parsed", "not-parsed")  # one for all: parse_tree() replaces it
    modules = tuple(TreeModule(n, search.found[n].path, search.found[n].relpath, not_parsed) for n in names)
    builtin = _read(dirname, MODULES_BUILTIN, errors, search.skipped)
    builtin_modinfo = _read(dirname, MODULES_BUILTIN_MODINFO, errors, search.skipped)
    tree = ModuleTree(dirname, kver, kmod, config, modules, tuple(search.shadowed), order, builtin, builtin_modinfo,
                      tuple(diags), tuple(search.skipped), tuple(errors))
    return parse_tree(tree, jobs=jobs, progress=progress, cache=cache) if parse else tree


def parse_tree(tree: ModuleTree, jobs: int | None = None, progress: Callable[[int, int], None] | None = None,
               cache: RecordCache | None = None) -> ModuleTree:
    """``tree`` (as ``load_tree(..., parse=False)`` surveyed it) with every module file parsed once."""
    parsed = parse_cached([m.path for m in tree.modules], cache, jobs=jobs, progress=progress, tree=tree.dirname)
    with gc_paused():  # the records just made: no collector passes over them while they are wrapped
        return replace(tree, modules=tuple(TreeModule(m.name, m.path, m.relpath, as_opened(tree.kmod, p))
                                           for m, p in zip(tree.modules, parsed)))
