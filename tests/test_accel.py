"""The compiled parser (kmodcompat/parse/_accel.c) against the pure-Python reference.

Both paths must give the same record for every input: the same values and the same
row classes, field by field (a plain tuple equals a NamedTuple, so ``==`` alone would
not tell). Compared over every fixture module, every file of tests/fuzz-corpus, the
hostile files, mutations of the fixtures (tests/fuzzing.py) and, marked realtree, a
whole Debian tree. The C code also runs under AddressSanitizer and UBSan for a bounded time
(tests/accel_asan.py; bench/fuzz_accel.py is the long run), with a bug planted to show it would see one.
"""

from __future__ import annotations

import glob
import importlib
import importlib.machinery
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kmodcompat.errors import ModuleReadError
from kmodcompat.files.opener import read_module_bytes
from kmodcompat.parse import accel

from . import accel_asan, fuzzing, oracle
from .accel_asan import Counting, both, same

REPO = Path(__file__).resolve().parent.parent
CORPUS = REPO / "tests" / "fuzz-corpus"

needs_compiled = pytest.mark.skipif(accel.compiled is None, reason="the C extension is not built here")
needs_asan = pytest.mark.skipif(accel_asan.compiler() is None, reason="no gcc with libasan")


def images(paths: list[str]) -> list[tuple[str, bytes]]:
    out = []
    for p in paths:
        try:
            out.append((p, read_module_bytes(p).data))
        except ModuleReadError:
            continue
    return out


FIXTURES = sorted(glob.glob(str(REPO / "fixtures/modules/**/*.ko*"), recursive=True)
                  + glob.glob(str(REPO / "tests/data/**/*.ko*"), recursive=True))
CORPUS_FILES = sorted(str(p) for p in CORPUS.iterdir() if p.suffix != ".txt" and p.name != "README.md")


def test_extension_is_built_where_a_compiler_is():
    """The install (tools/test.sh's pip install -e) builds the extension wherever a C compiler is."""
    cc = (sysconfig.get_config_var("CC") or "cc").split()[0]
    if shutil.which(cc) is None:
        pytest.skip(f"no C compiler ({cc}): the pure-Python parser is the one installed")
    assert accel.compiled is not None, "a C compiler is here but kmodcompat.parse._accel was not built"
    assert importlib.import_module("kmodcompat.parse._accel") is accel.compiled


@pytest.mark.parametrize("cc", ["/nonexistent/cc", None], ids=["without-compiler", "with-compiler"])
def test_pip_install_builds_the_extension_only_where_it_can(cc, tmp_path):
    """``pip install .`` without a C compiler still installs kmodcompat, parsing in pure Python; with one, the
    wheel carries the extension and the installed kmodcompat parses with it."""
    if cc is None and shutil.which((sysconfig.get_config_var("CC") or "cc").split()[0]) is None:
        pytest.skip("no C compiler here")
    src = tmp_path / "src"
    keep = ("pyproject.toml", "setup.py", "MANIFEST.in", "README.md", "kmodcompat", "man", "completion")
    shutil.copytree(REPO, src, ignore=lambda d, names: [n for n in names if Path(d) == REPO and n not in keep
                                                         or n == "__pycache__" or n.endswith(".so")])
    env = {**os.environ, **({"CC": cc, "LDSHARED": f"{cc} -shared"} if cc else {})}
    p = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--disable-pip-version-check", "--no-deps",
                        "--no-index", "--no-build-isolation", "-w", str(tmp_path / "wheel"), str(src)],
                       capture_output=True, text=True, env=env)
    assert p.returncode == 0, p.stderr
    (wheel,) = (tmp_path / "wheel").glob("*.whl")
    with zipfile.ZipFile(wheel) as z:
        built = [n for n in z.namelist() if n.startswith("kmodcompat/parse/_accel") and n.endswith(".so")]
        z.extractall(tmp_path / "site")
    assert bool(built) == (cc is None), built
    probe = ("from kmodcompat.parse import accel; from kmodcompat.parse.module import parse_module; "
             f"print(accel.describe()); print(len(parse_module({FIXTURES[0]!r}).sections))")
    p = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, capture_output=True, text=True, check=True,
                       env={**os.environ, "PYTHONPATH": str(tmp_path / "site"), "KMODCOMPAT_ACCEL": ""})
    said, sections = p.stdout.splitlines()
    assert said == ("compiled (kmodcompat.parse._accel)" if cc is None else
                    "pure Python (the compiled parser was not built: no C compiler at install time)")
    assert int(sections) > 0


