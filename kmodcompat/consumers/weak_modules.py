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
from typing import TYPE_CHECKING

from ..kmod.profile import KMOD34
from ..records import ModuleRecord
from . import kmod
from .base import COMPATIBLE, INCOMPATIBLE, ConsumerView, Counts, Reading, tree_crcs

if TYPE_CHECKING:
    from ..tally import FormatTables

_UNKNOWN, _DISAGREES = " needs unknown symbol ", " disagrees about version of symbol "


def _rejections(r: Reading) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """depmod -e -E lines a gate greps for, and the false ones among them (both gates, one depmod run)."""
    v = kmod.read(KMOD34, r)
    return r.shared(("depmod-grep", v.messages, v.false_messages), lambda _: _grep(v.messages, v.false_messages))


def _grep(messages: tuple[str, ...], false_messages: tuple[str, ...]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    lines = tuple(m for m in messages if m.startswith("depmod: ") and (_UNKNOWN in m or _DISAGREES in m))
    false = set(false_messages)
    return lines, tuple(m for m in lines if m in false)


def read(consumer: str, r: Reading) -> ConsumerView:
    """Either gate's verdict on one module (``consumer``: its registered id): they differ only for a
    set of modules (:func:`redhat_weak_links`, :func:`suse_kmp_compatible`)."""
    lines, false = _rejections(r)
    verdict = INCOMPATIBLE if lines else COMPATIBLE
    notes = ("rejected only by false depmod warnings: the kernel would load it",) if lines and lines == false else ()
    return ConsumerView(consumer, r.path, verdict, messages=lines, false_messages=false, notes=notes)


def count(t: FormatTables) -> Counts:
    """Either gate's view counted, on the clean tables of a simulated format: kmod 34's depmod lines."""
    depmod = kmod.depmod_counts(KMOD34, t)
    assert depmod is not None  # only PR #270 drops a module's dependencies without a word
    lines, false = depmod
    return Counts(0, 0, 0, 0, lines, false, INCOMPATIBLE if lines else COMPATIBLE)


def redhat_weak_links(modules: Sequence[tuple[str, ModuleRecord]], kernel_crcs: Mapping[str, int]) -> set[str]:
    """Paths of the out-of-tree modules whose weak link survives validate_weak_links().

    Each pass drops the modules depmod warns about; their exports then vanish
    for the next pass, as the removed symlinks do.
    """
    alive = dict(modules)
    while True:
        expected = tree_crcs(kernel_crcs, alive.values())
        bad = {p for p, rec in alive.items() if _rejections(Reading(rec, expected, None, p, True))[0]}
        if not bad:
            return set(alive)
        for p in bad:
            del alive[p]


def suse_kmp_compatible(modules: Sequence[tuple[str, ModuleRecord]], kernel_crcs: Mapping[str, int]) -> bool:
    """has_unresolved_symbols() is false: no module of the KMP draws a warning."""
    expected = tree_crcs(kernel_crcs, (rec for _, rec in modules))
    return not any(_rejections(Reading(rec, expected, None, p, True))[0] for p, rec in modules)
