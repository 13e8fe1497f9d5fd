"""kmod's command lines as glibc's ``getopt_long()`` reads them, for the options kmodcompat shares with kmod.

kmodcompat's kmod-compatible commands (``depmod``, ``modinfo``) take kmod's
options and a few of their own (``--as``, ``--format``, ...), all parsed by
argparse. What argparse cannot do is answer as the emulated release answers
for an option that release lacks or has deprecated: kmod 30's depmod ignores
``-u``, ``-q``, ``-r`` and ``-m`` with a warning, kmod 34 refuses them, and
only kmod 34 has ``-m DIR``/``-o DIR``. :func:`scan` walks the command line as
``getopt_long()`` does (GNU permutation, ``--`` ends the options, bundled short
options, ``--name=value``, unique prefixes of long names) before argparse sees
it, and returns the warnings and the first error the release prints, with the
deprecated options taken out.

Sources: tools/depmod.c and tools/modinfo.c ``cmdopts_s``/``cmdopts[]`` at
kmod-project/kmod tags v30 and v34.2; glibc posix/getopt.c for the messages
(``%s: invalid option -- '%c'``, ``%s: unrecognized option '%s'``, ...), the
program name being argv[0] (``depmod``, ``modinfo``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Options:
    """One tool's ``cmdopts_s`` and ``cmdopts[]`` in one kmod release."""

    short: str  # getopt's optstring: a letter, followed by ':' when it takes an argument
    long: tuple[tuple[str, bool, str], ...]  # (name, takes an argument, the letter it returns)
    #: Letters the release accepts only to ignore them: depmod's ``WRN("Ignored deprecated option ...")``.
    deprecated: str = ""

    def takes_argument(self, letter: str) -> bool:
        i = self.short.find(letter)
        return i >= 0 and self.short[i + 1:i + 2] == ":"

    def letters(self) -> set[str]:
        return {c for c in self.short if c != ":"}


def _long(spec: str) -> tuple[tuple[str, bool, str], ...]:
    """``"all a, basedir= b"`` -> ``(("all", False, "a"), ("basedir", True, "b"))``."""
    out = []
    for item in spec.split(","):
        name, letter = item.split()
        out.append((name.rstrip("="), name.endswith("="), letter))
    return tuple(out)


#: tools/depmod.c v30: ``"aAb:C:E:F:euqrvnP:wmVh"``; -u -q -r -m (--unresolved-error, --quiet, --root, --map)
#: are deprecated and ignored with a warning.
DEPMOD_30 = Options(
    "aAb:C:E:F:euqrvnP:wmVh",
    _long("all a, quick A, basedir= b, config= C, symvers= E, filesyms= F, errsyms e, unresolved-error u, "
          "quiet q, root r, verbose v, show n, dry-run n, symbol-prefix= P, warn w, map m, version V, help h"),
    deprecated="uqrm")

#: tools/depmod.c v34.2: ``"aAb:m:o:C:E:F:evnP:wVh"``; the deprecated options are gone (kmod 31, c7ba2bd),
#: -m is --moduledir and -o --outdir (kmod 33).
DEPMOD_34 = Options(
    "aAb:m:o:C:E:F:evnP:wVh",
    _long("all a, quick A, basedir= b, moduledir= m, outdir= o, config= C, symvers= E, filesyms= F, errsyms e, "
          "verbose v, show n, dry-run n, symbol-prefix= P, warn w, version V, help h"))

#: tools/modinfo.c, the same in v30 and v34.2: ``"adlpn0mF:k:b:Vh"``.
MODINFO = Options(
    "adlpn0mF:k:b:Vh",
    _long("author a, description d, license l, parameters p, filename n, null 0, modname m, field= F, "
          "set-version= k, basedir= b, version V, help h"))


@dataclass(frozen=True)
class Scan:
    """What getopt_long() made of a command line: argv for argparse, and what the release printed."""

    argv: list[str]  # the options without the deprecated ones, then ``--`` and the operands (getopt permutes)
    warnings: list[str]  # depmod's "Ignored deprecated option" lines (without program/level prefix)
    error: str | None  # getopt's message (without the program prefix): the tool exits 1 after it


