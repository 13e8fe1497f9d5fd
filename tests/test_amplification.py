"""Issue 15, amplification inside a module: tables that cover one region of 120 MiB of zeros.

A 15 KB .ko.xz, well within the decompression cap, whose section table points
``.modinfo``, the extended version tables, ``__ksymtab_strings``, ``__versions``
or ``.symtab`` (several times each) at one zero region. Read naively that is an
empty string per byte and millions of entries per table: gigabytes. Each
command runs in a child process under RLIMIT_AS 1 GiB and a 10 s timeout
(tests/hostile_trees.run_bounded) and must give a clear result: a table too
large for kmodcompat refuses the module with one line, anything else is parsed.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import pytest

from .fuzzing import zero_region_xz
from .hostile_trees import FIXTURES, KVER, TIMEOUT, clean_failure_lines, module_dir, run_bounded

#: 120 MiB: a multiple of every entry size (64, 24, 4).
SIZE = 120 << 20
STRINGS = (".modinfo", "__version_ext_names", "__ksymtab_strings", ".strtab")
#: name -> (sections over the zero region, how many copies of each, the refusal expected or None)
CASES = {
    "all-tables": ((".modinfo", "__versions", "__version_ext_crcs", "__version_ext_names", "__ksymtab_strings"), 3,
                   "__versions holds more than 65536 records"),
    "strings": (STRINGS, 3, None),
    "ext-crcs": (("__version_ext_crcs", "__version_ext_names"), 2, "__version_ext_crcs holds more than 65536 CRCs"),
    "symtab": ((".symtab", ".strtab"), 1, ".symtab holds more than 1048576 symbols"),
}


@pytest.fixture(scope="module")
def modules(tmp_path_factory) -> dict[str, Path]:
    top = tmp_path_factory.mktemp("amplification")
    out = {}
    for name, (sections, copies, _) in CASES.items():
        path = top / f"{name}.ko.xz"
        path.write_bytes(zero_region_xz(sections, SIZE, copies))
        assert path.stat().st_size < 32 << 10
        out[name] = path
    return out


def _bounded(args: list[str]):
    run = run_bounded(args)
    assert not run.timed_out, f"no answer within {TIMEOUT} s"
    clean_failure_lines(run.stderr)  # no traceback, no MemoryError
    return run


@pytest.mark.parametrize("case", CASES)
def test_show_is_bounded(modules, case):
    refusal = CASES[case][2]
    run = _bounded(["show", "--format", "json", str(modules[case])])
    if refusal is None:
        assert run.status == 0, run.stderr
        shown = json.loads(run.stdout)
        assert shown["image_size"] > SIZE
        assert shown["modinfo"] == [] and shown["exports"] == []
    else:
        assert run.status == 2
        assert run.stderr.decode() == f"kmodcompat: {modules[case]}: {refusal}: more than kmodcompat reads " \
                                      "(real modules hold a few thousand)\n"


def test_validate_is_bounded(modules):
    run = _bounded(["validate", str(modules["all-tables"])])
    assert run.status == 1, run.stderr
    assert f"{modules['all-tables']}: UNREADABLE __versions holds more than 65536 records".encode() in run.stdout


def test_tree_with_amplifying_modules(modules, tmp_path):
    """One tree scan: the refused module is unreadable, the rest is reported."""
    root = tmp_path / "root"
    kernel = module_dir(root) / "kernel"
    kernel.mkdir(parents=True)
    shutil.copy(FIXTURES / "basic.ko", kernel / "basic.ko")
    shutil.copy(modules["all-tables"], kernel / "all-tables.ko.xz")
    out = tmp_path / "out"
    run = _bounded(["report", "-b", str(root), KVER, "--out", str(out), "--no-cache", "-j", "1"])
    assert run.status == 1, run.stderr  # the default policy fails on unreadable modules
    report = json.loads((out / "report.json").read_text())
    unreadable = json.dumps(report)
    assert "__versions holds more than 65536 records" in unreadable
    assert "all-tables.ko.xz" in unreadable and "basic.ko" in unreadable


def test_deadline_failures_are_not_cached(tmp_path, monkeypatch):
    """A parse deadline hit depends on load, not on the file: it is marked transient and never cached
    (issue 15: an intact module was "corrupt xz stream" on every run after a suspended scan)."""
    from kmodcompat import cache as cache_module
    from kmodcompat.parse import scan

    module = tmp_path / "basic.ko"
    shutil.copy(FIXTURES / "basic.ko", module)
    os.utime(module, (time.time() - 100, time.time() - 100))  # not "racy": the cache may keep it
    real_parse = scan.parse_module

    def slow_parse(path, *args, **kwargs):
        time.sleep(2)
        return real_parse(path, *args, **kwargs)

    monkeypatch.setattr(scan, "parse_module", slow_parse)
    monkeypatch.setattr(scan.parse_one, "__defaults__", (0.1,))
    with cache_module.RecordCache(str(tmp_path / "c.sqlite")) as cache:
        (failed,) = cache_module.parse_cached([str(module)], cache, jobs=1)
        assert failed.code == "timeout" and failed.transient and not failed.cacheable
        assert cache.get_many([str(module)]) == [None]
        monkeypatch.setattr(scan, "parse_module", real_parse)
        (parsed,) = cache_module.parse_cached([str(module)], cache, jobs=1)
        assert parsed.path == str(module) and parsed.modinfo  # the next run parses it, as if never tried
