"""kmodcompat/parse/_accel.c under AddressSanitizer and UBSan: the harness of tests/test_accel.py and bench/fuzz_accel.py.

libFuzzer is not on these machines, so the driver is Python: ``build()`` compiles the
extension with ``-fsanitize=address,undefined`` (gcc), ``run()`` starts an interpreter with
that build loaded as ``kmodcompat.parse._accel`` (libasan preloaded, ``PYTHONMALLOC=malloc``
so every Python buffer is a malloc block with ASan's redzones around it), and the child
(``python -m tests.accel_asan --child``) loops until its time is up over mutations
(tests/fuzzing.py) of the fixtures and tests/fuzz-corpus:

* the whole parse, compiled against pure Python: the same record or the same refusal
  (a difference is a failure too, with the seed and index that rebuild the input);
* each C function called directly on a buffer of exactly the image's size (a ctypes
  array: a bytes object has a NUL after its end, which would hide a read one past it),
  with the offsets the image's own section table gives and with boundary values
  (0, the size, one past it, 2**64-1, ...) the Python callers would never pass: the
  C code checks every bound itself.

An ASan or UBSan report ends the child with its exit status (86, 87) and the report on stderr.
"""

from __future__ import annotations

import argparse
import ctypes
import dataclasses
import glob
import importlib.machinery
import importlib.util
import os
import random
import runpy
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SOURCE = REPO / "kmodcompat" / "parse" / "_accel.c"
ASAN_EXIT, UBSAN_EXIT = 86, 87
#: Seeds larger than this are left out: under ASan a mutation of a 4 MiB image costs too much.
MAX_SEED = 1 << 20


def compiler() -> str | None:
    """gcc, when it can build with both sanitizers here."""
    for cc in ("gcc",):
        try:
            lib = subprocess.run([cc, "-print-file-name=libasan.so"], capture_output=True, text=True,
                                 check=True).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            continue
        if os.path.isabs(lib) and os.path.exists(lib):
            return cc
    return None


def build(dst: Path, patch: tuple[str, str] | None = None) -> Path:
    """The extension built with ASan and UBSan in ``dst``; ``patch`` (old, new) edits its source first
    (tests/test_accel.py plants a bug that way, to see the harness catch it)."""
    cc = compiler()
    if cc is None:
        raise RuntimeError("no gcc with libasan")
    src = dst / "src"
    src.mkdir(parents=True, exist_ok=True)
    for name in ("_accel.c", "_accel.h"):
        text = (SOURCE.parent / name).read_text()
        if patch is not None and patch[0] in text:
            text = text.replace(patch[0], patch[1])
            patch = None
        (src / name).write_text(text)
    if patch is not None:
        raise ValueError(f"the patch's text is not in the source: {patch[0]!r}")
    out = dst / ("_accel" + importlib.machinery.EXTENSION_SUFFIXES[0])
    # the digest of the repository's source, patched or not: this build stands in for the one of that source
    source = runpy.run_path(str(SOURCE.parent / "accel_source.py"))["digest"](SOURCE.parent)
    subprocess.run([cc, "-shared", "-fPIC", f'-DKMODCOMPAT_ACCEL_SOURCE="{source}"', "-O1", "-g",
                    "-fno-omit-frame-pointer", "-fsanitize=address,undefined", "-fno-sanitize-recover=undefined",
                    "-std=c99", "-Wall", "-Werror", "-Wno-unused-parameter", f"-I{sysconfig.get_paths()['include']}",
                    str(src / "_accel.c"), "-o", str(out)], check=True)
    return out


