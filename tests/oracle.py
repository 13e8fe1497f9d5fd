"""Real kmod as the oracle: run kmod 30 / kmod 34.2 and cache what they print.

kmod 30 is Debian bookworm's /usr/sbin tools; kmod 34.2 runs through
../shared/tools/kmod34.sh's extracted loader (invoked directly: the wrapper
script costs ~15 ms of bash per call, and a tree needs thousands of calls).
Outputs of whole trees are cached under ``$REALTREES/.oracle/`` keyed by the
tree's TREE-INFO, so a re-run costs nothing.
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import subprocess
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("KMODCOMPAT_SHARED", REPO.parent / "shared"))
KMOD34_SH = SHARED / "tools" / "kmod34.sh"
GET_TREE = SHARED / "tools" / "get-tree.sh"
REALTREES = Path(os.environ.get("REALTREES", "/tmp/realtrees"))
ENV = {**os.environ, "LC_ALL": "C"}

#: The trees the foundation issue names: (suite, flavor) → get-tree.sh arguments.
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
    if version == "kmod30":
        return [f"/usr/sbin/{tool}" if os.path.exists(f"/usr/sbin/{tool}") else f"/sbin/{tool}"]
    out = subprocess.run(["bash", str(KMOD34_SH), "--print-cmd"], capture_output=True, text=True, check=True).stdout
    argv = shlex.split(out.strip().splitlines()[-1])
    argv = [tool if a == "TOOL" else a for a in argv]
    return argv[:-1] if argv[-1] == "ARGS..." else argv


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
    except (OSError, subprocess.CalledProcessError):
        return False


def tree_root(name: str, fetch: bool = False) -> Path | None:
    """Root of a downloaded tree (``$REALTREES/<name>``); fetched with get-tree.sh when asked."""
    root = REALTREES / name
    if (root / "TREE-INFO").exists():
        return root
    if not fetch:
        return None
    suite, flavor = TREES[name]
    subprocess.run(["bash", str(GET_TREE), "-o", str(REALTREES), "-H", suite, flavor], check=True,
                   stdout=subprocess.DEVNULL)
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
