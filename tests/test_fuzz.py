"""Bad input never breaks kmodcompat: property tests over mutated modules, hostile files, tree scans.

The property, for any bytes: ``parse_module_bytes`` returns a record or raises
ModuleReadError, ``validate_bytes`` returns a verdict; nothing else escapes,
each input finishes before a generous alarm (a hang detector, not a timing
assertion) and allocates a bounded amount of memory (tracemalloc peak). The
mutations (tests/fuzzing.py) start from the fixtures and, when present, a few
real Debian modules. bench/fuzz.py runs the same property for 100,000+
mutations and stores what breaks it in tests/fuzz-corpus/, replayed here.
"""

from __future__ import annotations

import errno
import glob
import os
import random
import shutil
import tracemalloc
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kmodcompat.parse import scan
from kmodcompat.errors import ModuleReadError
from kmodcompat.parse.module import parse_module
from kmodcompat.files.opener import read_module_bytes
from kmodcompat.records import ModuleRecord
from kmodcompat.parse.scan import deadline, parse_many
from kmodcompat.depmod.tree import load_tree
from kmodcompat.validate import Validation, validate_file

from . import fuzzing, oracle
from .paths import FUZZ_CORPUS as CORPUS, REPO

#: Seconds before an input counts as a hang: far above any real parse (< 0.1 s for these inputs).
HANG = 30
#: Bytes an input may allocate at peak: a multiple of its size plus a constant (Python objects
#: per symbol and section cost more than the bytes describing them).
MEMORY_FACTOR, MEMORY_SLACK = 16, 48 << 20


def _images() -> list[bytes]:
    out = []
    for p in sorted(glob.glob(str(REPO / "fixtures/modules/*/*.ko*"))):
        try:
            data = read_module_bytes(p).data
        except ModuleReadError:
            continue
        if data[:4] == b"\x7fELF" and len(data) > 100:
            out.append(data)
    # A few small real modules (their symbol tables and sections are the real thing).
    root = oracle.tree_root("bookworm-amd64")
    if root is not None:
        mods = sorted(oracle.tree_modules(root), key=lambda p: (os.path.getsize(p), p))
        out += [read_module_bytes(p).data for p in mods[200:1000:100]]
    return out


SEEDS = _images()
SMALL_SEEDS = [s for s in SEEDS if len(s) < 16384]


@contextmanager
def bounded(size: int) -> Iterator[None]:
    """Fail on a hang (alarm) or on an allocation peak out of proportion to the input."""
    tracemalloc.start()
    try:
        with deadline(HANG):
            yield
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak <= MEMORY_FACTOR * size + MEMORY_SLACK, f"peak {peak} bytes for a {size}-byte input"


def _is_outcome(parsed: object, verdict: object) -> None:
    assert isinstance(parsed, (ModuleRecord, ModuleReadError))
    assert isinstance(verdict, (Validation, ModuleReadError))
    if isinstance(parsed, ModuleReadError):
        assert "\n" not in str(parsed) and parsed.reason