def run(so: Path, seconds: float, seed: int, real: str | None = None, timeout: float | None = None,
        current: str | None = None) -> subprocess.CompletedProcess[str]:
    """The child over ``so`` for ``seconds``; ``real``: a tree root whose small modules join the seeds;
    ``current``: a file each input is written to before it runs (left holding the one a crash died on)."""
    cc = compiler()
    assert cc is not None
    libasan = subprocess.run([cc, "-print-file-name=libasan.so"], capture_output=True, text=True,
                             check=True).stdout.strip()
    env = {**os.environ, "LD_PRELOAD": libasan, "PYTHONMALLOC": "malloc",
           "ASAN_OPTIONS": f"detect_leaks=0:halt_on_error=1:exitcode={ASAN_EXIT}:allocator_may_return_null=1",
           "UBSAN_OPTIONS": f"halt_on_error=1:print_stacktrace=1:exitcode={UBSAN_EXIT}",
           "PYTHONPATH": str(REPO)}
    env.pop("KMODCOMPAT_ACCEL", None)
    argv = [sys.executable, "-m", "tests.accel_asan", "--child", str(so), "--seconds", str(seconds),
            "--seed", str(seed)]
    if real:
        argv += ["--real", real]
    if current:
        argv += ["--current", current]
    return subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=timeout if timeout is not None else seconds * 4 + 120)


