"""Hostile module trees and a bounded way to run kmodcompat on them, shared by the tests and bench/fuzz_trees.py.

Everything around the module files that a tree can lie with: metadata files
(modules.order, modules.builtin, modules.builtin.modinfo) that are FIFOs, links
to /dev/zero or garbage; depmod.d files with odd patterns and huge lines; file
names with newlines, terminal escapes and bytes that are not UTF-8; special
files, link loops, deep directories; output directories with planted links.

:func:`run_bounded` runs the command line in a child process under an
address-space limit and a timeout, so a hang or a runaway allocation is a test
failure, never a stuck machine. :func:`random_tree` builds one tree from a
``random.Random``: a failing case is rebuilt from its seed.
"""

from __future__ import annotations

import os
import random
import resource
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from .paths import REPO, X86_64 as FIXTURES

KVER = "6.1.0-hostile"
#: The bounds every finding's test holds the command to: 10 s of CPU time (the issue's "≤ 10 s",
#: counted so that a loaded CI machine cannot fail it) and 1 GiB of address space. WALL_TIMEOUT
#: catches what burns no CPU (a blocking open, a lock wait); it is a hang guard, not a timing.
TIMEOUT = 10.0
WALL_TIMEOUT = 120.0
MEMORY = 1 << 30


@dataclass(frozen=True)
class Bounded:
    status: int  # exit status; -1 when the CPU or wall bound was reached
    stdout: bytes
    stderr: bytes
    seconds: float

    @property
    def timed_out(self) -> bool:
        return self.status == -1


def run_bounded(args: list[str], timeout: float = TIMEOUT, memory: int = MEMORY,
                cwd: str | os.PathLike[str] | None = None, env: dict[str, str] | None = None) -> Bounded:
    """``python3 -m kmodcompat ARGS`` with RLIMIT_AS = ``memory``, ``timeout`` seconds of CPU time per process
    (RLIMIT_CPU: SIGXCPU) and WALL_TIMEOUT of wall time for the whole (status -1 if either is reached)."""
    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
        cpu = max(1, int(timeout + 0.999))
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))

    full_env = {**os.environ, "PYTHONPATH": str(REPO), "LC_ALL": "C.UTF-8", "XDG_CACHE_HOME": "/dev/null",
                **(env or {})}
    start = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "kmodcompat", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, cwd=cwd, env=full_env, preexec_fn=limit,
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=max(WALL_TIMEOUT, timeout))
        status = -1 if proc.returncode in (-signal.SIGXCPU, -signal.SIGKILL) else proc.returncode
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 9)  # the command and any worker it started
        out, err = proc.communicate()
        status = -1
    return Bounded(status, out, err, time.monotonic() - start)


def clean_failure_lines(stderr: bytes) -> list[bytes]:
    """kmodcompat's own stderr lines, checked: no traceback, no raw control character."""
    assert b"Traceback" not in stderr, stderr[-2000:].decode("utf-8", "replace")
    lines = stderr.splitlines()
    for line in lines:
        assert not any(c < 0x20 and c != 0x09 or c == 0x7F for c in line), line
    return lines


def module_dir(root: Path, kver: str = KVER) -> Path:
    return root / "lib" / "modules" / kver


def small_tree(root: Path, kver: str = KVER, modules: tuple[str, ...] = ("basic.ko", "basic+ext.ko", "ext-only.ko",
                                                                        "exports-rel.ko")) -> Path:
    """A readable tree of a few fixture modules under ``root/lib/modules/kver/kernel``; returns the module dir."""
    moddir = module_dir(root, kver)
    (moddir / "kernel").mkdir(parents=True, exist_ok=True)
    for m in modules:
        shutil.copy(FIXTURES / m, moddir / "kernel" / m)
    return moddir


