#!/usr/bin/env python3
"""Packages from the public Debian archive, without apt and without installing anything.

    tools/debian_archive.py tree [-o OUTDIR] [-H] SUITE FLAVOR[/ARCH]...
    tools/debian_archive.py kmod [--suite trixie] [--prefix DIR] --setup
    tools/debian_archive.py kmod [--suite trixie] [--prefix DIR] --print-cmd TOOL
    tools/debian_archive.py kmod [--suite trixie] [--prefix DIR] TOOL [ARGS...]

``tree`` downloads a Debian kernel's module tree: linux-image-FLAVOR in SUITE
(with SUITE-updates and SUITE-security) for ARCH (guessed from Debian's flavour
names when not given), the linux-image-<krel> it depends on and every
linux-*-<krel> package that one pulls (sid >= 6.17 splits the modules into
linux-modules-<krel>), extracted into OUTDIR/<SUITE>-<FLAVOR>/, a merged-/usr
root (lib -> usr/lib) with ROOT/TREE-INFO saying what was fetched. -H adds the
.config and Module.symvers of linux-headers-<krel> under
ROOT/usr/src/linux-headers-<krel>/. OUTDIR defaults to $REALTREES, else
/tmp/realtrees. Prints each root on stdout.

``kmod`` sets up the kmod of SUITE (trixie: kmod 34.2; bookworm: kmod 30) for the
host's architecture: kmod, libkmod2, the libraries libkmod dlopen()s (liblzma5,
libzstd1, zlib1g: kmod 34 loads them on demand, so they are not in its
Depends) and their Depends/Pre-Depends closure, glibc included, extracted into
PREFIX/root (default $REALTREES/.kmod-SUITE). It runs as
``PREFIX/root/<ld.so> --inhibit-cache --library-path <libdir> --argv0 TOOL
PREFIX/root/usr/bin/kmod ARGS...``: kmod picks its personality from
basename(argv[0]), --argv0 needs the glibc >= 2.33 loader (the extracted one),
and --inhibit-cache keeps the host's ld.so.cache out so no host library slips in
for a missing one. Configuration (/etc/depmod.d, ...) is still the host's: pass
-C for a controlled one.

What is trusted: InRelease is checked with gpgv against
/usr/share/keyrings/debian-archive-keyring.gpg when both exist (at least one
good signature from a key of that keyring, none bad, as apt's gpgv method
does; without them a warning says the index is unauthenticated), the Packages
index against the SHA256 in (In)Release, each .deb against the SHA256 and size
in Packages. A cached file is used again only when its hash still matches.
Extraction writes only inside the target: no absolute names, no "..", no
writing through a link, absolute links rewritten relative to the target, links
that resolve outside it dropped, no devices, no set-id bits, a size cap.

When a mirror lists a version it does not serve yet (HTTP 404, seen for trixie
s390x), the next older version in the suites is used, and a tree falls back to
the previous kernel ABI. Environment: KMODCOMPAT_DEBIAN_MIRROR (default
http://deb.debian.org/debian), KMODCOMPAT_DEBIAN_SECURITY
(http://deb.debian.org/debian-security), KMODCOMPAT_DEBIAN_KEYRING.
Standard library only (it runs before the project is installed).
"""

from __future__ import annotations

import argparse
import bz2
import contextlib
import datetime as _dt
import email.utils
import fcntl
import functools
import gzip
import hashlib
import io
import json
import lzma
import os
import platform
import re
import shlex
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.error
import urllib.request

MIRROR = os.environ.get("KMODCOMPAT_DEBIAN_MIRROR", "http://deb.debian.org/debian").rstrip("/")
SECURITY = os.environ.get("KMODCOMPAT_DEBIAN_SECURITY", "http://deb.debian.org/debian-security").rstrip("/")
KEYRING = os.environ.get("KMODCOMPAT_DEBIAN_KEYRING", "/usr/share/keyrings/debian-archive-keyring.gpg")
REALTREES = os.environ.get("REALTREES", "/tmp/realtrees")
#: An index is fetched again when older than this (seconds); the kernel ABI moves with point releases.
REFRESH = 6 * 3600
#: Bounds on what one package may extract to (a kernel image is ~600 MB unpacked; sid's modules ~700 MB).
MAX_PACKAGE_BYTES = 4 << 30
MAX_MEMBERS = 200_000
#: The release each suite's kmod is (checked after set-up; tests/oracle.py names them kmod30/kmod34).
KMOD_RELEASE = {"bookworm": "30", "trixie": "34.2"}
#: libkmod dlopen()s its decompressors since kmod 34 (libkmod/libkmod-file-*.c), so they are not Depends.
KMOD_PACKAGES = ("kmod", "libkmod2", "liblzma5", "libzstd1", "zlib1g")


