"""Real kmod as the oracle: run kmod 30 / kmod 34.2 and cache what they print.

kmod 30 is the host's /usr/sbin tools when they are kmod 30 (Debian 12), else
bookworm's kmod; kmod 34.2 is trixie's. Both come unpacked from the public
Debian archive by tools/debian_archive.py (into ``$REALTREES/.kmod-<suite>``,
on first use) and run through their own extracted ld.so; the argv is computed
once, so a call costs one exec. Real trees are fetched by the same tool.
Outputs of whole trees are cached under ``$REALTREES/.oracle/`` keyed by the
tree's TREE-INFO, so a re-run costs nothing.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import json
import os
import subprocess
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from .paths import REPO

REALTREES = Path(os.environ.get("REALTREES", "/tmp/realtrees"))
ENV = {**os.environ, "LC_ALL": "C"}
#: The Debian suite whose kmod each emulated release is.
KMOD_SUITE = {"kmod30": "bookworm", "kmod34": "trixie"}


@functools.cache
def archive():
    """tools/debian_archive.py as a module (it is a script, not part of the package)."""
    spec = importlib.util.spec_from_file_location("debian_archive", REPO / "tools" / "debian_archive.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


#: The trees the foundation issue names: (suite, flavor) → debian_archive.py tree arguments.
TREES = {
    "bookworm-amd64": ("bookworm", "amd64"),
    "trixie-amd64": ("trixie", "amd64"),
    "trixie-s390x": ("trixie", "s390x"),
    "trixie-armmp": ("trixie", "armmp"),
    "sid-amd64": ("sid", "amd64"),
}


@dataclass(frozen=True)
class Run:
    stdout: bytes
    stderr: bytes
    status: int


def kmod_argv(version: str, tool: str) -> list[str]:
    """argv prefix that runs ``tool`` (modinfo, modprobe, depmod) of kmod ``version`` ("kmod30"/"kmod34")."""
    if version == "kmod30" and _host_kmod() == "30":
        return [f"/usr/sbin/{tool}" if os.path.exists(f"/usr/sbin/{tool}") else f"/sbin/{tool}"]
    suite = KMOD_SUITE[version]
    return archive().kmod_argv(suite, tool, str(REALTREES / f".kmod-{suite}"))


@functools.cache
def _host_kmod() -> str | None:
    """The host's kmod release ("30", "34.2", ...), None without one."""
    for d in ("/usr/sbin", "/sbin", "/usr/bin", "/bin"):
        if os.path.exists(f"{d}/kmod"):
            try:
                out = subprocess.run([f"{d}/kmod", "--version"], capture_output=True, text=True, timeout=30).stdout
            except (OSError, subprocess.SubprocessError):
                return None
            first = out.split("\n", 1)[0]
            return first.removeprefix("kmod version ") if first.startswith("kmod version ") else None
    return None


_ARGV_CACHE: dict[tuple[str, str], list[str]] = {}


def run_kmod(version: str, tool: str, args: list[str], cwd: str | os.PathLike[str] | None = None) -> Run:
    key = (version, tool)
    if key not in _ARGV_CACHE:
        _ARGV_CACHE[key] = kmod_argv(version, tool)
    p = subprocess.run(_ARGV_CACHE[key] + args, capture_output=True, env=ENV, cwd=cwd)
    return Run(p.stdout, p.stderr, p.returncode)


def kmod_available(version: str) -> bool:
    try:
        return run_kmod(version, "modinfo", ["--version"]).status == 0
    except (OSError, subprocess.CalledProcessError, archive().ArchiveError):
        return False


def tree_root(name: str, fetch: bool = False) -> Path | None:
    """Root of a downloaded tree (``$REALTREES/<name>``); fetched with tools/debian_archive.py when asked."""
    root = REALTREES / name
    if (root / "TREE-INFO").exists():
        return root
    if not fetch:
        return None
    suite, flavor = TREES[name]
    try:
        archive().tree_root(name, suite, flavor, str(REALTREES), headers=True)
    except archive().ArchiveError as e:
        # The archive, not the code under test: the tree's tests skip, and the reason is in pytest's summary.
        # (Seen here: deb.debian.org answering 404 for every trixie s390x image the index lists.)
        warnings.warn(f"{name}: cannot download: {e}", stacklevel=2)
        return None
    return root if (root / "TREE-INFO").exists() else None


def tree_info(root: Path) -> dict[str, str]:
    info = {}
    for line in (root / "TREE-INFO").read_text().splitlines():
        k, eq, v = line.partition("=")
        if eq and k not in info:
            info[k] = v
    return info


def tree_modules(root: Path) -> list[str]:
    """Absolute paths of every module file of a tree, sorted."""
    krel = tree_info(root)["krel"]
    base = root / "lib" / "modules" / krel
    out = []
    for dirpath, _dirs, files in os.walk(base):
        for f in files:
            if f.endswith((".ko", ".ko.xz", ".ko.zst", ".ko.gz")):
                out.append(os.path.join(dirpath, f))
    return sorted(out)


def _cache_file(root: Path, version: str, tool: str) -> Path:
    digest = hashlib.sha256((root / "TREE-INFO").read_bytes()).hexdigest()[:16]
    return REALTREES / ".oracle" / f"{root.name}-{digest}-{tool}-{version}.json"


def _load(path: Path) -> dict[str, Run] | None:
    try:
        raw = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return {k: Run(v[0].encode("latin-1"), v[1].encode("latin-1"), v[2]) for k, v in raw.items()}