def deep_dirs(top: Path, depth: int, name: str = "d") -> Path:
    """``top/d/d/.../d`` ``depth`` levels down, made with descriptors (os.makedirs recurses; paths pass PATH_MAX)."""
    top.mkdir(parents=True, exist_ok=True)
    fd = os.open(top, os.O_RDONLY | os.O_DIRECTORY)
    for _ in range(depth):
        try:
            os.mkdir(name, dir_fd=fd)
        except FileExistsError:
            pass
        nxt = os.open(name, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
        os.close(fd)
        fd = nxt
    os.close(fd)
    return top


def remove_tree(path: Path) -> None:
    """rm -rf, deep trees included (shutil.rmtree recurses: pytest's clean-up of a 1,100-deep tmp_path fails)."""
    if os.path.lexists(path):
        subprocess.run(["rm", "-rf", "--", os.fspath(path)], check=True)


def put_at_depth(top: Path, depth: int, filename: str, data: bytes, name: str = "d") -> None:
    """Write ``data`` as ``filename`` ``depth`` levels below ``top`` (through descriptors)."""
    fd = os.open(top, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for _ in range(depth):
            nxt = os.open(name, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = nxt
        out = os.open(filename, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644, dir_fd=fd)
        os.write(out, data)
        os.close(out)
    finally:
        os.close(fd)


def special(path: Path, kind: str) -> None:
    """Make ``path`` a special file: "fifo", "socket", "zero" (link to /dev/zero), "null", "dangling", "loop"
    (a link to its own directory)."""
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "socket":
        s = socket.socket(socket.AF_UNIX)
        try:
            s.bind(os.fspath(path))
        except OSError:  # socket paths are limited to 107 bytes
            os.mkfifo(path)
        finally:
            s.close()
    elif kind == "zero":
        os.symlink("/dev/zero", path)
    elif kind == "null":
        os.symlink("/dev/null", path)
    elif kind == "dangling":
        os.symlink(path.name + ".nowhere", path)
    elif kind == "loop":
        os.symlink(".", path)
    else:
        raise ValueError(kind)


# -- random hostile trees (bench/fuzz_trees.py and tests/test_tree_fuzz.py) -------------------------

#: Byte strings file names are made of: plain, with control characters, not UTF-8, long.
_NAME_PARTS = [b"m", b"snd-hda", b"x_y", b"a.b", b"\n", b"\x1b[2J", b"\x1b]0;t\x07", b"\xff\xfe", b"\xe9",
               b"\xc2\x85", b"|", b"<img src=x>", b"`", b"&amp;", b"#", b" ", b"\t", b"\\", b"\xe2\x80\xae", b"-",
               b"..", b"%s", b"\x7f"]
_SUFFIXES = [b".ko", b".ko.xz", b".ko.zst", b".ko.gz", b"", b".ko.bak", b".o"]
#: ERE pieces for depmod.d kernel patterns: ordinary, backtracking-prone, malformed.
_PATTERN_PARTS = ["6", "\\.", ".", "*", "+", "?", "(", ")", "(a*)*", "(.*)*", "|", "[0-9]", "[[:digit:]]", "[^a]", "{2}",
                  "{1,3}", "{", "}", "^", "$", "\\1", "\\b", "\\<", "[", "]", "amd64", "-", "x{0,50}", "(()){9}"]
_KINDS = ("fifo", "socket", "zero", "null", "dangling", "loop")
_METADATA = ("modules.order", "modules.builtin", "modules.builtin.modinfo")


def random_name(rng: random.Random) -> bytes:
    name = b"".join(rng.choice(_NAME_PARTS) for _ in range(rng.randint(1, 4))).replace(b"/", b"_")
    name = name.replace(b"\0", b"_") or b"m"
    if name in (b".", b".."):
        name = b"m"
    return name[:200] + rng.choice(_SUFFIXES)


def random_pattern(rng: random.Random) -> str:
    return "".join(rng.choice(_PATTERN_PARTS) for _ in range(rng.randint(1, 8))) or "*"


def random_config(rng: random.Random, names: list[str], external: str = "/nonexistent") -> bytes:
    """A depmod.d file: search/override/external/exclude lines, odd patterns, wrapped lines, junk."""
    lines = []
    for _ in range(rng.randint(1, 8)):
        kind = rng.randrange(8)
        if kind == 0:
            lines.append("search " + " ".join(rng.choice(["updates", "extra", "built-in", "external", "kernel",
                                                          "kernel/sub", "nowhere"]) for _ in range(rng.randint(1, 5))))
        elif kind == 1 and names:
            lines.append(f"override {rng.choice(names)} {random_pattern(rng)} {rng.choice(['extra', 'kernel', 'updates'])}")
        elif kind == 2:
            lines.append(f"external {random_pattern(rng)} {rng.choice(['/nonexistent', 'extra', external])}")
        elif kind == 3:
            lines.append("exclude " + rng.choice(["extra", "kernel", "sub", "build"]))
        elif kind == 4:
            lines.append(rng.choice(["bogus line", "# comment", "", "  search x", "include foo", "search a \\"]))
        elif kind == 5:
            lines.append("search " + " ".join(f"w{i}" for i in range(rng.choice((10, 1000, 20000)))))
        elif kind == 6:
            lines.append(f"override m {random_pattern(rng) * rng.choice((1, 20))} extra")
        else:
            lines.append("search a\0b updates")
    return "\n".join(lines).encode("utf-8", "surrogateescape") + rng.choice([b"\n", b"", b"\\"])


def random_metadata(rng: random.Random, relpaths: list[bytes]) -> bytes:
    """Content for modules.order / modules.builtin(.modinfo): real-looking lines, garbage, long lines."""
    kind = rng.randrange(5)
    if kind == 0:
        return b"".join(p + b"\n" for p in rng.sample(relpaths, min(len(relpaths), rng.randint(0, 5))))
    if kind == 1:
        return rng.randbytes(rng.randint(0, 4096))
    if kind == 2:
        return b"kernel/" + b"x" * rng.choice((100, 5000, 70000)) + rng.choice((b"\n", b""))
    if kind == 3:
        return b"\0".join(b"m%d.alias=pci:v%d" % (i, i) for i in range(rng.randint(0, 500))) + b"\0"
    return b"\n" * rng.randint(0, 10000)


@dataclass
class RandomTree:
    root: Path  # BASEDIR
    moddir: Path
    config: Path  # the depmod.d directory (-C)
    has_blocking: bool  # a metadata or config file real depmod would block on (FIFO) or read forever (/dev/zero)
    has_loop: bool  # a directory link loop (real depmod's output then depends on its rlimits)


def random_tree(rng: random.Random, root: Path) -> RandomTree:
    """A small tree of fixture modules with hostile names, special files, metadata and configuration."""
    moddir = module_dir(root)
    kernel = moddir / "kernel"
    kernel.mkdir(parents=True)
    fixtures = sorted(p for p in FIXTURES.glob("*.ko*") if not p.name.startswith(("kcheck-", "bad-")))
    dirs = [kernel]
    for _ in range(rng.randint(0, 3)):
        d = rng.choice(dirs) / os.fsdecode(random_name(rng).replace(b".", b"_") or b"d")
        if not os.path.lexists(d):
            d.mkdir()
            dirs.append(d)
    relpaths = []
    for _ in range(rng.randint(1, 8)):
        d = rng.choice(dirs)
        name = os.fsdecode(random_name(rng))
        p = d / name
        if os.path.lexists(p):
            continue
        src = rng.choice(fixtures)
        if rng.random() < 0.8:
            shutil.copy(src, p)
        else:
            p.write_bytes(rng.randbytes(rng.randint(0, 200)))
        relpaths.append(os.fsencode(os.path.relpath(p, moddir)))
    has_blocking = has_loop = False
    for _ in range(rng.randint(0, 3)):
        kind = rng.choice(_KINDS)
        p = rng.choice(dirs) / os.fsdecode(random_name(rng))
        if not os.path.lexists(p):
            special(p, kind)
            has_loop |= kind == "loop"
    if rng.random() < 0.2:
        deep = rng.choice(dirs) / "deep"
        if not os.path.lexists(deep):
            depth = rng.choice((50, 300, 1100))
            deep_dirs(deep, depth)
            put_at_depth(deep, depth, "deepmod.ko", (FIXTURES / "basic.ko").read_bytes())
    for meta in _METADATA:
        r = rng.random()
        if r < 0.5:
            (moddir / meta).write_bytes(random_metadata(rng, relpaths))
        elif r < 0.65:
            kind = rng.choice(("fifo", "zero", "null"))
            special(moddir / meta, kind)
            has_blocking |= kind in ("fifo", "zero")
        elif r < 0.7:
            (moddir / meta).mkdir()
    config = root / "depmod.d"
    config.mkdir()
    external = root / "external"  # an 'external' directory outside the module directory
    external.mkdir()
    shutil.copy(FIXTURES / "exports-rel.ko", external / "outside.ko")
    names = [os.fsdecode(p).rsplit("/", 1)[-1].split(".", 1)[0] for p in relpaths]
    for i in range(rng.randint(0, 3)):
        r = rng.random()
        p = config / f"{i}-{rng.choice(['a', 'b', '.hidden', 'x'])}.conf"
        if r < 0.8:
            p.write_bytes(random_config(rng, names, str(external)))
        elif r < 0.9:
            kind = rng.choice(("fifo", "zero", "dangling"))
            special(p, kind)
            has_blocking |= kind in ("fifo", "zero")
        else:
            p.mkdir()
    return RandomTree(root, moddir, config, has_blocking, has_loop)


# -- as another user (permission cases need a non-root caller) --------------------------------------

NOBODY = 65534


def as_nobody(argv: list[str], timeout: float = TIMEOUT) -> Bounded:
    """``kmodcompat ARGV`` as uid/gid 65534 in a forked child (the interpreter may live under /root,
    which nobody cannot exec: everything is imported first, then the child drops its privileges)."""
    import importlib
    import io
    import pkgutil

    import kmodcompat

    for m in pkgutil.walk_packages(kmodcompat.__path__, "kmodcompat."):
        if not m.name.endswith("__main__"):
            importlib.import_module(m.name)
    import lzma  # noqa: F401  (what parsing needs, loaded before the files become unreadable)
    import zstandard  # noqa: F401

    from kmodcompat.cli import main

    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    start = time.monotonic()
    pid = os.fork()
    if pid == 0:  # the child: never returns
        code = 70
        try:
            os.close(out_r)
            os.close(err_r)
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            signal_alarm(timeout)
            sys.stdout = io.TextIOWrapper(os.fdopen(out_w, "wb"), encoding="utf-8")
            sys.stderr = io.TextIOWrapper(os.fdopen(err_w, "wb"), encoding="utf-8")
            try:
                code = main(argv)
            except SystemExit as e:
                code = e.code if isinstance(e.code, int) else 2
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)
    os.close(out_w)
    os.close(err_w)
    import threading

    errs: list[bytes] = []
    reader = threading.Thread(target=lambda: errs.append(_read_all(err_r)))  # both pipes drained at once
    reader.start()
    out = _read_all(out_r)
    reader.join()
    err = errs[0]
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    return Bounded(-1 if code in (-signal.SIGALRM, -signal.SIGPROF) else code, out, err, time.monotonic() - start)


def signal_alarm(seconds: float) -> None:
    """The calling (child) process dies after ``seconds`` of CPU time or WALL_TIMEOUT of wall time."""
    signal.signal(signal.SIGALRM, signal.SIG_DFL)
    signal.signal(signal.SIGPROF, signal.SIG_DFL)
    signal.setitimer(signal.ITIMER_PROF, seconds)  # CPU time, user + system
    signal.setitimer(signal.ITIMER_REAL, max(WALL_TIMEOUT, seconds))


@contextmanager
def hang_guard(seconds: float) -> Iterator[None]:
    """Fail the running test, instead of hanging the suite, if the block takes ``seconds`` of wall time."""
    def expired(signum, frame):
        raise AssertionError(f"no answer within {seconds} s: a hang")

    old = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def _read_all(fd: int) -> bytes:
    parts = []
    while chunk := os.read(fd, 1 << 16):
        parts.append(chunk)
    os.close(fd)
    return b"".join(parts)


def shared_tmpdir() -> Path:
    """A directory under /tmp that uid 65534 can enter (pytest's tmp_path is 0700 root)."""
    import tempfile

    d = Path(tempfile.mkdtemp(prefix="kmodcompat-hostile-", dir="/tmp"))
    d.chmod(0o755)
    return d


def gzip_bomb(size: int = 3 << 30) -> bytes:
    """A valid gzip file of ``size`` zero bytes, about size/1000 bytes long, made in milliseconds: one
    compressed MiB (after a full flush, every MiB of zeros compresses to the same bytes) repeated."""
    import struct
    import zlib

    mib = bytes(1 << 20)
    co = zlib.compressobj(9, zlib.DEFLATED, -15)
    first = co.compress(mib) + co.flush(zlib.Z_FULL_FLUSH)
    same = co.compress(mib) + co.flush(zlib.Z_FULL_FLUSH)
    body = first + same * (size // len(mib) - 1) + co.flush()
    crc = 0
    for _ in range(size // len(mib)):
        crc = zlib.crc32(mib, crc)
    return b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff" + body + struct.pack("<II", crc, size & 0xFFFFFFFF)


# -- the fuzzing property over whole trees -----------------------------------------------------------

def run_inprocess(argv: list[str]) -> tuple[int, bytes, bytes]:
    """``kmodcompat ARGV`` in this process: (status, stdout bytes, stderr bytes)."""
    import io

    from kmodcompat.cli import main

    old = sys.stdout, sys.stderr
    out, err = io.BytesIO(), io.BytesIO()
    wrappers = (io.TextIOWrapper(out, encoding="utf-8", write_through=True),
                io.TextIOWrapper(err, encoding="utf-8", write_through=True))
    sys.stdout, sys.stderr = wrappers
    try:
        try:
            status = main(argv)
        except SystemExit as e:
            status = e.code if isinstance(e.code, int) else 2
    finally:
        sys.stdout, sys.stderr = old
        for w in wrappers:
            w.flush()
            w.detach()  # the BytesIO stays open
    return status, out.getvalue(), err.getvalue()


#: Seconds real depmod may take on one hostile tree before it counts as not terminating (it takes < 1 s).
REAL_TIMEOUT = 60


@dataclass
class Outcome:
    """What one random tree did; ``problems`` is empty when the property held."""

    seed: str
    problems: list[str]
    compared_with_real: bool = False
    #: Real depmod did not finish within REAL_TIMEOUT: no comparison (seen: glibc's regexec() backtracking on
    #: a depmod.d override pattern such as "^(()){9}(.*)*" repeated, 60 s of CPU in kmod 30 and 34.2 alike).
    real_timed_out: bool = False
    modules: int = 0
    skipped: int = 0


def _line_problems(what: str, data: bytes, own: bool) -> list[str]:
    out = []
    if b"Traceback" in data:
        out.append(f"{what}: traceback: {data[-300:]!r}")
    if own:  # kmodcompat's own text: no raw control character on any line
        for line in data.splitlines():
            if any(c < 0x20 and c != 0x09 or c == 0x7F for c in line):
                out.append(f"{what}: raw control character in {line[:200]!r}")
                break
    return out


def check_tree(seed: str, work: Path, real: dict[str, list[str] | None] | None = None, report: bool = False,
               outputs: bool = False) -> Outcome:
    """The property on random tree ``seed`` (built under ``work``, removed after).

    * the survey (load_tree) completes; every diagnostic and skipped reason is one line;
    * ``depmod -n`` exits 0 or 1 without a traceback, as each release of ``real`` (kmod id
      -> real depmod's argv, or None: not run) or kmod 30; on a tree real depmod terminates
      on, its stdout, stderr and status are the same byte for byte;
    * ``validate`` exits 0 or 1 (2: no module file, in one line); with ``report``, ``report`` exits 0, 1 or 2 and its
      Markdown and HTML hold no raw control character and no non-UTF-8 byte;
    * with ``outputs``, a report is written into an output directory with planted links
      and files: nothing outside it changes.
    """
    from kmodcompat.depmod.tree import load_tree

    rng = random.Random(seed)
    root = work / "tree"
    problems: list[str] = []
    try:
        t = random_tree(rng, root)
        tree = load_tree(str(root), KVER, config=[str(t.config)], parse=False)
        for path, why in tree.skipped:  # (depmod's own messages hold names raw, newlines included)
            if "\n" in why or not why:
                problems.append(f"skipped reason {why!r} for {path!r}")
        args = ["-b", str(root), "-C", str(t.config), "-n", KVER]
        compared = timed_out = False
        for version, argv in (real or {"kmod30": None}).items():
            status, out, err = run_inprocess(["depmod", "--as", version, *args])
            problems += _line_problems("depmod", err, own=False)
            if status not in (0, 1):
                problems.append(f"depmod exit {status}: {err[-300:]!r}")
            if argv is not None and not t.has_blocking and not t.has_loop:
                try:
                    p = subprocess.run(argv + args, capture_output=True, timeout=REAL_TIMEOUT,
                                       env={**os.environ, "LC_ALL": "C"})
                except subprocess.TimeoutExpired:  # the property holds "wherever real depmod terminates"
                    timed_out = True
                    continue
                compared = True
                if (p.returncode, p.stdout, p.stderr) != (status, out, err):
                    problems.append(f"depmod differs from real {version}: status {status} vs {p.returncode}; "
                                    f"stderr ours {err[:600]!r} real {p.stderr[:600]!r}; stdout same: "
                                    f"{out == p.stdout}")
        status, out, err = run_inprocess(["validate", str(t.moddir)])
        problems += _line_problems("validate", out + err, own=True)
        # 2 only for a tree without a module file to check (README "Exit status"), in one line saying so
        if status not in (0, 1) and not (status == 2 and err.count(b"\n") == 1
                                         and err.endswith(b": no modules found\n")):
            problems.append(f"validate exit {status}: {err[-300:]!r}")
        if report or outputs:
            dest = work / "out"
            victim = work / "victim"
            victim.write_bytes(b"precious")
            if outputs:
                _plant(rng, dest, victim)
            status, out, err = run_inprocess(["report", "-b", str(root), KVER, "--out", str(dest), "--no-cache",
                                              "-j", "1", "--fail-on", "none"])
            problems += _line_problems("report", out + err, own=True)
            last = err.splitlines()[-1] if err.strip() else b""
            if status not in (0, 2) or (status == 2 and not last.endswith(b": no modules found")
                                         and (err.count(b"\n") != 1 or not outputs)):
                problems.append(f"report exit {status}: {err[-300:]!r}")
            if victim.read_bytes() != b"precious":
                problems.append("report wrote through a planted link")
            for f in ("report.md", "report.html"):
                p = dest / f
                if status == 0 and p.is_file() and not p.is_symlink():
                    data = p.read_bytes()
                    problems += _line_problems(f, data.replace(b"\n", b""), own=True)
                    try:
                        data.decode("utf-8")
                    except UnicodeDecodeError:
                        problems.append(f"{f} is not UTF-8")
        return Outcome(seed, problems, compared, timed_out, len(tree.modules), len(tree.skipped))
    finally:
        remove_tree(work / "tree")
        remove_tree(work / "out")


def _plant(rng: random.Random, dest: Path, victim: Path) -> None:
    """An output directory someone prepared: links to the victim, a directory where a file goes, ..."""
    kind = rng.randrange(4)
    if kind == 0:
        dest.mkdir()
        (dest / rng.choice(("report.html", "report.md", "report.json"))).symlink_to(victim)
    elif kind == 1:
        dest.mkdir()
        (dest / "report.md").mkdir()  # cannot be replaced by a file: a one-line error
    elif kind == 2:
        dest.parent.joinpath("elsewhere").mkdir(exist_ok=True)
        dest.symlink_to(dest.parent / "elsewhere")  # our own link: followed
    else:
        dest.write_bytes(b"a file")  # not a directory: a one-line error