def _match(name: str, names: Iterable[str]) -> list[str]:
    """getopt_long()'s lookup: an exact name, else every name ``name`` is a prefix of."""
    names = list(dict.fromkeys(names))
    return [name] if name in names else [n for n in names if n.startswith(name)]


def scan(argv: list[str], release: Options, known: Iterable[Options], own_long: dict[str, bool],
         own_short: dict[str, bool]) -> Scan:
    """Walk ``argv`` as the release's ``getopt_long()`` would, for the options it shares with kmodcompat.

    ``known``: every release's options of this tool (an option of one of them that ``release`` lacks is that
    release's error). ``own_long``/``own_short``: kmodcompat's own options (name -> takes an argument), which
    pass through untouched. Anything neither kmodcompat's nor the release's is the release's error, as real
    kmod answers it; deprecated options are dropped with their warning.
    """
    kmod_long = {name for opts in known for name, _, _ in opts.long} | {n for n, _, _ in release.long}
    rel_long = {name: (arg, letter) for name, arg, letter in release.long}
    out: list[str] = []
    operands: list[str] = []
    warnings: list[str] = []
    i = 0
    while i < len(argv):
        token = argv[i]
        i += 1
        if token == "--":
            operands += argv[i:]
            break
        if token.startswith("--"):
            name, eq, _ = token[2:].partition("=")
            theirs = _match(name, rel_long)
            ours = [n for n in _match(name, own_long) if n not in kmod_long]
            if len(theirs) == 1 and not (ours and name in ours):
                full = theirs[0]
                takes, letter = rel_long[full]
                if not takes and eq:
                    return Scan(out, warnings, f"option '--{full}' doesn't allow an argument")
                if takes and not eq:
                    if i >= len(argv):
                        return Scan(out, warnings, f"option '--{full}' requires an argument")
                    if letter in release.deprecated:
                        i += 1
                    else:
                        out += [token, argv[i]]
                        i += 1
                        continue
                if letter in release.deprecated:
                    warnings.append(f"Ignored deprecated option --{full}")
                    continue
                out.append(token)
                continue
            if len(theirs) > 1 and not ours:
                options = " ".join(f"'--{n}'" for n in theirs)
                return Scan(out, warnings, f"option '--{name}' is ambiguous; possibilities: {options}")
            if ours:
                out.append(token)
                if len(ours) == 1 and own_long[ours[0]] and not eq and i < len(argv):
                    out.append(argv[i])
                    i += 1
                continue
            return Scan(out, warnings, f"unrecognized option '{token}'")
        if token.startswith("-") and token != "-":
            kept = "-"
            j = 1
            while j < len(token):
                c = token[j]
                j += 1
                if c in release.letters():
                    if release.takes_argument(c):
                        if j == len(token) and i >= len(argv):
                            return Scan(out, warnings, f"option requires an argument -- '{c}'")
                        kept += c + token[j:]
                        if j == len(token):
                            out.append(kept)
                            out.append(argv[i])
                            i += 1
                            kept = ""
                        break
                    if c in release.deprecated:
                        warnings.append(f"Ignored deprecated option -{c}")
                        continue
                    kept += c
                elif c in own_short and not any(c in o.letters() for o in known):
                    kept += c + (token[j:] if own_short[c] else "")
                    if own_short[c]:
                        if j == len(token) and i < len(argv):
                            out.append(kept)
                            out.append(argv[i])
                            i += 1
                            kept = ""
                        break
                else:
                    return Scan(out, warnings, f"invalid option -- '{c}'")
            if kept and kept != "-":
                out.append(kept)
            continue
        operands.append(token)
    return Scan(out + ["--", *operands] if operands else out, warnings, None)


def own_options(parser) -> tuple[dict[str, bool], dict[str, bool]]:
    """Every long and short option of an argparse ``parser`` (name -> takes an argument)."""
    long: dict[str, bool] = {}
    short: dict[str, bool] = {}
    for action in parser._actions:
        takes = action.nargs != 0
        for s in action.option_strings:
            if s.startswith("--"):
                long[s[2:]] = takes
            elif len(s) == 2:
                short[s[1]] = takes
    return long, short