class ArchiveError(Exception):
    """One line: what failed and why."""


class NotFound(ArchiveError):
    """HTTP 404: the mirror does not have the file (yet)."""


def log(msg: str) -> None:
    print(f"debian_archive: {msg}", file=sys.stderr, flush=True)


# -- HTTP ---------------------------------------------------------------------------------


def _open(url: str):
    req = urllib.request.Request(url, headers={"User-Agent": "kmodcompat-debian-archive/1"})
    for attempt in range(4):
        try:
            return urllib.request.urlopen(req, timeout=60)
        except urllib.error.HTTPError as e:
            if e.code in (404, 410):
                raise NotFound(f"{url}: HTTP {e.code}") from None
            if e.code < 500 or attempt == 3:
                raise ArchiveError(f"{url}: HTTP {e.code} {e.reason}") from None
        except (urllib.error.URLError, OSError) as e:
            if attempt == 3:
                raise ArchiveError(f"{url}: {getattr(e, 'reason', e)}") from None
        time.sleep(2 ** attempt)
    raise AssertionError("unreachable")


def download(url: str, dest: str, sha256: str | None = None, size: int | None = None) -> str:
    """``url`` into ``dest`` (atomically), checked against ``sha256``/``size`` when given."""
    if sha256 and os.path.isfile(dest) and not os.path.islink(dest) and file_sha256(dest) == sha256:
        return dest
    os.makedirs(os.path.dirname(dest) or ".", exist_ok=True)
    h = hashlib.sha256()
    n = 0
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(dest) or ".", prefix=".part-")
    try:
        with os.fdopen(fd, "wb") as out, _open(url) as resp:
            while chunk := resp.read(1 << 20):
                n += len(chunk)
                if size is not None and n > size:
                    raise ArchiveError(f"{url}: larger than the {size} bytes the index gives")
                h.update(chunk)
                out.write(chunk)
        if size is not None and n != size:
            raise ArchiveError(f"{url}: {n} bytes, the index gives {size} (mirror sync in progress?)")
        if sha256 and h.hexdigest() != sha256:
            raise ArchiveError(f"{url}: SHA256 {h.hexdigest()} does not match the index's {sha256}")
        os.replace(tmp, dest)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
    return dest


def file_sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


# -- Release and Packages -----------------------------------------------------------------


def parse_stanzas(text: str) -> list[dict[str, str]]:
    """deb822 paragraphs; continuation lines are joined with newlines."""
    out = []
    for para in re.split(r"\n\s*\n", text):
        fields: dict[str, str] = {}
        key = None
        for line in para.split("\n"):
            if not line or line.startswith("#"):
                continue
            if line[0] in " \t":
                if key is not None:
                    fields[key] += "\n" + line.strip()
                continue
            key, _, value = line.partition(":")
            fields[key] = value.strip()
        if fields:
            out.append(fields)
    return out


def _clearsigned_text(data: bytes) -> str:
    """The signed text of an InRelease (RFC 4880 section 7: header lines, then dash-escaped text)."""
    text = data.decode("utf-8")
    m = re.match(r"-----BEGIN PGP SIGNED MESSAGE-----\n(?:[^\n]+\n)*\n(.*?)\n-----BEGIN PGP SIGNATURE-----",
                 text, re.S)
    if not m:
        raise ArchiveError("InRelease is not a clearsigned message")
    return "\n".join(line[2:] if line.startswith("- ") else line for line in m.group(1).split("\n")) + "\n"


def verify_inrelease(path: str, label: str) -> str:
    """The Release text of an InRelease, authenticated with gpgv when it and the keyring are there.

    Accepted as apt's gpgv method does (apt-pkg/contrib/gpgv.cc, methods/gpgv.cc): at least one
    GOODSIG from the keyring and no BADSIG; a signature by a key the keyring lacks (ERRSIG
    NO_PUBKEY) is not an error, since Debian signs with several keys at once.
    """
    gpgv = shutil.which("gpgv")
    if not gpgv or not os.path.isfile(KEYRING):
        log(f"warning: {label}: not authenticated ({'no gpgv' if not gpgv else 'no ' + KEYRING});"
            " only hashes from the index are checked")
        with open(path, "rb") as f:
            return _clearsigned_text(f.read())
    with tempfile.TemporaryDirectory() as td:
        out = os.path.join(td, "Release")
        p = subprocess.run([gpgv, "--status-fd", "1", "--keyring", KEYRING, "--output", out, path],
                           capture_output=True, text=True)
        status = [ln.split()[1] for ln in p.stdout.splitlines() if ln.startswith("[GNUPG:] ")]
        if "GOODSIG" not in status or {"BADSIG", "EXPKEYSIG", "REVKEYSIG"} & set(status):
            why = (p.stderr.strip().splitlines() or ["no good signature"])[-1]
            raise ArchiveError(f"{label}: InRelease signature not accepted: {why}")
        with open(out, encoding="utf-8") as f:
            return f.read()


