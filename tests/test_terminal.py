"""Pager, colour and --quiet, on a real pseudo-terminal (cli/terminal.py).

Each run is kmodcompat in a child process whose stdout (and stderr) is the slave side of a pty; the
test reads the master side until every holder of the slave (kmodcompat and its pager) has exited. The
pager is a script that records what it was given, so the test knows whether it ran and what it read.
"""

from __future__ import annotations

import os
import select
import subprocess
import sys
from pathlib import Path

import pytest

from .paths import DEMO_KVER, MODULES, REPO

LISTING = ["validate", "fixtures/modules/x86_64"]  # 82 files, 43 fail a check: a long listing with verdicts
RED_FAIL = "\x1b[1;31mFAIL\x1b[0m"


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "PAGER", "LESS", "COLUMNS")}
    pager = tmp_path / "pager.sh"
    pager.write_text('#!/bin/sh\n{ echo "LESS=$LESS"; cat; } > "$PAGER_RECORD"\n')
    pager.chmod(0o755)
    env.update(TERM="xterm", PAGER=str(pager), PAGER_RECORD=str(tmp_path / "paged"),
               XDG_CACHE_HOME=str(tmp_path / "cache"))
    env.update(extra)
    return env


def _run(argv: list[str], env: dict[str, str], stdout_tty: bool = True) -> tuple[int, str, str]:
    """(status, what reached the terminal, stdout when it was a pipe)."""
    master, slave = os.openpty()
    p = subprocess.Popen([sys.executable, "-m", "kmodcompat", *argv], cwd=REPO, env=env, stdin=slave,
                         stdout=slave if stdout_tty else subprocess.PIPE, stderr=slave)
    os.close(slave)
    chunks = []
    while True:
        # A bound against a hung child only: the loop ends when the last slave holder exits (EIO).
        ready, _, _ = select.select([master], [], [], 300)
        assert ready, "no output and no exit in 300 s"
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: no process holds the slave any more
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    piped = p.stdout.read().decode() if p.stdout is not None else ""
    status = p.wait()
    return status, b"".join(chunks).decode("utf-8", "replace").replace("\r\n", "\n"), piped


def _paged(tmp_path: Path) -> str | None:
    f = tmp_path / "paged"
    return f.read_text() if f.exists() else None


def test_listing_goes_through_the_pager_on_a_terminal(tmp_path):
    status, seen, _ = _run(LISTING, _env(tmp_path))
    paged = _paged(tmp_path)
    assert status == 1 and paged is not None
    assert paged.startswith("LESS=FRX\n")  # short output is just printed, colours pass, no screen cleared
    assert "83 module file(s): 37 pass, 43 fail a check, 3 unreadable" in paged
    assert "module file(s)" not in seen  # all of it went to the pager
    assert RED_FAIL in paged  # the colour decision was taken for the terminal, before the pager


def test_less_settings_of_the_user_are_kept(tmp_path):
    _run(LISTING, _env(tmp_path, LESS="-S"))
    assert (_paged(tmp_path) or "").startswith("LESS=-S\n")


@pytest.mark.parametrize("how", ["--no-pager", "PAGER=cat", "PAGER=", "PAGER=missing"])
def test_no_pager(tmp_path, how):
    env = _env(tmp_path)
    argv = list(LISTING)
    if how == "--no-pager":
        argv.append(how)
    else:
        value = how.split("=", 1)[1]
        env["PAGER"] = str(tmp_path / "no-such-pager") if value == "missing" else value
    status, seen, _ = _run(argv, env)
    assert status == 1 and _paged(tmp_path) is None
    assert "83 module file(s): 37 pass, 43 fail a check, 3 unreadable" in seen


def test_pipe_gets_plain_text_and_no_pager(tmp_path):
    status, _, out = _run(LISTING, _env(tmp_path), stdout_tty=False)
    assert status == 1 and _paged(tmp_path) is None
    assert "\x1b" not in out and "\nfixtures/modules/x86_64/varlen.ko: FAIL kmod" in out


def test_colour(tmp_path):
    def run(*extra: str, tty: bool = True, **env: str) -> str:
        _, seen, out = _run([*LISTING, "--no-pager", *extra], _env(tmp_path, **env), stdout_tty=tty)
        return seen if tty else out

    on = run()
    assert RED_FAIL in on
    assert "\x1b[32mok\x1b[0m" in run("-v")
    assert "\x1b[" not in run(NO_COLOR="1")
    assert RED_FAIL in run(NO_COLOR="")  # no-color.org: set and empty is unset
    assert "\x1b[" not in run("--color=never")
    assert "\x1b[" not in run(TERM="dumb")
    assert RED_FAIL in run("--color=always", tty=False)
    assert RED_FAIL in run("--color=always", NO_COLOR="1")  # an explicit choice wins


