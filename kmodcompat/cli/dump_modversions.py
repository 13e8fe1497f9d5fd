"""``kmodcompat dump-modversions MODULE``: ``modprobe --dump-modversions``, byte for byte."""

from __future__ import annotations

from ..kmod.profile import KMOD_PROFILES
from ..kmod.tools import dump_modversions
from .output import add_as_option, emit


def add_parser(sub) -> None:
    p = sub.add_parser("dump-modversions", help="print a module's import versions as modprobe --dump-modversions",
                       description=__doc__.splitlines()[0])
    p.add_argument("module", metavar="MODULE", help="module file (.ko, .ko.xz, .ko.zst, .ko.gz)")
    add_as_option(p)
    p.set_defaults(run=run)


def run(args) -> int:
    result = dump_modversions(KMOD_PROFILES[args.as_], args.module)
    emit(result)
    return result.status
