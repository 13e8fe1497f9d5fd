"""Consumer models: what each tool or kernel sees in a module.

One file per consumer; each offers ``view(rec, expected=None, truth=None, path=None)``
returning a :class:`~kmodcompat.consumers.base.ConsumerView`. :data:`CONSUMERS`
maps the CLI identifiers to those functions, :data:`READERS` to the same
models reading a :class:`~kmodcompat.consumers.base.Reading`.
"""

from __future__ import annotations

from collections.abc import Callable

from functools import partial

from . import busybox, kmod, mit, weak_modules
from ..kmod.profile import KMOD30, KMOD34, KMOD_PR270
from .base import ConsumerView, Reading
from .kernel import KERNELS

#: Every consumer model by CLI identifier, in report order.
CONSUMERS: dict[str, Callable[..., ConsumerView]] = {
    **{k.id: partial(kmod.view, k) for k in (KMOD30, KMOD34, KMOD_PR270)},
    "busybox": busybox.view,
    "mit": mit.view,
    **{k.id: k.view for k in KERNELS},
    "weak-modules": weak_modules.view_redhat,
    "weak-modules2": weak_modules.view_suse,
}

#: :data:`CONSUMERS` as readers of one :class:`Reading`: models handed the same one share their work.
READERS: dict[str, Callable[[Reading], ConsumerView]] = {
    **{k.id: partial(kmod.read, k) for k in (KMOD30, KMOD34, KMOD_PR270)},
    "busybox": busybox.read,
    "mit": mit.read,
    **{k.id: k.read for k in KERNELS},
    "weak-modules": weak_modules.read_redhat,
    "weak-modules2": weak_modules.read_suse,
}
