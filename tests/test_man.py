"""The man pages and shell completion: current with the parsers, valid, installed, and they complete.

tools/make-man.py writes man/*.1 and completion/{bash,zsh}/ from the argument parsers; the committed
files must be what it writes now (run it after changing an option or a help text).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from kmodcompat import cli

from .paths import REPO

GENERATOR = REPO / "tools" / "make-man.py"
GENERATED_DIRS = ("man", "completion/bash", "completion/zsh")


def _files(root: Path) -> dict[str, bytes]:
    out = {}
    for d in GENERATED_DIRS:
        for p in sorted((root / d).glob("*")) if (root / d).is_dir() else ():
            out[f"{d}/{p.name}"] = p.read_bytes()
    return out


def test_committed_files_are_current(tmp_path):
    subprocess.run([sys.executable, str(GENERATOR), "--out", str(tmp_path)], check=True,
                   env={**os.environ, "COLUMNS": "43"})  # the terminal's width must not matter
    fresh, committed = _files(tmp_path), _files(REPO)
    assert set(fresh) == set(committed), "run tools/make-man.py and commit man/ and completion/"
    stale = [name for name in fresh if fresh[name] != committed[name]]
    assert not stale, f"stale (run tools/make-man.py): {stale}"
    assert {f"man/kmodcompat-{name}.1" for name in cli.COMMANDS} | {"man/kmodcompat.1"} == \
        {n for n in fresh if n.startswith("man/")}


@pytest.mark.skipif(shutil.which("groff") is None, reason="groff not installed (tools/test.sh installs man-db)")
def test_pages_render_without_warnings():
    for page in sorted((REPO / "man").glob("*.1")):
        p = subprocess.run(["groff", "-man", "-Tutf8", "-ww", "-z", str(page)], capture_output=True, text=True)
        assert p.returncode == 0 and not p.stderr, f"{page.name}: {p.stderr}"


@pytest.mark.skipif(shutil.which("man") is None, reason="man not installed (tools/test.sh installs man-db)")
def test_man_after_install(tmp_path):
    """pip install into a venv puts the pages where man finds them: ``man kmodcompat-report`` works."""
    src = tmp_path / "src"
    keep = ("pyproject.toml", "README.md", "kmodcompat", "man", "completion")
    shutil.copytree(REPO, src, ignore=lambda d, names: [n for n in names if Path(d) == REPO and n not in keep
                                                         or n == "__pycache__"])
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True)
    pip = ["-m", "pip", "install", "-q", "--disable-pip-version-check", "--no-deps"]
    if _importable("setuptools", "wheel"):
        # The test extra's setuptools and wheel build it here, without the index; the new venv installs the wheel.
        p = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--disable-pip-version-check", "--no-deps",
                            "--no-index", "--no-build-isolation", "-w", str(tmp_path / "wheel"), str(src)],
                           capture_output=True, text=True)
        assert p.returncode == 0, p.stderr
        what = [*pip, "--no-index", *map(str, (tmp_path / "wheel").glob("*.whl"))]
    else:  # as the README installs it: pip fetches the build backend
        what = [*pip, str(src)]
    p = subprocess.run([str(venv / "bin" / "python"), *what], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    share = venv / "share"
    assert (share / "bash-completion" / "completions" / "kmodcompat").is_file()
    assert (share / "zsh" / "site-functions" / "_kmodcompat").is_file()
    env = {**os.environ, "MANPATH": str(share / "man"), "MANWIDTH": "80", "MAN_KEEP_FORMATTING": ""}
    p = subprocess.run(["man", "-P", "cat", "kmodcompat-report"], capture_output=True, text=True, env=env)
    assert p.returncode == 0, p.stderr
    assert "kmodcompat-report - write the compatibility report" in p.stdout
    assert "--fail-on POLICY" in p.stdout and "EXIT STATUS" in p.stdout
    # Without MANPATH, man-db derives it from PATH: the venv's bin/ on PATH is enough (the README's advice).
    env = {k: v for k, v in os.environ.items() if k != "MANPATH"}
    env["PATH"] = f"{venv / 'bin'}:{env.get('PATH', '/usr/bin:/bin')}"
    p = subprocess.run(["man", "-w", "kmodcompat-report"], capture_output=True, text=True, env=env)
    assert p.stdout.strip() == str(share / "man" / "man1" / "kmodcompat-report.1"), p.stderr


def _importable(*names: str) -> bool:
    return subprocess.run([sys.executable, "-c", f"import {', '.join(names)}"], capture_output=True).returncode == 0


def _bash_complete(line: str) -> list[str]:
    """What the generated bash completion offers for ``line`` (the word being typed is its last)."""
    script = (f"source {REPO / 'completion' / 'bash' / 'kmodcompat'}\n"
              f"COMP_LINE={line!r}; read -ra COMP_WORDS <<< \"$COMP_LINE\"\n"
              "[[ $COMP_LINE == *' ' ]] && COMP_WORDS+=('')\n"
              "COMP_CWORD=$((${#COMP_WORDS[@]} - 1)); _kmodcompat; printf '%s\\n' \"${COMPREPLY[@]}\"\n")
    p = subprocess.run(["bash", "--norc", "--noprofile", "-c", script], capture_output=True, text=True,
                       cwd=REPO, check=True)
    return [w for w in p.stdout.splitlines() if w]


def test_bash_completion():
    assert _bash_complete("kmodcompat ") == list(cli.COMMANDS)
    assert _bash_complete("kmodcompat rep") == ["report"]
    assert _bash_complete("kmodcompat report --f") == ["--fail-on", "--format"]
    assert set(_bash_complete("kmodcompat report --")) >= {"--out", "--fail-on", "--kernel-image", "--no-cache"}
    assert _bash_complete("kmodcompat diff --format ") == ["text", "markdown", "json", "html", "junit", "sarif"]
    assert _bash_complete("kmodcompat cache ") == ["info", "clear", "prune"]
    assert _bash_complete("kmodcompat report --out too") == ["tools"]  # a path
    assert _bash_complete("kmodcompat report -j ") == []  # a number: no file names
    assert "--as" in _bash_complete("kmodcompat --version modinfo -")


ZSH_CAPTURE = r"""
# Runs an interactive zsh on a pseudo-terminal, types the line and TAB, and prints what compadd was given.
# Reads block until a marker is printed: nothing here waits for a time.
zmodload zsh/zpty
zpty z zsh -f -i
zpty -w z "fpath=($1 \$fpath); autoload -Uz compinit; compinit -u -D"
zpty -w z 'compadd () {
  if [[ ${@[1,(i)(-|--)]} == *-(O|A|D)\ * ]]; then builtin compadd "$@"; return $?; fi
  typeset -a __hits; builtin compadd -A __hits "$@"; local r=$?
  local h; for h in $__hits; do print -r -- "<HIT>$h"; done; return $r
}'
zpty -w z 'kmodcompat() { :; }'
zpty -w z 'comppostfuncs=(__done); __done() { print -r -- "<EOC>"; exit }'
zpty -w z "print -r -- '<READY>'"
zpty -r z line '*<READY>*<READY>*' >/dev/null
zpty -w -n z "$2"$'\t'
zpty -r z out '*<EOC>*'
print -rl -- "${(@M)${(f)out}:#*<HIT>*}"
zpty -d z
"""


def _zsh_complete(line: str, tmp_path: Path) -> list[str]:
    script = tmp_path / "capture.zsh"
    script.write_text(ZSH_CAPTURE)
    p = subprocess.run(["zsh", "-f", str(script), str(REPO / "completion" / "zsh"), line], capture_output=True,
                       text=True, timeout=60, cwd=REPO, env={**os.environ, "TERM": "dumb"})
    return [w.split("<HIT>", 1)[1].rstrip("\r") for w in p.stdout.splitlines() if "<HIT>" in w]


@pytest.mark.skipif(shutil.which("zsh") is None, reason="zsh not installed (tools/test.sh installs it)")
def test_zsh_completion(tmp_path):
    assert set(_zsh_complete("kmodcompat ", tmp_path)) == set(cli.COMMANDS)
    assert _zsh_complete("kmodcompat rep", tmp_path) == ["report"]
    assert "--fail-on" in _zsh_complete("kmodcompat report --f", tmp_path)
    assert set(_zsh_complete("kmodcompat diff --format ", tmp_path)) == {"text", "markdown", "json", "html", "junit",
                                                                          "sarif"}
    assert set(_zsh_complete("kmodcompat cache ", tmp_path)) == {"info", "clear", "prune"}
