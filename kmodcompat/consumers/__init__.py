"""Consumer models: what each tool or kernel sees in a module.

One file per consumer; each offers ``view(rec, expected=None, truth=None, path=None)``
returning a :class:`~kmodcompat.consumers.base.ConsumerView`. :data:`CONSUMERS`
maps the CLI identifiers to those functions, :data:`READERS` to the same
models reading a :class:`~kmodcompat.consumers.base.Reading`.
"""

from __future__ import annotations

from collections.abc import Callable

from . import busybox, mit, weak_modules
from .base import ConsumerView, Reading
from .kernel import KERNELS
from .kmod import Kmod
from .kmod30 import KMOD30
from .kmod34 import KMOD34
from .kmod_pr270 import KMOD_PR270

#: kmod releases we emulate byte for byte, by CLI identifier; kmod34 is the default.
KMOD_RELEASES: dict[str, Kmod] = {KMOD30.id: KMOD30, KMOD34.id: KMOD34}
DEFAULT_KMOD = KMOD34
#: Every kmod model a command's ``--as`` accepts: the releases, and kmod with PR #270
#: (unreleased, so no binary checks it; its rules are pinned by fixtures).
KMOD_MODELS: dict[str, Kmod] = {**KMOD_RELEASES, KMOD_PR270.id: KMOD_PR270}

#: Every consumer model by CLI identifier, in report order.
CONSUMERS: dict[str, Callable[..., ConsumerView]] = {
    KMOD30.id: KMOD30.view,
    KMOD34.id: KMOD34.view,
    KMOD_PR270.id: KMOD_PR270.view,
    "busybox": busybox.view,
    "mit": mit.view,
    **{k.id: k.view for k in KERNELS},
    "weak-modules": weak_modules.view_redhat,
    "weak-modules2": weak_modules.view_suse,
}

#: :data:`CONSUMERS` as readers of one :class:`Reading`: models handed the same one share their work.
READERS: dict[str, Callable[[Reading], ConsumerView]] = {
    KMOD30.id: KMOD30.read,
    KMOD34.id: KMOD34.read,
    KMOD_PR270.id: KMOD_PR270.read,
    "busybox": busybox.read,
    "mit": mit.read,
    **{k.id: k.read for k in KERNELS},
    "weak-modules": weak_modules.read_redhat,
    "weak-modules2": weak_modules.read_suse,
}