class Suite:
    """One suite of one archive for one architecture: its verified Release and Packages."""

    def __init__(self, base: str, name: str, arch: str, state: str):
        self.base, self.name, self.arch = base, name, arch
        self.dir = os.path.join(state, re.sub(r"[^A-Za-z0-9.-]+", "_", base.split("://", 1)[-1]), name)
        self.label = f"{name}/{arch}"

    def _release(self) -> dict[str, str]:
        path = os.path.join(self.dir, "InRelease")
        fresh = os.path.isfile(path) and time.time() - os.path.getmtime(path) < REFRESH
        if not fresh:
            download(f"{self.base}/dists/{self.name}/InRelease", path)
        text = verify_inrelease(path, self.name)
        (rel,) = parse_stanzas(text)[:1] or [{}]
        until = rel.get("Valid-Until")
        if until and email.utils.parsedate_to_datetime(until) < _dt.datetime.now(_dt.UTC):
            if fresh:  # a cached one went stale: fetch once more
                os.utime(path, (0, 0))
                return self._release()
            raise ArchiveError(f"{self.name}: Release expired on {until} (replayed or stale mirror)")
        return rel

    @functools.cached_property
    def packages(self) -> list[dict[str, str]]:
        rel = self._release()
        if self.arch not in rel.get("Architectures", "").split():
            raise ArchiveError(f"{self.name}: no architecture {self.arch} (it has {rel.get('Architectures')})")
        hashes = {}
        for line in rel.get("SHA256", "").splitlines():
            parts = line.split()
            if len(parts) == 3:
                hashes[parts[2]] = (parts[0], int(parts[1]))
        for ext, opener in ((".xz", lzma.open), (".gz", gzip.open), ("", open)):
            rel_path = f"main/binary-{self.arch}/Packages{ext}"
            if rel_path not in hashes:
                continue
            sha, size = hashes[rel_path]
            cached = os.path.join(self.dir, f"Packages{ext}.{sha[:16]}")
            # by-hash (Acquire-By-Hash: yes) names the file by content: no race with a mirror sync
            urls = [f"{self.base}/dists/{self.name}/{rel_path}"]
            if rel.get("Acquire-By-Hash") == "yes":
                urls.insert(0, f"{self.base}/dists/{self.name}/main/binary-{self.arch}/by-hash/SHA256/{sha}")
            for i, url in enumerate(urls):
                try:
                    download(url, cached, sha, size)
                    break
                except ArchiveError:
                    if i == len(urls) - 1:
                        raise
            for old in os.listdir(self.dir):
                if old.startswith("Packages") and os.path.join(self.dir, old) != cached:
                    os.unlink(os.path.join(self.dir, old))
            with opener(cached, "rb") as f:
                text = f.read().decode("utf-8", "replace")
            return [dict(s, _base=self.base, _suite=self.name) for s in parse_stanzas(text)]
        raise ArchiveError(f"{self.name}: Release lists no main/binary-{self.arch}/Packages")


def suites_for(suite: str, arch: str, state: str) -> list[Suite]:
    """SUITE with its -updates and -security companions (what a Debian system's sources carry)."""
    if suite in ("sid", "unstable", "experimental"):
        return [Suite(MIRROR, suite, arch, state)]
    return [Suite(MIRROR, suite, arch, state), Suite(MIRROR, f"{suite}-updates", arch, state),
            Suite(SECURITY, f"{suite}-security", arch, state)]


# -- versions and dependencies ------------------------------------------------------------


def _order(c: str) -> int:
    # dpkg lib/dpkg/version.c order(): digits 0, letters themselves, '~' before everything, others after
    if c.isdigit():
        return 0
    if c.isalpha():
        return ord(c)
    if c == "~":
        return -1
    return ord(c) + 256


