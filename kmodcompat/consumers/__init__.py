"""Consumer models: what each tool or kernel sees in a module, and the registry that names them.

One file per consumer; each offers a reader of a
:class:`~kmodcompat.consumers.base.Reading` returning a
:class:`~kmodcompat.consumers.base.ConsumerView`. :data:`CONSUMERS` is the
only place a consumer is named: its CLI identifier, the title reports give
it, the model and the kmod release or kernel it models. Every list of
consumers (views, reports, diff, the ``--consumer`` choices) and every
default is read from it. Adding a consumer is one file and one line here
(a :func:`register` call, as every consumer is added).

The kernel's loader has two profiles (consumers/kernel.py): kernel.org's and
Debian's (module-disable-matching-missing-version-crc.patch). The Debian ones
are registered like the others but are not in the default lists
(:func:`standard`): a tree gets them when its kernel is Debian's (or when
asked), in place of nothing, beside the kernel.org models of each era.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

from ..kmod.profile import DEFAULT_KMOD, KMOD30, KMOD34, KMOD_PR270
from ..records import ModuleRecord
from . import busybox, kmod, mit, weak_modules
from .base import ConsumerView, Counts, Reading

if TYPE_CHECKING:
    from ..tally import FormatTables
from .kernel import DEBIAN, MAINLINE, Kernel


@dataclass(frozen=True)
class Consumer:
    """One registered consumer model."""

    id: str  # CLI identifier, and ConsumerView.consumer
    title: str  # as report tables name it
    read: Callable[[Reading], ConsumerView]  # the model
    #: The same model counted on a simulated format's clean tables (tally.FormatTables), through the same
    #: rule functions, for speed; None: counted from ``read``'s views (Counts.of).
    count: Callable[[FormatTables], Counts] | None = None
    profile: Any = None  # the kmod release (kmod.profile.Kmod) or kernel (kernel.Kernel) it models, if any
    short: str | None = None  # as one-line headlines name it (default: the title)
    #: What it is to a report: "kmod", "kernel" (a module loader), "crc-gate" (a script deciding on depmod's
    #: CRC warnings), or "tool".
    kind: str = "tool"
    legacy: bool = False  # unmaintained: reports list it last
    standard: bool = True  # in the default lists (views, reports); False: only when asked or when it applies

    def __call__(self, rec: ModuleRecord, expected: Mapping[str, int] | None = None,
                 truth: Mapping[str, int] | None = None, path: str | None = None,
                 judge_unknown: bool | None = None, vermagic: str | None = None) -> ConsumerView:
        """The model's view of ``rec``: ``expected`` the exporters' CRCs (None: the module's own),
        ``truth`` the CRCs it was built against (default its own), ``judge_unknown`` whether symbols
        missing from ``expected`` are unknown (default: when ``expected`` is given), ``vermagic`` the
        kernel's VERMAGIC_STRING (None: unknown, the loader models do not compare it)."""
        return self.read(Reading(rec, expected, truth, path, judge_unknown, vermagic))


def _kmod(profile, title: str, short: str) -> Consumer:
    return Consumer(profile.id, title, partial(kmod.read, profile), partial(kmod.count, profile), profile, short,
                    "kmod")  # the release's id


def _kernel(kernel: Kernel, title: str, short: str) -> Consumer:
    return Consumer(kernel.id, title, kernel.read, kernel.count, kernel, short, "kernel",
                    standard=kernel.profile == MAINLINE)


#: The kernel's loader, before and after 6.14 read the extended tables, with and without FORCE_LOAD.
KERNEL_6_13 = Kernel("kernel-6.13", (6, 13), False)
KERNEL_6_13_FORCE = Kernel("kernel-6.13+force", (6, 13), True)
KERNEL_6_14 = Kernel("kernel-6.14", (6, 14), False)
KERNEL_6_14_FORCE = Kernel("kernel-6.14+force", (6, 14), True)
#: The same with Debian's patch (every Debian kernel config sets CONFIG_MODULE_FORCE_LOAD=y: bookworm's, trixie's).
KERNEL_6_13_DEBIAN = Kernel("kernel-6.13-debian", (6, 13), False, DEBIAN)
KERNEL_6_13_DEBIAN_FORCE = Kernel("kernel-6.13-debian+force", (6, 13), True, DEBIAN)
KERNEL_6_14_DEBIAN = Kernel("kernel-6.14-debian", (6, 14), False, DEBIAN)
KERNEL_6_14_DEBIAN_FORCE = Kernel("kernel-6.14-debian+force", (6, 14), True, DEBIAN)
#: A kernel of the 6.10 era with the 2024 hashed-names RFC (never merged): the one loader that checks
#: the hashed format's long names (kernel.py).
KERNEL_HASHED_RFC = Kernel("kernel-hashed-rfc", (6, 10), False, hashed_names=True)

BUSYBOX = Consumer("busybox", "busybox 1.35-1.37", partial(busybox.read, "busybox"), busybox.count, short="busybox")
MIT = Consumer("mit", "module-init-tools 3.16", partial(mit.read, "mit"), mit.count, legacy=True)  # no .ko.xz/.ko.zst
#: The weak-modules gates: Red Hat's, SUSE's.
WEAK_MODULES = Consumer("weak-modules", "weak-modules (Red Hat)", partial(weak_modules.read, "weak-modules"),
                        weak_modules.count, kind="crc-gate")
WEAK_MODULES2 = Consumer("weak-modules2", "weak-modules2 (SUSE)", partial(weak_modules.read, "weak-modules2"),
                         weak_modules.count, kind="crc-gate")

#: Every consumer model by CLI identifier, in report order (:func:`register` adds to it).
CONSUMERS: dict[str, Consumer] = {}


def register(consumer: Consumer) -> Consumer:
    """Add ``consumer`` to the registry, after those there: every list, default and ``--consumer``
    choice made from then on offers it. Its counts come from its model unless it has a ``count``."""
    if consumer.id in CONSUMERS:
        raise ValueError(f"consumer {consumer.id!r} is already registered")
    CONSUMERS[consumer.id] = consumer
    return consumer


def unregister(consumer_id: str) -> Consumer:
    """Remove a consumer :func:`register` added (a test's own model, when the test ends)."""
    return CONSUMERS.pop(consumer_id)


for _c in (
    _kmod(KMOD30, "kmod 30 (Debian 12)", "kmod 30"),
    _kmod(KMOD34, "kmod 33-34.2 (Debian 13)", "kmod 34.2"),
    _kmod(KMOD_PR270, "kmod + PR #270", "kmod + PR #270"),
    BUSYBOX,
    MIT,
    _kernel(KERNEL_6_13, "kernel ≤ 6.13", "kernel ≤ 6.13"),
    _kernel(KERNEL_6_13_FORCE, "kernel ≤ 6.13, FORCE_LOAD", "kernel ≤ 6.13 (FORCE_LOAD)"),
    _kernel(KERNEL_6_14, "kernel ≥ 6.14", "kernel ≥ 6.14"),
    _kernel(KERNEL_6_14_FORCE, "kernel ≥ 6.14, FORCE_LOAD", "kernel ≥ 6.14 (FORCE_LOAD)"),
    _kernel(KERNEL_HASHED_RFC, "kernel + hashed-names RFC (2024, unmerged)", "kernel + hashed-names RFC"),
    WEAK_MODULES,
    WEAK_MODULES2,
    # Headlines name Debian's kernels as Debian configures them (FORCE_LOAD), the other build by what it lacks.
    _kernel(KERNEL_6_13_DEBIAN, "Debian kernel ≤ 6.13, no FORCE_LOAD", "Debian kernel ≤ 6.13 (no FORCE_LOAD)"),
    _kernel(KERNEL_6_13_DEBIAN_FORCE, "Debian kernel ≤ 6.13, FORCE_LOAD", "Debian kernel ≤ 6.13"),
    _kernel(KERNEL_6_14_DEBIAN, "Debian kernel ≥ 6.14, no FORCE_LOAD", "Debian kernel ≥ 6.14 (no FORCE_LOAD)"),
    _kernel(KERNEL_6_14_DEBIAN_FORCE, "Debian kernel ≥ 6.14, FORCE_LOAD", "Debian kernel ≥ 6.14"),
):
    register(_c)
del _c


def standard() -> tuple[str, ...]:
    """The consumers of every default list (views, reports): all but those registered with
    ``standard=False`` (the Debian kernel profile's)."""
    return tuple(c.id for c in CONSUMERS.values() if c.standard)


#: The kmod of report headlines, policies and ``views``' sentence: the default kmod release.
DEFAULT_KMOD_CONSUMER = CONSUMERS[DEFAULT_KMOD.id]
#: Consumers a diff compares by default: that kmod, and the loader before and after 6.14.
DEFAULT_CONSUMERS = (DEFAULT_KMOD_CONSUMER.id, KERNEL_6_13.id, KERNEL_6_14.id)


def title(consumer: str) -> str:
    """How report tables name ``consumer`` (its identifier when it is not registered)."""
    c = CONSUMERS.get(consumer)
    return consumer if c is None else c.title


def short_title(consumer: str) -> str:
    """How one-line headlines name ``consumer`` (its identifier when it is not registered)."""
    c = CONSUMERS.get(consumer)
    return consumer if c is None else c.short or c.title


def kernel_model(newer: bool, force_load: bool, profile: str = MAINLINE) -> Consumer:
    """The registry's kernel loader model: ≥ 6.14 (reads the extended tables) or not, FORCE_LOAD, profile."""
    return next(c for c in CONSUMERS.values() if c.kind == "kernel" and c.profile.reads_extended == newer
                and c.profile.force_load == force_load and c.profile.profile == profile)


def of_kind(kind: str) -> tuple[str, ...]:
    """The ids of the consumers of ``kind`` (Consumer.kind), in report order."""
    return tuple(c.id for c in CONSUMERS.values() if c.kind == kind)
