"""ruff and mypy under the committed configuration (pyproject.toml): the test command runs them.

Both are pinned in the ``test`` extra, so a finding here is a finding in CI. Run them by hand with
``ruff check`` and ``mypy`` from the repository root.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from .paths import REPO


def _run(tool: str, *args: str) -> subprocess.CompletedProcess:
    try:
        __import__(tool)
    except ImportError:
        pytest.fail(f"{tool} is not installed: pip install -e '.[test]' (tools/test.sh does)")
    return subprocess.run([sys.executable, "-m", tool, *args], cwd=REPO, capture_output=True, text=True)


def test_ruff_clean():
    p = _run("ruff", "check", "--no-cache", "kmodcompat", "tests", "tools", "bench")
    assert p.returncode == 0, p.stdout + p.stderr


def test_mypy_clean(tmp_path):
    p = _run("mypy", "--cache-dir", str(tmp_path / "mypy-cache"))
    assert p.returncode == 0, p.stdout + p.stderr