def build_and_run(seconds: float, seed: int = 1, real: str | None = None,
                  patch: tuple[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """:func:`build` in a scratch directory, then :func:`run`."""
    with tempfile.TemporaryDirectory(prefix="kmc-asan-") as tmp:
        return run(build(Path(tmp), patch), seconds, seed, real)


# -- both paths (tests/test_accel.py's comparisons too) ----------------------------------------------------

def same(a: object, b: object, where: str = "record") -> None:
    """Assert ``a`` and ``b`` are equal and of the same classes, all the way down."""
    assert type(a) is type(b), f"{where}: {type(a).__name__} vs {type(b).__name__}"
    if dataclasses.is_dataclass(a):
        for f in dataclasses.fields(a):
            same(getattr(a, f.name), getattr(b, f.name), f"{where}.{f.name}")
    elif isinstance(a, tuple):
        assert len(a) == len(b), f"{where}: {len(a)} vs {len(b)} items"
        for i, (x, y) in enumerate(zip(a, b)):
            same(x, y, f"{where}[{i}]")
    else:
        assert a == b, f"{where}: {a!r} vs {b!r}"


def outcome(data: bytes, path: str) -> object:
    """The record of one image, or its refusal (text, code, errno)."""
    from kmodcompat.errors import ModuleReadError
    from kmodcompat.parse.module import parse_module_bytes

    try:
        return parse_module_bytes(data, path)
    except ModuleReadError as e:
        return ("refused", str(e), e.code, e.errno)


class Counting:
    """The extension, counting per function the calls it answered and those it left to the reference."""

    def __init__(self, ext: object):
        self.ext = ext
        self.answered: Counter[str] = Counter()
        self.referred: Counter[str] = Counter()

    def __getattr__(self, name: str):
        fn = getattr(self.ext, name)

        def call(*args):
            got = fn(*args)
            (self.referred if got is None else self.answered)[name] += 1
            return got

        return call


def both(data: bytes, path: str = "<bytes>", ext: object = None) -> tuple[object, object]:
    """(compiled, reference) outcomes of one image."""
    from kmodcompat.parse import accel  # imported late: the child loads its ASan build first

    saved = accel.ext
    try:
        accel.ext = ext or accel.compiled
        fast = outcome(data, path)
        accel.ext = None
        slow = outcome(data, path)
    finally:
        accel.ext = saved
    return fast, slow


# -- the child -------------------------------------------------------------------------------------------

def _load(so: str) -> None:
    """``so`` as kmodcompat.parse._accel, in sys.modules before kmodcompat (whose import parses) looks for it."""
    assert "kmodcompat" not in sys.modules, "kmodcompat imported before its ASan build was loaded"
    spec = importlib.util.spec_from_file_location("kmodcompat.parse._accel", so)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["kmodcompat.parse._accel"] = module
    spec.loader.exec_module(module)
    from kmodcompat.parse import accel

    assert accel.compiled is module and accel.ext is module, "the ASan build is not the one loaded"


def _seeds(real: str | None) -> list[tuple[str, bytes]]:
    from kmodcompat.errors import ModuleReadError
    from kmodcompat.files.opener import read_module_bytes

    paths = sorted(glob.glob(str(REPO / "fixtures/modules/**/*.ko*"), recursive=True))
    paths += sorted(str(p) for p in (REPO / "tests/fuzz-corpus").iterdir() if p.suffix != ".txt"
                    and p.name != "README.md")
    if real:
        from tests import oracle

        mods = sorted(oracle.tree_modules(Path(real)), key=lambda p: (os.path.getsize(p), p))
        paths += mods[100:2000:50]
    out = []
    for p in paths:
        try:
            data = read_module_bytes(p).data
        except ModuleReadError:
            continue
        if len(data) <= MAX_SEED:
            out.append((os.path.relpath(p, REPO), data))
    return out


def _exact(data: bytes) -> ctypes.Array[ctypes.c_char]:
    """A copy of ``data`` in a block of exactly its size (with ASan's redzone right after it)."""
    return (ctypes.c_char * max(1, len(data))).from_buffer_copy(data or b"\0")


def _boundaries(rng: random.Random, size: int) -> int:
    return rng.choice((0, 1, 4, size - 1, size, size + 1, size - 64, (1 << 32) - 1, (1 << 63) - 1, (1 << 64) - 1,
                       rng.randrange(size + 2)))


def _direct(ext: object, data: bytes, rng: random.Random) -> None:
    """Each function on an exact-size buffer: with the image's own section extents, then with lies."""
    from kmodcompat.elf.image import ElfImage
    from kmodcompat.errors import ElfError

    buf = _exact(data)
    n = len(data)
    got = ext.elf_image(buf)  # type: ignore[attr-defined]
    try:
        elf = ElfImage(data)
    except ElfError:
        elf = None
    u64 = (1 << 64) - 1

    def clip(v: int) -> int:
        return max(0, min(v, u64))

    extents = [(s.offset, s.size) for s in elf.sections] if elf is not None else []
    extents += [(clip(_boundaries(rng, n)), clip(_boundaries(rng, n))) for _ in range(4)]
    sections = elf.sections if elf is not None else ()
    if got is not None:
        assert elf is not None
    symtab = elf.section(".symtab") if elf is not None else None
    strtab = elf.section(".strtab") if elf is not None else None
    pairs = [(symtab.offset, symtab.size, strtab.offset, strtab.size)] if symtab and strtab else []
    pairs += [(*rng.choice(extents), *rng.choice(extents)) for _ in range(3)]
    for sym_off, sym_size, str_off, str_size in pairs:
        for elfclass in (64, 32):
            ext.scan_symbols(buf, sym_off, sym_size, str_off, str_size, elfclass,  # type: ignore[attr-defined]
                             rng.random() < 0.5, rng.choice((62, 2, 43)), sections)
    for off, size in rng.sample(extents, min(len(extents), 8)):
        ext.modinfo(buf, off, size)  # type: ignore[attr-defined]
        ext.versions(buf, off, size, rng.choice((32, 64)), rng.random() < 0.5)  # type: ignore[attr-defined]


def child(so: str, seconds: float, seed: int, real: str | None, current: str | None = None) -> int:
    _load(so)
    from kmodcompat.parse import accel
    from tests import fuzzing

    ext = accel.compiled
    seeds = _seeds(real)
    stop = time.monotonic() + seconds
    done = differ = 0
    # every seed once as it is, then mutations until the time is up
    while time.monotonic() < stop:
        rng = random.Random(f"{seed}:{done}")
        name, original = seeds[done] if done < len(seeds) else rng.choice(seeds)
        data = original if done < len(seeds) else fuzzing.mutate(original, rng)
        if current:  # what a crash leaves behind: the input that made it
            Path(current).write_bytes(data)
        try:
            same(*both(data))
        except AssertionError as e:
            differ += 1
            print(f"DIFFERENT seed {seed} index {done} ({name}): {str(e).splitlines()[0][:500]}", flush=True)
        _direct(ext, data, rng)
        done += 1
    print(f"{done} inputs ({len(seeds)} seeds, then mutations), {differ} with different records", flush=True)
    return 1 if differ else 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--child", metavar="SO", required=True)
    ap.add_argument("--seconds", type=float, default=30)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--real", default=None)
    ap.add_argument("--current", default=None, help="write each input here before running it")
    args = ap.parse_args()
    return child(args.child, args.seconds, args.seed, args.real, args.current)


if __name__ == "__main__":
    sys.exit(main())
