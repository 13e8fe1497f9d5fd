"""The kABI gates distributions build on depmod's text: Red Hat's weak-modules, SUSE's weak-modules2.

Both decide whether an out-of-tree module built for one kernel may be
linked into another kernel's ``weak-updates/`` by running depmod with
``-e -E symvers`` and grepping its warnings. Neither reads a version section
itself, so whatever depmod gets wrong, they inherit: an import versioned only
in the extended tables makes depmod print a false "disagrees", and the gate
rejects a module the 6.14+ kernel would load.

* Red Hat ``weak-modules`` (eurolinux-enterprise-linux-sources/kmod
  ``weak-modules`` ``validate_weak_links()``): ``$depmod -naeE symvers-$krel``,
  stderr lines of modules under ``weak-updates/`` matching ``needs unknown
  symbol`` or ``disagrees about version of symbol`` remove that module's link,
  and the loop repeats until nothing changes (a removal can leave other
  modules with unknown symbols).
* SUSE ``weak-modules2`` (openSUSE/suse-module-tools ``weak-modules2``
  ``has_unresolved_symbols()``): ``depmod -b $basedir -ae -E symvers $krel``;
  any line matching `` (needs unknown|disagrees about version of) symbol ``
  anywhere in the output makes the KMP incompatible (also a depmod exit
  status other than 0).

For one module against a kernel the two agree; they differ for a set of
modules (Red Hat drops only the failing ones, SUSE rejects the whole KMP),
which :func:`redhat_weak_links` and :func:`suse_kmp_compatible` model.
Both scripts are shell around depmod and are not run here; depmod's
warnings themselves are checked against the real binaries.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from ..records import ModuleRecord
from .base import COMPATIBLE, INCOMPATIBLE, ConsumerView, tree_crcs
from .kmod34 import KMOD34

_PATTERNS = (" needs unknown symbol ", " disagrees about version of symbol ")


#: The last depmod view and its inputs: both gates ask for the same one in a row
#: (views.compute_views calls them back to back). Holding the inputs keeps the
#: identity test sound; the view is immutable, so sharing it is safe.
_last: tuple | None = None


def _depmod_view(rec, expected, truth, path, judge_unknown) -> ConsumerView:
    global _last
    key = (rec, expected, truth, path, judge_unknown)
    if _last is not None and all(a is b for a, b in zip(_last[0], key)):
        return _last[1]
    v = KMOD34.view(rec, expected=expected, truth=truth, path=path, judge_unknown=judge_unknown)
    _last = (key, v)
    return v


def _rejections(rec: ModuleRecord, expected, truth, path, judge_unknown) -> tuple[list[str], list[str]]:
    """depmod -e -E lines a gate greps for, and the false ones among them."""
    v = _depmod_view(rec, expected, truth, path, judge_unknown)
    lines = [m for m in v.messages if m.startswith("depmod: ") and any(p in m for p in _PATTERNS)]
    return lines, [m for m in lines if m in v.false_messages]


def _view(consumer: str, rec, expected, truth, path, judge_unknown) -> ConsumerView:
    path = rec.path if path is None else path
    lines, false = _rejections(rec, expected, truth, path, judge_unknown)
    verdict = INCOMPATIBLE if lines else COMPATIBLE
    notes = ("rejected only by false depmod warnings: the kernel would load it",) if lines and lines == false else ()
    return ConsumerView(consumer, path, verdict, messages=tuple(lines), false_messages=tuple(false), notes=notes)


def view_redhat(rec: ModuleRecord, expected: Mapping[str, int] | None = None, truth: Mapping[str, int] | None = None,
                path: str | None = None, judge_unknown: bool | None = None) -> ConsumerView:
    return _view("weak-modules", rec, expected, truth, path, judge_unknown)


def view_suse(rec: ModuleRecord, expected: Mapping[str, int] | None = None, truth: Mapping[str, int] | None = None,
              path: str | None = None, judge_unknown: bool | None = None) -> ConsumerView:
    return _view("weak-modules2", rec, expected, truth, path, judge_unknown)


def redhat_weak_links(modules: Sequence[tuple[str, ModuleRecord]], kernel_crcs: Mapping[str, int]) -> set[str]:
    """Paths of the out-of-tree modules whose weak link survives validate_weak_links().

    Each pass drops the modules depmod warns about; their exports then vanish
    for the next pass, as the removed symlinks do.
    """
    alive = dict(modules)
    while True:
        expected = tree_crcs(kernel_crcs, alive.values())
        bad = {p for p, rec in alive.items() if _rejections(rec, expected, None, p, True)[0]}
        if not bad:
            return set(alive)
        for p in bad:
            del alive[p]


def suse_kmp_compatible(modules: Sequence[tuple[str, ModuleRecord]], kernel_crcs: Mapping[str, int]) -> bool:
    """has_unresolved_symbols() is false: no module of the KMP draws a warning."""
    expected = tree_crcs(kernel_crcs, (rec for _, rec in modules))
    return not any(_rejections(rec, expected, None, p, True)[0] for p, rec in modules)
