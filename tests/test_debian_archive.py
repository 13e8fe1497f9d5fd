"""tools/debian_archive.py: the set-up tool that fetches trees and kmod releases from the Debian archive.

Against a small archive served from a local HTTP server (its Release signed with a key made here when
gpg is there): hashes and signatures are checked, a version the mirror lists but does not serve (404)
falls back to the older one, and a hostile .deb cannot write or link outside the target. Version order is
compared with dpkg's own.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import http.server
import io
import lzma
import os
import shutil
import subprocess
import tarfile
import threading
from pathlib import Path

import pytest

from . import oracle

da = oracle.archive()


# -- versions and dependencies ------------------------------------------------------------

VERSIONS = ["1.0", "1.0-1", "1.0-1+deb13u1", "1.0~rc1", "1.0+b1", "1:0.9", "0:1.0", "1.0a", "1.0.1", "1.00",
            "2.41-12+deb13u5", "2.41-12", "6.12.117-1", "6.12.38-1", "34.2-2", "30+20221128-1", "1.0-1~bpo12+1",
            "10", "9"]


@pytest.mark.skipif(shutil.which("dpkg") is None, reason="dpkg not installed")
def test_version_order_is_dpkgs():
    for i, a in enumerate(VERSIONS):
        for b in VERSIONS[i + 1:]:
            ours = da.version_cmp(a, b)
            lt = subprocess.run(["dpkg", "--compare-versions", a, "lt", b]).returncode == 0
            gt = subprocess.run(["dpkg", "--compare-versions", a, "gt", b]).returncode == 0
            assert (ours < 0, ours > 0) == (lt, gt), (a, b, ours)
            assert da.version_cmp(b, a) == -ours


def test_depends_keep_alternatives_and_exact_versions():
    assert da.parse_depends("libc6 (>= 2.38), libssl3t64 (>= 3.0.0) | libssl3, libkmod2 (= 34.2-2), x:any") == [
        [("libc6", None)], [("libssl3t64", None), ("libssl3", None)], [("libkmod2", "34.2-2")], [("x", None)]]


# -- hostile packages ---------------------------------------------------------------------


def _deb(path: Path, members: list[tarfile.TarInfo | tuple[tarfile.TarInfo, bytes]], comp: str = "xz") -> Path:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for m in members:
            info, data = m if isinstance(m, tuple) else (m, None)
            if data is not None:
                info.size = len(data)
            tf.addfile(info, io.BytesIO(data) if data is not None else None)
    raw = buf.getvalue()
    data = {"xz": lzma.compress, "gz": gzip.compress, "": lambda b: b}[comp](raw)

    def member(name: str, body: bytes) -> bytes:
        head = f"{name:<16}{0:<12}{0:<6}{0:<6}{100644:<8}{len(body):<10}`\n".encode()
        return head + body + (b"\n" if len(body) & 1 else b"")
    path.write_bytes(b"!<arch>\n" + member("debian-binary", b"2.0\n") + member("control.tar.xz", lzma.compress(b""))
                     + member("data.tar" + (f".{comp}" if comp else ""), data))
    return path


def _ti(name: str, kind: bytes = tarfile.REGTYPE, link: str = "", mode: int = 0o644) -> tarfile.TarInfo:
    t = tarfile.TarInfo(name)
    t.type, t.linkname, t.mode = kind, link, mode
    return t


@pytest.mark.parametrize("comp", ["xz", "gz", ""])
def test_hostile_deb_stays_inside(tmp_path, comp):
    outside = tmp_path / "outside"
    outside.mkdir()
    root = tmp_path / "root"
    root.mkdir()
    da.merged_usr_root(str(root))
    deb = _deb(tmp_path / "h.deb", [
        _ti("./lib/", tarfile.DIRTYPE, mode=0o755),                       # kept as the merged-/usr link
        (_ti("./lib/modules/1.0/a.ko"), b"module"),
        (_ti("/etc/abs"), b"x"),                                          # absolute name
        (_ti("./../escape"), b"x"),                                       # ..
        _ti("./up", tarfile.SYMTYPE, f"../../{outside.name}"),            # relative link out: dropped
        _ti("./abs", tarfile.SYMTYPE, str(outside)),                      # absolute link: made relative, inside
        (_ti("./abs/through"), b"x"),                                     # a dangling directory: skipped
        _ti("./dot", tarfile.SYMTYPE, "/"),                               # the target's root
        _ti("./d/", tarfile.DIRTYPE, mode=0o755),
        _ti("./d/s", tarfile.SYMTYPE, "../dot/.."),                       # inside by its text, outside once resolved
        (_ti("./d/s/x"), b"x"),                                           # written through it: skipped
        _ti("./hard", tarfile.LNKTYPE, "../escape"),                      # hard link out
        _ti("./dev", tarfile.CHRTYPE),                                     # device
        (_ti("./suid", mode=0o4755), b"#!/bin/sh\n"),                     # set-id bit
        (_ti("./lib/modules/1.0/b.ko"), b"other"),
        _ti("./lib/modules/1.0/link.ko", tarfile.SYMTYPE, "a.ko"),        # an ordinary link inside
    ], comp)
    da.extract_deb(str(deb), str(root))
    da.drop_escaping_links(str(root))
    assert list(outside.iterdir()) == []
    assert not (tmp_path / "escape").exists() and not Path("/etc/abs").exists()
    assert (root / "lib").is_symlink() and (root / "usr/lib/modules/1.0/a.ko").read_bytes() == b"module"
    assert (root / "usr/lib/modules/1.0/link.ko").read_bytes() == b"module"
    assert not (root / "up").exists() and not (root / "hard").exists() and not (root / "dev").exists()
    assert (root / "abs").is_symlink() and not os.readlink(root / "abs").startswith("/")
    assert not os.path.lexists(root / "d" / "s") and not (tmp_path / "x").exists()
    assert os.readlink(root / "dot") == "."
    assert (root / "suid").stat().st_mode & 0o7777 == 0o755
    for p in root.rglob("*"):
        assert os.path.realpath(p).startswith(str(root.resolve()) + os.sep) or os.path.realpath(p) == str(root)


def test_not_a_deb(tmp_path):
    (tmp_path / "x.deb").write_bytes(b"MZ" * 100)
    with pytest.raises(da.ArchiveError, match="no ar magic"):
        da.extract_deb(str(tmp_path / "x.deb"), str(tmp_path))


# -- a local archive ----------------------------------------------------------------------


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def mirror(tmp_path, monkeypatch):
    top = tmp_path / "mirror"
    top.mkdir()
    handler = functools.partial(_Quiet, directory=str(top))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/debian"
    monkeypatch.setattr(da, "MIRROR", url)
    monkeypatch.setattr(da, "SECURITY", url + "-security")  # absent: no -security suite, no error
    yield top / "debian"
    server.shutdown()


def _stanza(top: Path, name: str, version: str, deb: Path | None, depends: str = "", serve: bool = True) -> str:
    filename = f"pool/main/l/{name}_{version}_amd64.deb"
    data = deb.read_bytes() if deb else b"never served"
    if serve:
        (top / filename).parent.mkdir(parents=True, exist_ok=True)
        (top / filename).write_bytes(data)
    return (f"Package: {name}\nVersion: {version}\nArchitecture: amd64\n"
            + (f"Depends: {depends}\n" if depends else "")
            + f"Filename: {filename}\nSize: {len(data)}\nSHA256: {hashlib.sha256(data).hexdigest()}\n\n")


def _publish(top: Path, suite: str, packages: str, sign=None, corrupt: bool = False) -> None:
    d = top / "dists" / suite
    (d / "main/binary-amd64").mkdir(parents=True, exist_ok=True)
    xz = lzma.compress(packages.encode())
    (d / "main/binary-amd64/Packages.xz").write_bytes(xz + (b"!" if corrupt else b""))
    release = (f"Suite: {suite}\nArchitectures: amd64\nComponents: main\nSHA256:\n"
               f" {hashlib.sha256(xz).hexdigest()} {len(xz)} main/binary-amd64/Packages.xz\n")
    (d / "InRelease").write_text(sign(release) if sign else
                                 "-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA256\n\n" + release
                                 + "-----BEGIN PGP SIGNATURE-----\n\nnone\n-----END PGP SIGNATURE-----\n")


def _tree_archive(tmp_path: Path, top: Path) -> str:
    img1 = _deb(tmp_path / "img1.deb", [(_ti("./lib/modules/1.0-test/kernel/a.ko"), b"a1"),
                                        (_ti("./lib/modules/1.0-test/modules.order"), b"kernel/a.ko\n")])
    mods = _deb(tmp_path / "mods.deb", [(_ti("./usr/lib/modules/1.0-test/kernel/b.ko"), b"b1")])
    hdr = _deb(tmp_path / "hdr.deb", [(_ti("./usr/src/linux-headers-1.0-test/Module.symvers"),
                                       b"0x1\tx\tvmlinux\tEXPORT_SYMBOL\t\n"),
                                      (_ti("./usr/src/linux-headers-1.0-test/Makefile"), b"not kept")])
    return (_stanza(top, "linux-image-test", "2.0", None, "linux-image-2.0-test (= 2.0-1)")
            + _stanza(top, "linux-image-2.0-test", "2.0-1", img1, serve=False)   # listed, not on the mirror yet
            + _stanza(top, "linux-image-test", "1.0", None, "linux-image-1.0-test (= 1.0-1)")
            + _stanza(top, "linux-image-1.0-test", "1.0-1", img1, "linux-modules-1.0-test (= 1.0-1), kmod")
            + _stanza(top, "linux-modules-1.0-test", "1.0-1", mods)
            + _stanza(top, "linux-headers-1.0-test", "1.0-1", hdr))


def test_tree_falls_back_when_the_newest_is_404(tmp_path, mirror, monkeypatch, capsys):
    monkeypatch.setattr(da, "KEYRING", str(tmp_path / "no-keyring"))
    _publish(mirror, "sid", _tree_archive(tmp_path, mirror))
    root = Path(da.fetch_tree("sid", "test/amd64", str(tmp_path / "out"), headers=True))
    assert "404" in capsys.readouterr().err
    info = (root / "TREE-INFO").read_text()
    assert "krel=1.0-test\n" in info and "linux-modules-1.0-test_1.0-1_amd64.deb" in info
    assert (root / "lib/modules/1.0-test/kernel/a.ko").read_bytes() == b"a1"
    assert (root / "lib/modules/1.0-test/kernel/b.ko").read_bytes() == b"b1"
    assert (root / "usr/src/linux-headers-1.0-test/Module.symvers").exists()
    assert not (root / "usr/src/linux-headers-1.0-test/Makefile").exists()
    # a cached .deb is reused only while its hash matches
    deb = tmp_path / "out/debs/linux-modules-1.0-test_1.0-1_amd64.deb"
    deb.write_bytes(b"tampered")
    da.fetch_tree("sid", "test/amd64", str(tmp_path / "out"), headers=False)
    assert deb.read_bytes() != b"tampered"


def test_index_hash_mismatch_is_refused(tmp_path, mirror, monkeypatch):
    monkeypatch.setattr(da, "KEYRING", str(tmp_path / "no-keyring"))
    _publish(mirror, "sid", _tree_archive(tmp_path, mirror), corrupt=True)
    with pytest.raises(da.ArchiveError, match="bytes the index gives|does not match"):
        da.fetch_tree("sid", "test/amd64", str(tmp_path / "out"), headers=False)


def test_deb_hash_mismatch_is_refused(tmp_path, mirror, monkeypatch):
    monkeypatch.setattr(da, "KEYRING", str(tmp_path / "no-keyring"))
    _publish(mirror, "sid", _tree_archive(tmp_path, mirror))
    pool = mirror / "pool/main/l/linux-image-1.0-test_1.0-1_amd64.deb"
    pool.write_bytes(pool.read_bytes()[:-1] + b"?")
    with pytest.raises(da.ArchiveError, match="does not match"):
        da.fetch_tree("sid", "test/amd64", str(tmp_path / "out"), headers=False)


def _gpg_signer(home: Path, uid: str):
    env = {**os.environ, "GNUPGHOME": str(home)}
    home.mkdir(mode=0o700)
    subprocess.run(["gpg", "--batch", "--passphrase", "", "--quick-gen-key", uid, "ed25519", "sign", "never"],
                   env=env, check=True, capture_output=True)

    def sign(text: str) -> str:
        return subprocess.run(["gpg", "--batch", "--clearsign"], input=text, env=env, check=True,
                              capture_output=True, text=True).stdout

    def keyring(path: Path) -> Path:
        path.write_bytes(subprocess.run(["gpg", "--batch", "--export"], env=env, check=True,
                                        capture_output=True).stdout)
        return path
    return sign, keyring


@pytest.mark.skipif(shutil.which("gpg") is None or shutil.which("gpgv") is None, reason="needs gpg and gpgv")
def test_inrelease_signature(tmp_path, mirror, monkeypatch):
    sign, keyring = _gpg_signer(tmp_path / "g1", "archive <a@example.org>")
    other, _ = _gpg_signer(tmp_path / "g2", "mallory <m@example.org>")
    monkeypatch.setattr(da, "KEYRING", str(keyring(tmp_path / "keyring.gpg")))
    packages = _tree_archive(tmp_path, mirror)
    _publish(mirror, "sid", packages, sign=sign)
    assert (Path(da.fetch_tree("sid", "test/amd64", str(tmp_path / "ok"), headers=False)) / "TREE-INFO").exists()
    _publish(mirror, "sid", packages, sign=other)                              # a key not in the keyring
    with pytest.raises(da.ArchiveError, match="signature not accepted"):
        da.fetch_tree("sid", "test/amd64", str(tmp_path / "bad1"), headers=False)
    _publish(mirror, "sid", packages, sign=lambda t: sign(t).replace("Suite: sid", "Suite: sidx"))  # altered
    with pytest.raises(da.ArchiveError, match="signature not accepted"):
        da.fetch_tree("sid", "test/amd64", str(tmp_path / "bad2"), headers=False)