def _verrevcmp(a: str, b: str) -> int:
    # dpkg lib/dpkg/version.c verrevcmp()
    i = j = 0
    while i < len(a) or j < len(b):
        first_diff = 0
        while (i < len(a) and not a[i].isdigit()) or (j < len(b) and not b[j].isdigit()):
            ac = _order(a[i]) if i < len(a) else 0
            bc = _order(b[j]) if j < len(b) else 0
            if ac != bc:
                return ac - bc
            i += 1
            j += 1
        while i < len(a) and a[i] == "0":
            i += 1
        while j < len(b) and b[j] == "0":
            j += 1
        while i < len(a) and a[i].isdigit() and j < len(b) and b[j].isdigit():
            if not first_diff:
                first_diff = ord(a[i]) - ord(b[j])
            i += 1
            j += 1
        if i < len(a) and a[i].isdigit():
            return 1
        if j < len(b) and b[j].isdigit():
            return -1
        if first_diff:
            return first_diff
    return 0


def version_cmp(a: str, b: str) -> int:
    """dpkg's version order (epoch, upstream, revision)."""
    def split(v: str) -> tuple[int, str, str]:
        epoch, _, rest = v.rpartition(":") if ":" in v else ("0", "", v)
        up, _, rev = rest.rpartition("-") if "-" in rest else (rest, "", "")
        return int(epoch or 0), up, rev
    ea, ua, ra = split(a)
    eb, ub, rb = split(b)
    return (ea - eb) or _verrevcmp(ua, ub) or _verrevcmp(ra, rb)


def parse_depends(value: str) -> list[list[tuple[str, str | None]]]:
    """``a (= 1) | b, c:any`` → [[("a", "1"), ("b", None)], [("c", None)]]; only ``=`` is kept."""
    groups = []
    for group in value.split(","):
        alts = []
        for alt in group.split("|"):
            m = re.match(r"\s*([^\s(:\[]+)(?::\S+)?\s*(?:\(\s*([<>=]+)\s*([^)\s]+)\s*\))?", alt)
            if m and m.group(1):
                alts.append((m.group(1), m.group(3) if m.group(2) == "=" else None))
        if alts:
            groups.append(alts)
    return groups


class Index:
    """The packages of a suite family for one architecture, every version of each name."""

    def __init__(self, suite: str, arch: str, state: str):
        self.by_name: dict[str, list[dict[str, str]]] = {}
        self.provides: dict[str, list[str]] = {}
        for i, s in enumerate(suites_for(suite, arch, state)):
            try:
                stanzas = s.packages
            except NotFound:
                if i == 0:
                    raise ArchiveError(f"{s.name}: no such suite on {s.base}") from None
                continue  # no -updates / -security for this suite
            for st in stanzas:
                name = st.get("Package")
                if not name or st.get("Architecture") not in (arch, "all"):
                    continue
                self.by_name.setdefault(name, []).append(st)
                for prov, _v in (alt for group in parse_depends(st.get("Provides", "")) for alt in group):
                    self.provides.setdefault(prov, []).append(name)
        for versions in self.by_name.values():
            versions.sort(key=functools.cmp_to_key(lambda x, y: version_cmp(y["Version"], x["Version"])))

    def candidates(self, name: str, version: str | None = None) -> list[dict[str, str]]:
        """Every version of ``name``, newest first (one entry per distinct file)."""
        seen, out = set(), []
        for st in self.by_name.get(name, []):
            key = (st["Version"], st.get("SHA256"))  # the same file in SUITE and SUITE-security: once
            if (version is None or st["Version"] == version) and key not in seen:
                seen.add(key)
                out.append(st)
        return out

    def real_name(self, name: str) -> str | None:
        if name in self.by_name:
            return name
        return next((p for p in self.provides.get(name, []) if p in self.by_name), None)


def fetch_deb(index: Index, name: str, debs: str, version: str | None = None) -> tuple[dict[str, str], str]:
    """Download the newest version of ``name`` the mirror serves; an older one when the newest is 404."""
    cands = index.candidates(name, version)
    if not cands:
        raise ArchiveError(f"{name}{' ' + version if version else ''}: not in the index")
    last: ArchiveError | None = None
    for st in cands:
        dest = os.path.join(debs, os.path.basename(st["Filename"]))
        try:
            return st, download(f"{st['_base']}/{st['Filename']}", dest, st["SHA256"], int(st["Size"]))
        except NotFound as e:
            log(f"{e}; trying an older version of {name}")
            last = e
    raise NotFound(f"{name}: no version the mirror serves ({last})")


