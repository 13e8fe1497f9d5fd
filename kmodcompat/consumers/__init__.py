"""Consumer models: what each tool or kernel sees in a module.

One file per consumer; :data:`CONSUMERS` maps the CLI identifiers to them.
"""

from __future__ import annotations

from .kmod import Kmod
from .kmod30 import KMOD30
from .kmod34 import KMOD34

#: kmod releases we emulate byte for byte, by CLI identifier; kmod34 is the default.
KMOD_RELEASES: dict[str, Kmod] = {KMOD30.id: KMOD30, KMOD34.id: KMOD34}
DEFAULT_KMOD = KMOD34