def _store(path: Path, runs: dict[str, Run]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({k: [r.stdout.decode("latin-1"), r.stderr.decode("latin-1"), r.status]
                               for k, r in runs.items()}))
    tmp.replace(path)


def tree_oracle(root: Path, version: str, tool: str) -> dict[str, Run]:
    """What the real kmod prints for every module of a tree: ``modinfo`` or ``dump-modversions``."""
    cache = _cache_file(root, version, tool)
    cached = _load(cache)
    if cached is not None:
        return cached
    mods = tree_modules(root)
    if tool == "modinfo":
        runs = _modinfo_batched(version, mods)
    else:
        with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2)) as pool:
            results = pool.map(lambda m: run_kmod(version, "modprobe", ["--dump-modversions", m]), mods)
            runs = dict(zip(mods, results))
    _store(cache, runs)
    return runs


def _modinfo_batched(version: str, mods: list[str], batch: int = 200) -> dict[str, Run]:
    """modinfo takes many files per call; split stdout at each file's ``filename:`` line.

    A batch with anything on stderr is re-run one module at a time, so every
    error is attributed to its module.
    """
    chunks = [mods[i:i + batch] for i in range(0, len(mods), batch)]

    def one(chunk: list[str]) -> dict[str, Run]:
        r = run_kmod(version, "modinfo", chunk)
        if r.stderr or r.status:
            return {m: run_kmod(version, "modinfo", [m]) for m in chunk}
        out: dict[str, Run] = {}
        data = r.stdout
        starts = []
        pos = 0
        for m in chunk:
            head = b"filename:       " + m.encode() + b"\n"
            i = data.find(head, pos)
            assert i >= 0, f"modinfo output for {m} not found"
            starts.append(i)
            pos = i + len(head)
        starts.append(len(data))
        for m, a, b in zip(chunk, starts, starts[1:]):
            out[m] = Run(data[a:b], b"", 0)
        return out

    runs: dict[str, Run] = {}
    with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2)) as pool:
        for part in pool.map(one, chunks):
            runs.update(part)
    return runs


# -- depmod on whole trees (issue 3) ----------------------------------------------------


def tree_krel(root: Path) -> str:
    return tree_info(root)["krel"]


def kernel_symbol_files(root: Path) -> tuple[Path | None, Path | None]:
    """(System.map, Module.symvers) of a tree, each None when the tree has none.

    Debian's boot/System.map is a one-line placeholder on most images; sid keeps
    a real one in the module directory. depmod takes either as given.
    """
    krel = tree_krel(root)
    smap = next((p for p in (root / "boot" / f"System.map-{krel}", root / "lib" / "modules" / krel / "System.map")
                 if p.is_file()), None)
    symvers = root / "usr" / "src" / f"linux-headers-{krel}" / "Module.symvers"
    return smap, symvers if symvers.is_file() else None


#: The warnings ``depmod -e -E`` prints about a module's CRCs, each "<module path><marker><symbol>"
#: (kmod tools/depmod.c depmod_load_module_dependencies(): "%s needs unknown symbol %s",
#: "%s disagrees about version of symbol %s"); what kmodcompat/consumers/kmod.py models.
DEPMOD_CRC_WARNINGS = (" disagrees about version of symbol ", " needs unknown symbol ")


def real_depmod_crc_warnings(version: str, base: Path, symvers: Path, kver: str, scratch: Path) -> dict[str, list[str]]:
    """``depmod -n -e -E symvers`` of kmod ``version`` on ``base``/lib/modules/``kver``, with an empty
    configuration directory made in ``scratch``: its CRC warnings (whole lines) by module path."""
    conf = scratch / "depmod.d"
    conf.mkdir()
    real = run_kmod(version, "depmod", ["-C", str(conf), "-b", str(base), "-n", "-e", "-E", str(symvers), kver])
    by_module: dict[str, list[str]] = {}
    for line in real.stderr.decode().splitlines():
        for marker in DEPMOD_CRC_WARNINGS:
            if marker in line:
                by_module.setdefault(line.split(": WARNING: ", 1)[1].split(marker)[0], []).append(line)
    return by_module


def depmod_scratch_root(root: Path, dst: Path) -> Path:
    """A root for ``depmod -b`` that never writes into the downloaded tree.

    Module subdirectories are symlinked (depmod follows them and keeps the
    relative paths), the inputs depmod reads are copied, and old outputs are
    left out. Returns the scratch module directory.
    """
    krel = tree_krel(root)
    srcdir = root / "lib" / "modules" / krel
    moddir = dst / "lib" / "modules" / krel
    moddir.mkdir(parents=True)
    for entry in srcdir.iterdir():
        if entry.name in ("build", "source"):
            continue
        if entry.is_dir():
            (moddir / entry.name).symlink_to(entry.resolve())
        elif entry.name in ("modules.order", "modules.builtin", "modules.builtin.modinfo"):
            (moddir / entry.name).write_bytes(entry.read_bytes())
    return moddir


def read_outputs(moddir: Path, inputs: tuple[str, ...] = ("modules.order", "modules.builtin",
                                                          "modules.builtin.modinfo")) -> dict[str, bytes]:
    """Every ``modules.*`` file depmod wrote into ``moddir`` (the inputs left out)."""
    return {p.name: p.read_bytes() for p in sorted(moddir.glob("modules.*")) if p.name not in inputs}