# -- .deb extraction ----------------------------------------------------------------------


class _Slice(io.RawIOBase):
    """A read-only window of a file (one ar member)."""

    def __init__(self, f, offset: int, size: int):
        self.f, self.pos, self.end = f, offset, offset + size

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        n = min(len(b), self.end - self.pos)
        if n <= 0:
            return 0
        self.f.seek(self.pos)
        data = self.f.read(n)
        b[:len(data)] = data
        self.pos += len(data)
        return len(data)


def _data_member(f) -> tuple[str, int, int]:
    """(name, offset, size) of a .deb's data.tar.* (deb(5): an ar archive)."""
    if f.read(8) != b"!<arch>\n":
        raise ArchiveError("not a .deb (no ar magic)")
    while True:
        head = f.read(60)
        if len(head) < 60:
            raise ArchiveError("no data.tar member")
        if head[58:60] != b"`\n":
            raise ArchiveError("corrupt ar header")
        name = head[:16].decode("ascii", "replace").strip().rstrip("/")
        size = int(head[48:58].decode("ascii").strip() or 0)
        if name.startswith("data.tar"):
            return name, f.tell(), size
        f.seek(size + (size & 1), os.SEEK_CUR)


@contextlib.contextmanager
def _data_tar(path: str):
    with open(path, "rb") as f:
        name, off, size = _data_member(f)
        raw = io.BufferedReader(_Slice(f, off, size), 1 << 20)
        if name.endswith(".zst"):
            try:
                import zstandard  # the project's dependency, when installed
                stream = zstandard.ZstdDecompressor().stream_reader(raw)
                with tarfile.open(fileobj=stream, mode="r|") as tf:
                    yield tf
                return
            except ImportError:
                pass
            tool = shutil.which("zstd")
            if not tool:
                raise ArchiveError(f"{path}: data.tar.zst needs zstd or the zstandard module")
            p = subprocess.Popen([tool, "-dc"], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
            import threading

            def feed() -> None:
                with contextlib.suppress(BrokenPipeError):
                    while chunk := raw.read(1 << 20):
                        p.stdin.write(chunk)
                p.stdin.close()
            t = threading.Thread(target=feed, daemon=True)
            t.start()
            try:
                with tarfile.open(fileobj=p.stdout, mode="r|") as tf:
                    yield tf
            finally:
                p.stdout.close()
                p.wait()
                t.join()
            return
        openers = {".xz": lambda r: lzma.open(r), ".gz": lambda r: gzip.open(r), ".bz2": lambda r: bz2.open(r),
                   "": lambda r: r}
        ext = name[len("data.tar"):]
        if ext not in openers:
            raise ArchiveError(f"{path}: unknown member {name}")
        with tarfile.open(fileobj=openers[ext](raw), mode="r|") as tf:
            yield tf


def _within(path: str, root: str) -> bool:
    return path == root or path.startswith(root + os.sep)


def _clean_name(name: str) -> str | None:
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if name.startswith("/") or ".." in parts:
        return None
    return "/".join(parts)


def extract_deb(path: str, root: str, only: set[str] | None = None) -> int:
    """Extract a .deb's files into ``root``; ``only``: just these names. Returns the bytes written."""
    root = os.path.realpath(root)
    written = members = 0
    with _data_tar(path) as tf:
        for m in tf:
            members += 1
            if members > MAX_MEMBERS:
                raise ArchiveError(f"{path}: more than {MAX_MEMBERS} members")
            name = _clean_name(m.name)
            if name is None:
                log(f"{path}: {m.name}: outside the target, skipped")
                continue
            if not name or (only is not None and name not in only):
                continue
            parent_rel, base = os.path.split(name)
            parent = _safe_dirs(root, parent_rel)
            if parent is None:
                log(f"{path}: {m.name}: its directory resolves outside the target, skipped")
                continue
            dest = os.path.join(parent, base)
            if m.isdir():
                if os.path.islink(dest) and os.path.isdir(dest) and _within(os.path.realpath(dest), root):
                    continue  # a directory link of the merged /usr (lib -> usr/lib): keep it
                if os.path.lexists(dest) and not os.path.isdir(dest) or os.path.islink(dest):
                    os.unlink(dest)
                os.makedirs(dest, exist_ok=True)
                os.chmod(dest, (m.mode & 0o755) | 0o700)
            elif m.isreg():
                written += m.size
                if written > MAX_PACKAGE_BYTES:
                    raise ArchiveError(f"{path}: unpacks to more than {MAX_PACKAGE_BYTES} bytes")
                _remove(dest)
                fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
                with os.fdopen(fd, "wb") as out, tf.extractfile(m) as src:
                    shutil.copyfileobj(src, out, 1 << 20)
                os.chmod(dest, m.mode & 0o755)
                os.utime(dest, (m.mtime, m.mtime))  # depmod -A and caches compare mtimes
            elif m.issym():
                target = m.linkname
                if target.startswith("/"):  # as a chroot would see it: relative to the target
                    target = os.path.relpath(os.path.join(root, target.lstrip("/")), parent)
                if not _within(os.path.normpath(os.path.join(parent, target)), root):
                    log(f"{path}: {m.name} -> {m.linkname}: link out of the target, skipped")
                    continue
                _remove(dest)
                os.symlink(target, dest)
            elif m.islnk():
                src_name = _clean_name(m.linkname)
                src = os.path.realpath(os.path.join(root, src_name)) if src_name else ""
                if not src or not _within(src, root) or not os.path.isfile(src):
                    log(f"{path}: {m.name}: hard link to {m.linkname} outside the target, skipped")
                    continue
                _remove(dest)
                os.link(src, dest)
            # devices, fifos: nothing a module tree or a kmod needs
    return written


def _remove(dest: str) -> None:
    if os.path.islink(dest) or os.path.isfile(dest):
        os.unlink(dest)
    elif os.path.isdir(dest):
        shutil.rmtree(dest)


def _safe_dirs(root: str, rel: str) -> str | None:
    """Create ``root/rel`` component by component; its real path, or None when it leaves ``root``."""
    cur = root
    for part in rel.split("/") if rel else ():
        nxt = os.path.join(cur, part)
        if not os.path.lexists(nxt):
            os.mkdir(nxt, 0o755)
        nxt = os.path.realpath(nxt)
        if not _within(nxt, root) or not os.path.isdir(nxt):
            return None
        cur = nxt
    return cur


def drop_escaping_links(root: str) -> None:
    """After extraction: remove every link that now resolves outside ``root`` (links made in any order)."""
    root = os.path.realpath(root)
    for dirpath, dirs, files in os.walk(root):
        for n in dirs + files:
            p = os.path.join(dirpath, n)
            if os.path.islink(p) and not _within(os.path.realpath(p), root):
                log(f"{p} -> {os.readlink(p)}: resolves outside {root}, removed")
                os.unlink(p)


def merged_usr_root(root: str, dirs: tuple[str, ...] = ("lib",)) -> None:
    os.makedirs(os.path.join(root, "usr"), exist_ok=True)
    for d in dirs:
        os.makedirs(os.path.join(root, "usr", d), exist_ok=True)
        os.symlink(f"usr/{d}", os.path.join(root, d))


@contextlib.contextmanager
def locked(path: str):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        yield


# -- module trees -------------------------------------------------------------------------

#: Debian kernel flavour → dpkg architecture (debian/config/*/defines.toml of the linux package).
FLAVOR_ARCH = (
    (r".*amd64", "amd64"), (r".*arm64(-16k)?", "arm64"), (r"(rt-)?686(-pae)?", "i386"),
    (r"(rt-)?armmp(-lpae)?", "armhf"), (r"rpi|marvell", "armel"), (r"powerpc64le.*", "ppc64el"),
    (r"s390x", "s390x"), (r"riscv64", "riscv64"), (r"loong64", "loong64"),
    (r".*malta|loongson-3|octeon|mips64r2el", "mips64el"),
)


def flavor_arch(flavor: str) -> str:
    for pattern, arch in FLAVOR_ARCH:
        if re.fullmatch(pattern, flavor):
            return arch
    raise ArchiveError(f"give the architecture: {flavor}/ARCH")


def fetch_tree(suite: str, spec: str, out: str, headers: bool) -> str:
    flavor, _, arch = spec.partition("/")
    arch = arch or flavor_arch(flavor)
    out = os.path.abspath(out)
    debs = os.path.join(out, "debs")
    index = Index(suite, arch, os.path.join(out, ".archive"))
    meta = f"linux-image-{flavor}"
    metas = index.candidates(meta)
    if not metas:
        raise ArchiveError(f"{meta}: not in {suite}/{arch}")
    for mst in metas:
        img = next((alt for group in parse_depends(mst.get("Depends", "")) for alt in group
                    if re.match(r"linux-image-[0-9]", alt[0])), None)
        if img is None:
            raise ArchiveError(f"{meta} {mst['Version']}: no linux-image-<krel> dependency")
        krel = img[0][len("linux-image-"):]
        try:
            fetched = _fetch_krel(index, img, krel, debs)
        except NotFound as e:
            log(f"{e}; falling back to the previous {meta}")
            continue
        break
    else:
        raise ArchiveError(f"{meta}: no version whose packages {suite}/{arch} serves")
    log(f"{suite} {arch} {flavor} -> krel {krel}: {' '.join(st['Package'] for st, _ in fetched)}")
    root = os.path.join(out, f"{suite}-{flavor}")
    tmp = root + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    merged_usr_root(tmp)
    info = [f"suite={suite}", f"arch={arch}", f"flavor={flavor}", f"krel={krel}"]
    for _stanza, path in fetched:
        extract_deb(path, tmp)
        info.append(f"deb={os.path.basename(path)} size={os.path.getsize(path)}")
    info.append(f"fetched={time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}")
    if headers:
        hp = f"linux-headers-{krel}"
        try:
            _st, hpath = fetch_deb(index, hp, debs)
        except ArchiveError as e:
            log(f"{e}: no {hp}, tree without Module.symvers")
        else:
            keep = {f"usr/src/{hp}/.config", f"usr/src/{hp}/Module.symvers"}
            extract_deb(hpath, tmp, only=keep)
            info.append(f"deb={os.path.basename(hpath)} size={os.path.getsize(hpath)}"
                        " (only .config and Module.symvers kept)")
    drop_escaping_links(tmp)
    with open(os.path.join(tmp, "TREE-INFO"), "w") as f:
        f.write("\n".join(info) + "\n")
    shutil.rmtree(root, ignore_errors=True)
    os.replace(tmp, root)
    return root


def _fetch_krel(index: Index, img: tuple[str, str | None], krel: str, debs: str) -> list[tuple[dict, str]]:
    """linux-image-<krel> and the closure of linux-*-<krel> packages it depends on, downloaded."""
    def pick(group: list[tuple[str, str | None]]) -> list[tuple[str, str | None]]:
        return [(dep, v) for dep, v in group if dep.startswith("linux-") and dep.endswith(f"-{krel}")]
    return _fetch_closure(index, [img], debs, pick)


def _fetch_closure(index: Index, roots: list[tuple[str, str | None]], debs: str, pick) -> list[tuple[dict, str]]:
    """``roots`` and, breadth first, what ``pick`` keeps of each Depends/Pre-Depends group, downloaded once each
    (``pick(group)`` -> the (package, version) pairs of the group to fetch)."""
    want, seen, fetched = list(roots), {name for name, _v in roots}, []
    while want:
        name, version = want.pop(0)
        st, path = fetch_deb(index, name, debs, version)
        fetched.append((st, path))
        for group in parse_depends(st.get("Depends", "") + "," + st.get("Pre-Depends", "")):
            for dep, v in pick(group):
                if dep not in seen:
                    seen.add(dep)
                    want.append((dep, v))
    return fetched


# -- kmod from a suite --------------------------------------------------------------------


def host_arch() -> str:
    with contextlib.suppress(OSError, subprocess.CalledProcessError):
        return subprocess.run(["dpkg", "--print-architecture"], capture_output=True, text=True,
                              check=True).stdout.strip()
    machine = platform.machine()
    return {"x86_64": "amd64", "aarch64": "arm64", "i686": "i386", "i386": "i386", "ppc64le": "ppc64el",
            "armv7l": "armhf", "s390x": "s390x", "riscv64": "riscv64"}.get(machine, machine)


def kmod_prefix(suite: str, prefix: str | None = None) -> str:
    return os.path.abspath(prefix or os.environ.get("KMODCOMPAT_KMOD_PREFIX_" + suite.upper())
                           or os.path.join(REALTREES, f".kmod-{suite}"))


def setup_kmod(suite: str, prefix: str) -> None:
    arch = host_arch()
    index = Index(suite, arch, os.path.join(prefix, "archive"))
    def pick(group: list[tuple[str, str | None]]) -> list[tuple[str, str | None]]:
        # the first alternative the archive has (a virtual name: its first provider)
        for dep, v in group:
            real = index.real_name(dep)
            if real:
                return [(real, v if real == dep else None)]
        return []
    fetched = _fetch_closure(index, [(n, None) for n in KMOD_PACKAGES], os.path.join(prefix, "debs"), pick)
    log(f"kmod from {suite}/{arch}: {' '.join(st['Package'] + '=' + st['Version'] for st, _ in fetched)}")
    root = os.path.join(prefix, "root.tmp")
    shutil.rmtree(root, ignore_errors=True)
    os.makedirs(root)
    merged_usr_root(root, ("lib", "lib64", "bin", "sbin"))
    for _st, path in fetched:
        extract_deb(path, root)
    drop_escaping_links(root)
    shutil.rmtree(os.path.join(prefix, "root"), ignore_errors=True)
    os.replace(root, os.path.join(prefix, "root"))
    argv = _kmod_argv(prefix, "kmod") + ["--version"]
    version = subprocess.run(argv, capture_output=True, text=True).stdout.split("\n")[0]
    expect = KMOD_RELEASE.get(suite)
    if expect and version != f"kmod version {expect}":
        raise ArchiveError(f"{suite}'s kmod says {version!r}, not kmod version {expect}")
    with open(os.path.join(prefix, "COMPLETE"), "w") as f:
        json.dump({"suite": suite, "arch": arch, "version": version,
                   "packages": [os.path.basename(p) for _st, p in fetched]}, f, indent=1)


def _kmod_argv(prefix: str, tool: str) -> list[str]:
    root = os.path.join(prefix, "root")
    libdir = next((d for d, _s, fs in sorted(os.walk(os.path.join(root, "usr", "lib"))) if "libc.so.6" in fs), None)
    loaders = sorted(f for f in os.listdir(libdir) if re.fullmatch(r"ld-linux.*\.so\.\d+|ld64\.so\.\d+|ld\.so\.1", f)) \
        if libdir else []
    if not loaders:
        raise ArchiveError(f"no loader and libc under {root}")
    return [os.path.join(libdir, loaders[0]), "--inhibit-cache", "--library-path", libdir, "--argv0", tool,
            os.path.join(root, "usr", "bin", "kmod")]


def kmod_argv(suite: str, tool: str, prefix: str | None = None) -> list[str]:
    """argv prefix that runs ``tool`` of ``suite``'s kmod, set up on first use."""
    prefix = kmod_prefix(suite, prefix)
    if not os.path.exists(os.path.join(prefix, "COMPLETE")):
        with locked(prefix + ".lock"):
            if not os.path.exists(os.path.join(prefix, "COMPLETE")):
                setup_kmod(suite, prefix)
    return _kmod_argv(prefix, tool)


def tree_root(name: str, suite: str, flavor: str, out: str = REALTREES, headers: bool = True) -> str:
    """``out/name``, fetched (once, under a lock) when it has no TREE-INFO yet."""
    root = os.path.join(out, name)
    if not os.path.exists(os.path.join(root, "TREE-INFO")):
        with locked(os.path.join(out, f".lock-{name}")):
            if not os.path.exists(os.path.join(root, "TREE-INFO")):
                fetch_tree(suite, flavor, out, headers)
    return root


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="debian_archive.py", description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("tree", help="download a kernel's module tree")
    t.add_argument("-o", dest="out", default=REALTREES)
    t.add_argument("-H", dest="headers", action="store_true", help="also .config and Module.symvers")
    t.add_argument("suite")
    t.add_argument("flavors", nargs="+", metavar="FLAVOR[/ARCH]")
    k = sub.add_parser("kmod", help="run a suite's kmod unpacked")
    k.add_argument("--suite", default="trixie")
    k.add_argument("--prefix")
    k.add_argument("--setup", action="store_true", help="(re)build the prefix, run nothing")
    k.add_argument("--print-cmd", metavar="TOOL", help="print the command line that runs TOOL")
    k.add_argument("tool", nargs="?")
    k.add_argument("args", nargs=argparse.REMAINDER)
    a = ap.parse_args(argv)
    try:
        if a.cmd == "tree":
            for spec in a.flavors:
                print(fetch_tree(a.suite, spec, a.out, a.headers), flush=True)
            return 0
        if a.setup:
            prefix = kmod_prefix(a.suite, a.prefix)
            with locked(prefix + ".lock"):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(os.path.join(prefix, "COMPLETE"))
                setup_kmod(a.suite, prefix)
            return 0
        if a.print_cmd:
            print(shlex.join(kmod_argv(a.suite, a.print_cmd, a.prefix)))
            return 0
        if not a.tool:
            ap.error("kmod: give TOOL (depmod, modinfo, modprobe, ...), --setup or --print-cmd TOOL")
        argv2 = kmod_argv(a.suite, a.tool, a.prefix) + a.args
        os.execv(argv2[0], argv2)
    except ArchiveError as e:
        print(f"debian_archive: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