def test_quiet(tmp_path):
    """The progress display and the notes go with --quiet; the line saying where the report is stays."""
    env = _env(tmp_path)
    demo = ["report", "--no-cache", "-b", "kmodcompat/demo"]
    kver = DEMO_KVER
    status, loud, _ = _run([*demo, kver, "--out", str(tmp_path / "r1")], env)
    assert status in (0, 1), loud
    # Every long phase shows: parsing, the consumer views (the graph is built meanwhile), writing the report.
    assert "reading modules [" in loud and "consumer views [##############################] 1/1\n" in loud
    assert f"writing {tmp_path / 'r1'}/report.json, report.md, report.html ... done\n" in loud
    assert "kmodcompat: As built:" in loud
    status, quiet, _ = _run([*demo, kver, "--out", str(tmp_path / "r2"), "--quiet"], env)
    assert status in (0, 1), quiet
    assert "reading modules" not in quiet and "As built:" not in quiet and "kernel exports" not in quiet
    assert quiet.startswith(f"kmodcompat: report for {kver} (") and quiet.count("\n") == 1
    status, piped_err, _ = _run([*demo, kver, "--out", str(tmp_path / "r3")], env, stdout_tty=False)
    assert "\x1b[1;31m" in piped_err or "\x1b[32m" in piped_err  # stderr is still the terminal: verdict in colour


def test_report_has_no_pager(tmp_path):
    """report writes files: nothing on stdout to page, so no pager is started (and no --no-pager offered)."""
    kver = DEMO_KVER
    status, _, _ = _run(["report", "--no-cache", "-b", "kmodcompat/demo", kver, "--out", str(tmp_path / "r")],
                        _env(tmp_path))
    assert status in (0, 1) and _paged(tmp_path) is None


def test_kmod_commands_never_page(tmp_path):
    """modinfo, depmod and dump-modversions behave as the real tools, which have no pager or colour."""
    status, seen, _ = _run(["modinfo", "fixtures/modules/x86_64/basic.ko"], _env(tmp_path))
    assert status == 0 and _paged(tmp_path) is None and "filename:" in seen and "\x1b" not in seen


def test_pager_quit_early(tmp_path):
    """A pager quit before the end (q in less) leaves kmodcompat writing into a closed pipe: exit 0, no traceback."""
    env = _env(tmp_path)
    pager = tmp_path / "quits.sh"
    pager.write_text('#!/bin/sh\nhead -n 1 > "$PAGER_RECORD"\n')
    pager.chmod(0o755)
    env["PAGER"] = str(pager)
    # 680 kB: more than the pipe holds once head has gone, so a write inside the command fails (EPIPE).
    modules = sorted(str(p.relative_to(REPO)) for p in MODULES.glob("*/*.ko"))
    status, seen, _ = _run(["show", "--format", "json", *modules], env)
    assert _paged(tmp_path) == "[\n"
    assert status == 0 and "Traceback" not in seen and "Error" not in seen, seen


def test_diff_progress_covers_the_views(tmp_path):
    kver = DEMO_KVER
    # --no-cache: the same tree twice would be served wholly from the cache the first read fills, with no
    # parsing to show (the bar of a read the cache answers is not drawn).
    status, seen, _ = _run(["diff", "-b", "kmodcompat/demo", kver, kver, "--no-cache"], _env(tmp_path, PAGER="cat"))
    assert status == 0
    for phase in ("reading old tree [", "reading new tree [", "old tree's consumer views [",
                  "new tree's consumer views ["):
        assert phase in seen, phase
    status, seen, _ = _run(["diff", "-b", "kmodcompat/demo", kver, kver, "-q"], _env(tmp_path, PAGER="cat"))
    assert status == 0 and "[#" not in seen


def test_views_verdicts_in_colour(tmp_path):
    kver = DEMO_KVER
    argv = ["views", "-b", "kmodcompat/demo", kver, "--no-pager"]
    _, seen, _ = _run(argv, _env(tmp_path, COLUMNS="200"))  # a table, not records (a pty starts with no size)
    line = next(x for x in seen.splitlines() if x.startswith("kmod30 "))
    assert "\x1b[1;31mfalse-mismatch 4\x1b[0m, \x1b[32mok 5\x1b[0m, \x1b[33mpartial 1\x1b[0m" in line
    _, plain, _ = _run(argv, _env(tmp_path, NO_COLOR="1", COLUMNS="200"))
    assert "\x1b" not in plain and "false-mismatch 4, ok 5, partial 1" in plain