@needs_asan
def test_an_extension_built_from_other_source_is_not_used(tmp_path):
    """An editable checkout whose _accel.c changed since the build must not parse with the old build: its rows
    may not be what the Python readers now expect. The built module says which source it is from."""
    from kmodcompat.parse import accel_source

    assert accel.compiled is None or accel.compiled.SOURCE == accel_source.digest()
    so = tmp_path / ("_accel" + importlib.machinery.EXTENSION_SUFFIXES[0])
    subprocess.run(["gcc", "-shared", "-fPIC", "-O0", '-DKMODCOMPAT_ACCEL_SOURCE="0123456789abcdef"',
                    f"-I{sysconfig.get_paths()['include']}", str(REPO / "kmodcompat/parse/_accel.c"), "-o", str(so)],
                   check=True)
    probe = ("import importlib.util, sys; "
             f"spec = importlib.util.spec_from_file_location('kmodcompat.parse._accel', {str(so)!r}); "
             "m = importlib.util.module_from_spec(spec); sys.modules[spec.name] = m; spec.loader.exec_module(m); "
             "from kmodcompat.parse import accel; print(accel.compiled is None, accel.describe())")
    out = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, check=True,
                         env={**os.environ, "KMODCOMPAT_ACCEL": ""}).stdout.strip()
    assert out == ("True pure Python (the compiled parser was built from other source than _accel.c: "
                   "run pip install -e . again)")


@pytest.mark.parametrize("setting, said", [("0", "pure Python (KMODCOMPAT_ACCEL=0)"), ("", None)])
def test_version_names_the_parser(setting, said):
    env = {**os.environ, "KMODCOMPAT_ACCEL": setting}
    out = subprocess.run([sys.executable, "-m", "kmodcompat", "--version"], env=env, capture_output=True,
                         text=True, check=True).stdout
    if said is None:
        said = ("compiled (kmodcompat.parse._accel)" if accel.compiled is not None else
                "pure Python (the compiled parser was not built: no C compiler at install time)")
    assert f"parser: {said}" in out.splitlines()


@needs_compiled
def test_fixtures_give_the_same_records():
    inputs = images(FIXTURES)
    assert len(inputs) > 100
    ext = Counting(accel.compiled)
    for path, data in inputs:
        same(*both(data, path, ext), where=path)
    # the compiled path did the reading (the fixtures' odd tables are left to the reference)
    assert ext.answered["elf_image"] > 0.9 * len(inputs), (ext.answered, ext.referred)
    assert ext.answered["scan_symbols"] > 0.8 * len(inputs), (ext.answered, ext.referred)


@needs_compiled
@pytest.mark.parametrize("path", CORPUS_FILES, ids=os.path.basename)
def test_fuzz_corpus_gives_the_same_records(path):
    for p, data in images([path]):
        same(*both(data, p), where=p)


@needs_compiled
@pytest.mark.parametrize("name", sorted(fuzzing.hostile_files()))
def test_hostile_files_give_the_same_records(name, tmp_path):
    data, _what = fuzzing.hostile_files()[name]
    (tmp_path / name).write_bytes(data)
    for p, image in images([str(tmp_path / name)]):
        same(*both(image, p), where=name)


SEEDS = [data for _, data in images(FIXTURES[::7]) if data[:4] == b"\x7fELF"]


@needs_compiled
@settings(max_examples=400, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(seed=st.sampled_from(SEEDS or [b""]), rng=st.randoms(use_true_random=False))
def test_mutated_images_give_the_same_records(seed, rng):
    data = fuzzing.mutate(seed, rng)
    same(*both(data))


@needs_compiled
@pytest.mark.realtree
def test_a_real_tree_gives_the_same_records():
    root = oracle.tree_root("bookworm-amd64", fetch=os.environ.get("KMODCOMPAT_FETCH_TREES") == "1")
    if root is None:
        pytest.skip("bookworm-amd64 not downloaded (KMODCOMPAT_FETCH_TREES=1 fetches it)")
    paths = sorted(oracle.tree_modules(root))
    assert len(paths) > 3000
    ext = Counting(accel.compiled)
    for path, data in images(paths):
        same(*both(data, path, ext), where=path)
    # every real module is read by the compiled path alone: nothing left to the reference
    assert not ext.referred, ext.referred
    assert ext.answered["elf_image"] == ext.answered["scan_symbols"] == ext.answered["modinfo"] == len(paths)


# -- AddressSanitizer and UBSan (tests/accel_asan.py; bench/fuzz_accel.py is the long run) ----------------

#: Seconds of the bounded run: the seeds once, then a few thousand mutations.
ASAN_SECONDS = 30


@needs_asan
def test_asan_fuzzing_finds_nothing():
    done = accel_asan.build_and_run(ASAN_SECONDS, seed=20)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-6000:]
    assert ", 0 with different records" in done.stdout


@needs_asan
def test_asan_harness_catches_a_planted_overread():
    """The harness is sharp enough to see one byte read past a buffer: every bound check made one byte
    too lenient (``inside()``), the ASan build must stop on the first input that reaches it."""
    planted = ("return off <= n && len <= n - off;", "return off <= n && len <= n - off + 1;")
    done = accel_asan.build_and_run(ASAN_SECONDS, seed=20, patch=planted)
    assert done.returncode == accel_asan.ASAN_EXIT, done.stdout[-2000:] + done.stderr[-3000:]
    assert "AddressSanitizer: heap-buffer-overflow" in done.stderr