FUZZ = settings(max_examples=300, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@FUZZ
@given(seed=st.sampled_from(SEEDS), rng=st.randoms(use_true_random=False))
def test_mutated_images_parse_or_fail_cleanly(seed, rng):
    data = fuzzing.mutate(seed, rng)
    with bounded(len(data)):
        parsed, verdict = fuzzing.check_image(data)
    _is_outcome(parsed, verdict)


@FUZZ
@given(seed=st.sampled_from(SMALL_SEEDS), rng=st.randoms(use_true_random=False))
def test_broken_compressed_streams_fail_cleanly(seed, rng, tmp_path_factory):
    path = tmp_path_factory.mktemp("stream") / "m.ko"
    data = fuzzing.mutate_compressed(seed, rng)
    path.write_bytes(data)
    with bounded(max(len(data), len(seed))):
        parsed, verdict = fuzzing.check_file(str(path))
    _is_outcome(parsed, verdict)


@pytest.mark.parametrize("name", sorted(fuzzing.hostile_files()))
def test_hostile_files_cost_linear_time_and_memory(name, tmp_path):
    data, _what = fuzzing.hostile_files()[name]
    path = tmp_path / name
    path.write_bytes(data)
    try:
        image = len(read_module_bytes(path).data)
    except ModuleReadError:  # the stream-count caps refuse before inflating
        image = 0
    with bounded(image + len(data)):
        parsed, verdict = fuzzing.check_file(str(path))
    _is_outcome(parsed, verdict)


def test_decompression_bomb_stops_at_the_limit(tmp_path):
    path = tmp_path / "bomb.ko.zst"
    path.write_bytes(fuzzing.zstd_bomb(1 << 30))  # 1 GiB of zeros in 32 KiB
    limit = 4 << 20
    with bounded(limit):  # one call to the decoder inflates at most 32 MiB past the limit
        with pytest.raises(ModuleReadError) as info:
            parse_module(path, max_size=limit)
        with pytest.raises(ModuleReadError):
            validate_file(path, max_size=limit)
    assert info.value.code == "decompress-limit"


def test_many_frames_are_refused_not_crawled(tmp_path):
    path = tmp_path / "frames.ko.xz"
    path.write_bytes(fuzzing.many_xz_streams(5000))
    with pytest.raises(ModuleReadError) as info:
        parse_module(path)
    assert info.value.detail == "streams"


def test_multi_frame_zstd_is_read_whole(tmp_path):
    """Frames after the first MiB of input are not lost (they were, before issue 8)."""
    image = os.urandom(3 << 20)  # incompressible: the second frame starts past the first MiB
    path = tmp_path / "two.ko.zst"
    path.write_bytes(fuzzing.compress(image[:2 << 20], "zstd") + fuzzing.compress(image[2 << 20:], "zstd"))
    opened = read_module_bytes(path)
    assert opened.data == image and "zstd-multi-frame" in opened.notes


@pytest.mark.parametrize("path", sorted(p for p in CORPUS.iterdir() if p.suffix not in (".txt", ".md")),
                         ids=lambda p: p.name)
def test_corpus_replay(path):
    """Every input the long-run fuzz (bench/fuzz.py) or a bound regression stored."""
    size = path.stat().st_size
    try:
        size = max(size, len(read_module_bytes(path).data))
    except ModuleReadError:
        pass
    with bounded(size):
        parsed, verdict = fuzzing.check_file(str(path))
    _is_outcome(parsed, verdict)
    assert (path.parent / (path.name + ".txt")).exists(), "every corpus file has its note"


# -- tree scans with corrupt members ------------------------------------------------------------

def _corrupt_tree(root: Path) -> tuple[dict[str, str], dict[str, str]]:
    """A module directory of healthy fixtures and corrupt files: (healthy, corrupt) name -> path."""
    kernel = root / "kernel"
    kernel.mkdir(parents=True)
    healthy, corrupt = {}, {}
    clean = [p for p in sorted(glob.glob(str(REPO / "fixtures/modules/*/*.ko")))
             if not any(k in p for k in ("bad-", "kcheck-", "notelf", "truncated", "tiny", "varlen"))]
    for i, src in enumerate(clean[:30]):
        name = f"ok{i:02d}"
        dst = kernel / f"{name}.ko"
        shutil.copy(src, dst)
        healthy[name] = str(dst)
    rng = random.Random(8)
    base = (REPO / "fixtures/modules/x86_64/basic.ko").read_bytes()
    for i in range(12):
        while True:  # a mutation this parser refuses
            data = fuzzing.mutate(base, rng) if i % 3 else fuzzing.break_stream(fuzzing.compress(base, "xz"), rng)
            dst = kernel / (f"bad{i:02d}.ko" if i % 3 else f"bad{i:02d}.ko.xz")
            dst.write_bytes(data)
            if isinstance(scan.parse_one(str(dst)), ModuleReadError):
                break
        corrupt[f"bad{i:02d}"] = str(dst)
    os.symlink("bad-link-target.ko", kernel / "dangling.ko")
    corrupt["dangling"] = str(kernel / "dangling.ko")
    return healthy, corrupt


def test_tree_scan_reports_healthy_modules_and_names_every_corrupt_one(tmp_path):
    healthy, corrupt = _corrupt_tree(tmp_path / "6.1.0-kmc")
    paths = sorted(list(healthy.values()) + list(corrupt.values()))
    results = dict(zip(paths, parse_many(paths, jobs=2)))  # >= 32 files: worker processes
    assert all(isinstance(results[p], ModuleRecord) for p in healthy.values())
    for p in corrupt.values():
        err = results[p]
        assert isinstance(err, ModuleReadError) and err.path == p and err.reason and "internal" not in err.reason
    # load_tree (depmod's walk) keeps the corrupt ones in the tree, with their reasons
    tree = load_tree(str(tmp_path / "6.1.0-kmc"), jobs=2)
    found = {m.name: m for m in tree.modules}
    assert all(found[n].record is not None for n in healthy)
    files = {n for n in corrupt if n != "dangling"}  # a dangling link is no file to depmod
    assert {m.name for m in tree.failures} == files
    assert all(m.error.reason for m in tree.failures)


def _dies_on_crash(path: str) -> ModuleRecord:
    if "crash" in path:
        os._exit(3)  # what a segfault in a C decoder, or the OOM killer, looks like to the pool
    return _real_parse(path)


_real_parse = scan.parse_module


def test_a_worker_that_dies_costs_only_its_own_file(tmp_path, monkeypatch):
    src = REPO / "fixtures/modules/x86_64/basic.ko"
    paths = []
    for i in range(40):
        dst = tmp_path / (f"m{i:02d}-crash.ko" if i == 17 else f"m{i:02d}.ko")
        shutil.copy(src, dst)
        paths.append(str(dst))
    monkeypatch.setattr(scan, "parse_module", _dies_on_crash)  # inherited by the forked workers
    results = parse_many(paths, jobs=2)
    assert [type(r).__name__ for r in results] == ["ModuleReadError" if "crash" in p else "ModuleRecord"
                                                   for p in paths]
    died = results[17]
    assert died.path == paths[17] and died.code == "internal-error" and died.errno == errno.EIO


def test_parse_time_bound_in_scans(tmp_path):
    path = tmp_path / "m.ko"
    shutil.copy(REPO / "fixtures/modules/x86_64/basic+ext.ko", path)
    res = scan.parse_one(str(path), timeout=1e-6)
    assert isinstance(res, ModuleReadError) and res.code == "timeout"
    assert isinstance(scan.parse_one(str(path)), ModuleRecord)
